"""Settings from the environment. A missing or malformed value fails at start-up, naming the variable."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# Local state of `make run` (SQLite files, dev secrets); HIREMETER_VAR_DIR moves it (tests do).
VAR_DIR = Path(os.environ.get("HIREMETER_VAR_DIR") or REPO_ROOT / "var")


class ConfigError(RuntimeError):
    """A required setting is missing or malformed; the message names the variable."""


class Env:
    """Typed reads of an environment mapping (os.environ by default, a dict in tests)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def str(self, name: str, default: str | None = None) -> str:
        value = self._environ.get(name, "")
        if value.strip():
            return value.strip()
        if default is None:
            raise ConfigError(f"{name} must be set")
        return default

    def int(self, name: str, default: int | None = None, *, minimum: int = 0, maximum: int = 65535) -> int:
        raw = self._environ.get(name, "").strip()
        if not raw:
            if default is None:
                raise ConfigError(f"{name} must be set")
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
        if not minimum <= value <= maximum:
            raise ConfigError(f"{name} must be between {minimum} and {maximum}, got {value}")
        return value

    def float(self, name: str, default: float) -> float:
        """For durations and timeouts only; money never goes through here."""
        raw = self._environ.get(name, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None
        if value < 0:
            raise ConfigError(f"{name} must not be negative, got {raw!r}")
        return value

    def bool(self, name: str, default: bool = False) -> bool:
        raw = self._environ.get(name, "").strip().lower()
        if not raw:
            return default
        if raw in {"1", "true", "yes", "on"}:
            return True
        if raw in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{name} must be true or false, got {raw!r}")


def sqlite_url(name: str) -> str:
    """The embedded default: a SQLite file under var/."""
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{VAR_DIR / name}"


@dataclass(frozen=True)
class ServerSettings:
    """What every gRPC service needs to listen, authenticate and export metrics."""

    host: str
    port: int
    metrics_port: int  # 0 disables the metrics endpoint
    service_token: str
    grace_seconds: float

    @classmethod
    def from_env(
        cls, env: Env, *, prefix: str, default_port: int, default_metrics_port: int
    ) -> ServerSettings:
        return cls(
            host=env.str(f"{prefix}_HOST", "127.0.0.1"),
            port=env.int(f"{prefix}_PORT", default_port),
            metrics_port=env.int(f"{prefix}_METRICS_PORT", default_metrics_port),
            service_token=env.str("HIREMETER_SERVICE_TOKEN"),
            grace_seconds=env.float("HIREMETER_SHUTDOWN_GRACE_SECONDS", 5.0),
        )
