"""Outbound adapters of the tracker: the OpenAI organization usage and costs APIs."""
