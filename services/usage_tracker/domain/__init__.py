"""The tracker's domain: pricing, margins, validation and usage attribution. No gRPC, no SQL."""
