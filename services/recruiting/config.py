"""Recruiting's settings, from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.config import Env, ServerSettings, sqlite_url

DEFAULT_PORT = 50051
DEFAULT_METRICS_PORT = 9101


def recruiting_database_url(env: Env) -> str:
    return env.str("RECRUITING_DATABASE_URL", "") or sqlite_url("recruiting.db")


@dataclass(frozen=True)
class Settings:
    server: ServerSettings
    database_url: str
    usage_tracker_target: str

    @classmethod
    def from_env(cls, env: Env) -> Settings:
        return cls(
            server=ServerSettings.from_env(
                env, prefix="RECRUITING", default_port=DEFAULT_PORT, default_metrics_port=DEFAULT_METRICS_PORT
            ),
            database_url=recruiting_database_url(env),
            usage_tracker_target=env.str("USAGE_TRACKER_TARGET", "127.0.0.1:50052"),
        )
