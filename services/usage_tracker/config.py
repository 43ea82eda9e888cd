"""The usage tracker's settings, from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.config import Env, ServerSettings, sqlite_url

DEFAULT_PORT = 50052
DEFAULT_METRICS_PORT = 9102


def usage_database_url(env: Env) -> str:
    return env.str("USAGE_DATABASE_URL", "") or sqlite_url("usage.db")


@dataclass(frozen=True)
class Settings:
    server: ServerSettings
    database_url: str

    @classmethod
    def from_env(cls, env: Env) -> Settings:
        return cls(
            server=ServerSettings.from_env(
                env,
                prefix="USAGE_TRACKER",
                default_port=DEFAULT_PORT,
                default_metrics_port=DEFAULT_METRICS_PORT,
            ),
            database_url=usage_database_url(env),
        )
