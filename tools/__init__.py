"""Development and test tools, kept apart from the product code (``services/``, ``gateway/``)."""
