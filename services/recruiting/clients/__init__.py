"""Adapters to what recruiting calls: OpenAI (official SDK) and the usage tracker."""
