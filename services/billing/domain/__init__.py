"""Billing's domain: periods, money text, aggregates and page tokens. No grpc, no sqlalchemy."""
