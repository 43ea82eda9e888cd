"""Billing's settings, from the environment. Billing reads the tracker's ledger and rollups, by default
from the same database; point BILLING_DATABASE_URL at a read replica in production."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.config import Env, ServerSettings
from services.usage_tracker.config import usage_database_url

DEFAULT_PORT = 50053
DEFAULT_METRICS_PORT = 9103


@dataclass(frozen=True)
class Settings:
    server: ServerSettings
    database_url: str
    # Signs ListUsageRecords page tokens. Every billing replica must share it; defaults to the service token.
    page_token_secret: str

    @classmethod
    def from_env(cls, env: Env) -> Settings:
        server = ServerSettings.from_env(
            env, prefix="BILLING", default_port=DEFAULT_PORT, default_metrics_port=DEFAULT_METRICS_PORT
        )
        return cls(
            server=server,
            database_url=env.str("BILLING_DATABASE_URL", "") or usage_database_url(env),
            page_token_secret=env.str("BILLING_PAGE_TOKEN_SECRET", "") or server.service_token,
        )
