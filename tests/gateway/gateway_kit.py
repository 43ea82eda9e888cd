"""Gateway test kit: the gateway app over real billing, recruiting and usage-tracker gRPC servers on
127.0.0.1:0, tokens, and a scriptable fake billing for the status-mapping tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, replace

from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.config import Settings
from gateway.tokens import issue
from services.common.config import ServerSettings
from services.recruiting.bootstrap import start as start_recruiting
from tests.conftest import SERVICE_TOKEN
from tests.grpc.billing.billing_seed import running_tracker
from tests.support.recruiting import recruiting_settings
from tools.openai_sim.testing import running_simulator

JWT_SECRET = "gateway-test-secret-0123456789abcdef0123456789"


def gateway_settings(billing_target: str, recruiting_target: str, **overrides) -> Settings:
    settings = Settings(
        host="127.0.0.1",
        port=0,
        billing_target=billing_target,
        recruiting_target=recruiting_target,
        service_token=SERVICE_TOKEN,
        jwt_secret=JWT_SECRET,
        cors_origins=("https://app.example.com",),
        openai_simulated=True,
    )
    return replace(settings, **overrides)


def bearer(company_id: str, **kwargs) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue(JWT_SECRET, company_id, **kwargs)}"}


@dataclass
class Recruiting:
    target: str
    tracker_target: str  # the real tracker recruiting's outbox relays to, on the test's usage database


@contextlib.contextmanager
def running_recruiting(
    server: ServerSettings, database_url: str, usage_database_url: str
) -> Iterator[Recruiting]:
    """Real recruiting (simulated OpenAI) whose outbox relays to a real tracker on the usage database."""
    with running_tracker(usage_database_url, server, SERVICE_TOKEN) as tracker, running_simulator() as sim:
        running = start_recruiting(
            recruiting_settings(
                server, database_url, tracker.target, base_url=sim.base_url, api_key=sim.api_key
            )
        )
        try:
            yield Recruiting(f"127.0.0.1:{running.port}", tracker.target)
        finally:
            running.stop()


@contextlib.contextmanager
def gateway_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client
