"""Recruiting's settings, from the environment. A missing or malformed value fails at start, naming it.

Variables (besides the shared RECRUITING_HOST/PORT/METRICS_PORT and HIREMETER_SERVICE_TOKEN):
  RECRUITING_DATABASE_URL                  default: sqlite file var/recruiting.db
  USAGE_TRACKER_TARGET                     default 127.0.0.1:50052
  OPENAI_API_KEY                           required
  OPENAI_BASE_URL                          default https://api.openai.com/v1
  OPENAI_PROJECT_ID                        optional; sent as OpenAI-Project and tracked with every operation
  OPENAI_TIMEOUT_SECONDS                   default 60 (shortened to the caller's remaining deadline)
  OPENAI_MAX_RETRIES                       default 2 (retries of 408/409/429/5xx, timeouts, connection errors)
  RECRUITING_RESUME_MODEL                  default gpt-4o
  RECRUITING_QUESTIONS_MODEL               default gpt-4o
  RECRUITING_REALTIME_MODEL                default gpt-realtime
  RECRUITING_OUTBOX_BACKOFF_BASE_SECONDS   default 0.5
  RECRUITING_OUTBOX_BACKOFF_MAX_SECONDS    default 30
  RECRUITING_TRACK_TIMEOUT_SECONDS         default 5 (deadline of each UsageTracker.Track / TrackBatch call)
  RECRUITING_ORPHAN_LINGER_SECONDS         default 2: a reservation past its release time waits up to this long
                                           for others coming due, so orphans are tracked together (one
                                           TrackBatch) and share their usage-API window; 0 releases at once
  RECRUITING_ORPHAN_GRACE_SECONDS          default: the longest an OpenAI call can take (timeout x attempts +
                                           backoffs) + 30. A reservation whose outcome was not recorded within
                                           this is billed without usage (see service.py); shorter values bill
                                           such operations sooner but may miss their exact usage (never twice).
"""

from __future__ import annotations

from dataclasses import dataclass

from services.common.config import ConfigError, Env, ServerSettings, sqlite_url
from services.recruiting.clients.openai_client import OpenAISettings
from services.recruiting.domain.ids import ID_PATTERN
from services.recruiting.outbox.relay import RelaySettings

DEFAULT_PORT = 50051
DEFAULT_METRICS_PORT = 9101


def recruiting_database_url(env: Env) -> str:
    return env.str("RECRUITING_DATABASE_URL", "") or sqlite_url("recruiting.db")


def _model(env: Env, name: str, default: str) -> str:
    value = env.str(name, default)
    if not ID_PATTERN.fullmatch(value):
        raise ConfigError(f"{name} must be a model id such as {default!r}, got {value!r}")
    return value


def openai_settings(env: Env) -> OpenAISettings:
    base_url = env.str("OPENAI_BASE_URL", "https://api.openai.com/v1").rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"OPENAI_BASE_URL must be an http(s) URL, got {base_url!r}")
    timeout = env.float("OPENAI_TIMEOUT_SECONDS", 60.0)
    if timeout <= 0:
        raise ConfigError("OPENAI_TIMEOUT_SECONDS must be positive")
    return OpenAISettings(
        api_key=env.str("OPENAI_API_KEY"),
        base_url=base_url,
        project_id=env.str("OPENAI_PROJECT_ID", ""),
        timeout_seconds=timeout,
        max_retries=env.int("OPENAI_MAX_RETRIES", 2, maximum=10),
        resume_model=_model(env, "RECRUITING_RESUME_MODEL", "gpt-4o"),
        questions_model=_model(env, "RECRUITING_QUESTIONS_MODEL", "gpt-4o"),
        realtime_model=_model(env, "RECRUITING_REALTIME_MODEL", "gpt-realtime"),
    )


def relay_settings(env: Env) -> RelaySettings:
    base = env.float("RECRUITING_OUTBOX_BACKOFF_BASE_SECONDS", 0.5)
    cap = env.float("RECRUITING_OUTBOX_BACKOFF_MAX_SECONDS", 30.0)
    if base <= 0 or cap < base:
        raise ConfigError(
            "RECRUITING_OUTBOX_BACKOFF_BASE_SECONDS must be positive and at most "
            "RECRUITING_OUTBOX_BACKOFF_MAX_SECONDS"
        )
    timeout = env.float("RECRUITING_TRACK_TIMEOUT_SECONDS", 5.0)
    if timeout <= 0:
        raise ConfigError("RECRUITING_TRACK_TIMEOUT_SECONDS must be positive")
    linger = env.float("RECRUITING_ORPHAN_LINGER_SECONDS", 2.0)
    if linger < 0:
        raise ConfigError("RECRUITING_ORPHAN_LINGER_SECONDS must not be negative")
    return RelaySettings(
        backoff_base_seconds=base,
        backoff_max_seconds=cap,
        track_timeout_seconds=timeout,
        orphan_linger_seconds=linger,
    )


def orphan_grace_seconds(env: Env) -> float | None:
    text = env.str("RECRUITING_ORPHAN_GRACE_SECONDS", "")
    if not text:
        return None
    grace = env.float("RECRUITING_ORPHAN_GRACE_SECONDS", 0.0)
    if grace <= 0:
        raise ConfigError("RECRUITING_ORPHAN_GRACE_SECONDS must be positive")
    return grace


@dataclass(frozen=True)
class Settings:
    server: ServerSettings
    database_url: str
    usage_tracker_target: str
    openai: OpenAISettings
    relay: RelaySettings = RelaySettings()  # noqa: RUF009 - frozen dataclass
    orphan_grace_seconds: float | None = None  # None: derived from the OpenAI settings (orphan_grace())

    @classmethod
    def from_env(cls, env: Env) -> Settings:
        return cls(
            server=ServerSettings.from_env(
                env, prefix="RECRUITING", default_port=DEFAULT_PORT, default_metrics_port=DEFAULT_METRICS_PORT
            ),
            database_url=recruiting_database_url(env),
            usage_tracker_target=env.str("USAGE_TRACKER_TARGET", "127.0.0.1:50052"),
            openai=openai_settings(env),
            relay=relay_settings(env),
            orphan_grace_seconds=orphan_grace_seconds(env),
        )
