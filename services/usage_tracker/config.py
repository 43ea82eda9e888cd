"""The usage tracker's settings, from the environment. A malformed value fails at start, naming the variable.

Variables (defaults in brackets):
  USAGE_DATABASE_URL [sqlite file var/usage.db]
  USAGE_TRACKER_HOST / _PORT [127.0.0.1 / 50052] / _METRICS_PORT [9102], HIREMETER_SERVICE_TOKEN (required to serve)
  USAGE_TRACKER_MAX_WORKERS [256]                    gRPC handler threads: Tracks waiting for a shared usage
                                                     lookup hold one each, so this bounds how many can share it
  USAGE_TRACKER_COMMIT_WRITERS [1]                   group-commit writer threads (1 on SQLite): each writes
                                                     every queued Track in one transaction, then acks them
  USAGE_TRACKER_COMMIT_MAX_BATCH [1000]              most Tracks one group-commit transaction writes
  USAGE_TRACKER_MARGIN_CACHE_SECONDS [5]             company margins cached this long (SetCompanyMargin on
                                                     the same replica invalidates at once)
  HIREMETER_DEFAULT_MARGIN [0.25]                    margin for companies without an override, 0 to 10
  HIREMETER_FALLBACK_PRICE_CV_PARSING [0.50]         USD per CV          } used when no price version is in
  HIREMETER_FALLBACK_PRICE_QUESTION_GENERATION [0.01] USD per generation } force, and as the seed version's
  HIREMETER_FALLBACK_PRICE_VIDEO_INTERVIEW [0.30]    USD per minute      } fallback prices at first start
  OPENAI_BASE_URL [https://api.openai.com/v1]
  OPENAI_ADMIN_KEY [empty: no usage API; operations without usage fall back, reconciliation is refused]
  OPENAI_DEFAULT_PROJECT_ID [empty]                  project that records without one reconcile against
  USAGE_API_TIMEOUT_SECONDS [10]                     per HTTP call to the usage/costs API
  USAGE_API_LOOKUP_TIMEOUT_SECONDS [20]              longest a Track waits for usage before falling back
  USAGE_API_CACHE_SECONDS [5]                        how long one answer serves later lookups
  USAGE_API_MIN_INTERVAL_SECONDS [15]                least time between two calls for the same UTC hour
  USAGE_API_SETTLE_SECONDS [0]                       usage is looked up only this long after completion
  USAGE_API_BREAKER_FAILURES [3] / USAGE_API_BREAKER_COOLDOWN_SECONDS [30]
  USAGE_API_MAX_RETRY_AFTER_SECONDS [300]            cap on an obeyed Retry-After
  RECONCILE_SETTLE_SECONDS [3600]                    fallback records younger than this are not trued up
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from services.common.config import ConfigError, Env, ServerSettings, sqlite_url
from services.usage_tracker.clients.usage_api import UsageApiSettings
from services.usage_tracker.domain import decimals
from services.usage_tracker.domain.pricing import CATEGORIES, margin_problem

DEFAULT_PORT = 50052
DEFAULT_METRICS_PORT = 9102
DEFAULT_FALLBACK_PRICES = {"cv_parsing": "0.50", "question_generation": "0.01", "video_interview": "0.30"}


def usage_database_url(env: Env) -> str:
    return env.str("USAGE_DATABASE_URL", "") or sqlite_url("usage.db")


def _decimal(env: Env, name: str, default: str) -> Decimal:
    raw = env.str(name, default)
    try:
        return decimals.parse(raw, name)
    except ValueError as error:
        raise ConfigError(str(error)) from None


@dataclass(frozen=True)
class Settings:
    server: ServerSettings | None  # None for command-line jobs that do not serve
    database_url: str
    default_margin: Decimal
    fallback_prices: dict[str, Decimal]
    usage_api: UsageApiSettings | None  # None without OPENAI_ADMIN_KEY
    usage_lookup_timeout_seconds: float
    default_openai_project_id: str
    reconcile_settle_seconds: float
    max_workers: int = 256
    commit_writers: int = 1
    commit_max_batch: int = 1000
    margin_cache_seconds: float = 5.0

    @classmethod
    def from_env(cls, env: Env, *, serving: bool = True) -> Settings:
        margin = _decimal(env, "HIREMETER_DEFAULT_MARGIN", "0.25")
        if problem := margin_problem(margin):
            raise ConfigError(f"HIREMETER_DEFAULT_MARGIN {problem}")
        fallback = {}
        for category in CATEGORIES:
            name = f"HIREMETER_FALLBACK_PRICE_{category.upper()}"
            fallback[category] = _decimal(env, name, DEFAULT_FALLBACK_PRICES[category])
            if fallback[category] <= 0:
                raise ConfigError(f"{name} must be greater than 0")
        admin_key = env.str("OPENAI_ADMIN_KEY", "")
        usage_api = None
        if admin_key:
            usage_api = UsageApiSettings(
                base_url=env.str("OPENAI_BASE_URL", "https://api.openai.com/v1"),
                admin_key=admin_key,
                timeout_seconds=_positive(env, "USAGE_API_TIMEOUT_SECONDS", 10.0),
                cache_seconds=env.float("USAGE_API_CACHE_SECONDS", 5.0),
                min_interval_seconds=env.float("USAGE_API_MIN_INTERVAL_SECONDS", 15.0),
                settle_seconds=env.float("USAGE_API_SETTLE_SECONDS", 0.0),
                breaker_failures=env.int("USAGE_API_BREAKER_FAILURES", 3, minimum=1, maximum=1000),
                breaker_cooldown_seconds=env.float("USAGE_API_BREAKER_COOLDOWN_SECONDS", 30.0),
                max_retry_after_seconds=env.float("USAGE_API_MAX_RETRY_AFTER_SECONDS", 300.0),
            )
        server = None
        if serving:
            server = ServerSettings.from_env(
                env,
                prefix="USAGE_TRACKER",
                default_port=DEFAULT_PORT,
                default_metrics_port=DEFAULT_METRICS_PORT,
            )
        return cls(
            server=server,
            max_workers=env.int("USAGE_TRACKER_MAX_WORKERS", 256, minimum=1, maximum=4096),
            database_url=usage_database_url(env),
            default_margin=margin,
            fallback_prices=fallback,
            usage_api=usage_api,
            usage_lookup_timeout_seconds=_positive(env, "USAGE_API_LOOKUP_TIMEOUT_SECONDS", 20.0),
            default_openai_project_id=env.str("OPENAI_DEFAULT_PROJECT_ID", ""),
            reconcile_settle_seconds=env.float("RECONCILE_SETTLE_SECONDS", 3600.0),
            commit_writers=env.int("USAGE_TRACKER_COMMIT_WRITERS", 1, minimum=1, maximum=64),
            commit_max_batch=env.int("USAGE_TRACKER_COMMIT_MAX_BATCH", 1000, minimum=1, maximum=10_000),
            margin_cache_seconds=env.float("USAGE_TRACKER_MARGIN_CACHE_SECONDS", 5.0),
        )


def _positive(env: Env, name: str, default: float) -> float:
    value = env.float(name, default)
    if value <= 0:
        raise ConfigError(f"{name} must be greater than 0")
    return value
