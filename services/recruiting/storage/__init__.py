"""Recruiting's own storage: resumes, question sets, interviews and the outbox of TrackRequests."""
