"""`python -m gateway`: serve the HTTP gateway with uvicorn."""

from __future__ import annotations

import sys

import uvicorn

from gateway.app import create_app
from gateway.config import Settings
from services.common import logs
from services.common.config import ConfigError, Env


def main() -> None:
    env = Env()
    logs.configure("gateway", env.str("HIREMETER_LOG_LEVEL", "INFO"))
    try:
        settings = Settings.from_env(env)
    except ConfigError as error:
        print(f"gateway: configuration error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
