"""The HTTP face of HireMeter: a JSON API and the billing page, in front of the gRPC services."""
