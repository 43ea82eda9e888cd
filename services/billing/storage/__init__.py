"""Billing's read side of the tracker's usage database."""
