"""Billing gRPC fixtures: a migrated usage database on both backends, a real billing server over it."""

from __future__ import annotations

import pytest

from tests.conftest import SERVICE_TOKEN
from tests.grpc.billing.billing_seed import billing_stub, running_billing, running_tracker


@pytest.fixture
def usage_engine(usage_database_url, engine_for):
    return engine_for(usage_database_url)


@pytest.fixture
def billing(usage_database_url, server_settings):
    """A BillingStub on a real server reading the test's usage database."""
    with running_billing(usage_database_url, server_settings, SERVICE_TOKEN) as (_target, channel):
        yield billing_stub(channel)


@pytest.fixture
def tracker(usage_database_url, server_settings):
    """A real UsageTracker on the same database: tests seed through Track, as production writes."""
    with running_tracker(usage_database_url, server_settings, SERVICE_TOKEN) as handle:
        yield handle
