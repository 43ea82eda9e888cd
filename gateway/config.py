"""The gateway's settings, from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.config import Env

DEFAULT_PORT = 8080


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    billing_target: str
    recruiting_target: str
    service_token: str
    jwt_secret: str
    cors_origins: tuple[str, ...]
    openai_simulated: bool

    @classmethod
    def from_env(cls, env: Env) -> Settings:
        origins = env.str("GATEWAY_CORS_ORIGINS", "")
        return cls(
            host=env.str("GATEWAY_HOST", "127.0.0.1"),
            port=env.int("GATEWAY_PORT", DEFAULT_PORT),
            billing_target=env.str("BILLING_TARGET", "127.0.0.1:50053"),
            recruiting_target=env.str("RECRUITING_TARGET", "127.0.0.1:50051"),
            service_token=env.str("HIREMETER_SERVICE_TOKEN"),
            jwt_secret=env.str("GATEWAY_JWT_SECRET"),
            cors_origins=tuple(origin.strip() for origin in origins.split(",") if origin.strip()),
            openai_simulated=env.bool("HIREMETER_OPENAI_SIMULATED", False),
        )
