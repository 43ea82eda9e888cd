"""The outbox relay: delivers each committed TrackRequest to UsageTracker.Track, at once and until acknowledged."""
