"""Gateway fixtures: the app (TestClient) over a real billing server on the test's usage database and a real
recruiting server backed by the OpenAI simulator, relaying to a real tracker on that same database."""

from __future__ import annotations

import pytest

from tests.conftest import SERVICE_TOKEN
from tests.gateway.gateway_kit import gateway_client, gateway_settings, running_recruiting
from tests.grpc.billing.billing_seed import running_billing


@pytest.fixture
def usage_engine(usage_database_url, engine_for):
    return engine_for(usage_database_url)


@pytest.fixture
def billing_target(usage_database_url, server_settings):
    with running_billing(usage_database_url, server_settings, SERVICE_TOKEN) as (target, _channel):
        yield target


@pytest.fixture
def recruiting(recruiting_database_url, usage_database_url, server_settings):
    with running_recruiting(server_settings, recruiting_database_url, usage_database_url) as running:
        yield running


@pytest.fixture
def api(billing_target):
    """The gateway over real billing; recruiting is not running (its routes answer 503)."""
    with gateway_client(gateway_settings(billing_target, "127.0.0.1:9")) as client:
        yield client


@pytest.fixture
def full_api(billing_target, recruiting):
    with gateway_client(gateway_settings(billing_target, recruiting.target)) as client:
        client.recruiting = recruiting
        yield client
