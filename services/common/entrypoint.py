"""The shared `python -m services.<name>` entry point: settings, logs, start, serve until SIGTERM."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Protocol, TypeVar

from services.common import logs
from services.common.config import ConfigError, Env, ServerSettings
from services.common.grpc_server import RunningServer, serve_until_signal


class HasServer(Protocol):
    server: ServerSettings


S = TypeVar("S", bound=HasServer)


def run_service(name: str, load_settings: Callable[[Env], S], start: Callable[[S], RunningServer]) -> None:
    env = Env()
    logs.configure(name, env.str("HIREMETER_LOG_LEVEL", "INFO"))
    try:
        settings = load_settings(env)
    except ConfigError as error:
        print(f"{name}: configuration error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    running = start(settings)
    serve_until_signal(running, settings.server.metrics_port, settings.server.host)
