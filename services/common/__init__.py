"""Pieces every HireMeter service shares: settings, errors, logging, the gRPC server builder, storage."""
