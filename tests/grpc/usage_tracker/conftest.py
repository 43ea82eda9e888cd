"""Fixtures for the tracker's gRPC tests: a real in-process server (bootstrap.start on 127.0.0.1:0), a
real channel carrying the service token, and the OpenAI simulator (one per module, reset per test)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest
from hiremeter.usage.v1 import usage_tracker_pb2_grpc

from services.common.grpc_client import service_channel
from services.usage_tracker.bootstrap import start
from tests.conftest import SERVICE_TOKEN
from tests.grpc.usage_tracker.tracker_helpers import TrackerHandle, settings_for
from tools.openai_sim.testing import SimulatorHandle


@pytest.fixture
def tracker_for(usage_database_url, server_settings, engine_for) -> Iterator[Callable[..., TrackerHandle]]:
    """Starts a tracker on the test's migrated database: tracker_for(sim=None, **usage_api_settings)."""
    stack = contextlib.ExitStack()

    def make(sim: SimulatorHandle | None = None, **usage_api) -> TrackerHandle:
        running = start(settings_for(usage_database_url, server_settings, sim, **usage_api))
        stack.callback(running.stop)
        channel = service_channel(f"127.0.0.1:{running.port}", SERVICE_TOKEN)
        stack.callback(channel.close)
        stub = usage_tracker_pb2_grpc.UsageTrackerStub(channel)
        return TrackerHandle(stub, engine_for(usage_database_url), running.port)

    with stack:
        yield make


@pytest.fixture
def tracker(tracker_for) -> TrackerHandle:
    """A tracker without the usage API (operations without usage fall back)."""
    return tracker_for()
