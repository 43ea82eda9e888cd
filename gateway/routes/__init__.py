"""The gateway's routers: billing JSON, recruiting JSON, and the billing page."""
