"""Recruiting gRPC fixtures: the OpenAI simulator, a fake UsageTracker and a real recruiting server."""

from __future__ import annotations

import grpc
import pytest
import sqlalchemy as sa
from hiremeter.recruiting.v1 import recruiting_pb2_grpc
from hiremeter.usage.v1 import usage_tracker_pb2

from services.common.grpc_client import service_channel
from services.recruiting.bootstrap import start
from services.recruiting.storage.tables import outbox
from tests.conftest import SERVICE_TOKEN
from tests.support.recruiting import recruiting_settings, start_fake_tracker


@pytest.fixture
def tracker(server_settings):
    running, fake = start_fake_tracker(server_settings)
    yield fake
    running.stop()


@pytest.fixture
def recruiting(server_settings, recruiting_database_url, tracker, sim):
    running = start(
        recruiting_settings(
            server_settings,
            recruiting_database_url,
            f"127.0.0.1:{tracker.port}",
            base_url=sim.base_url,
            api_key=sim.api_key,
        )
    )
    yield running
    running.stop()


@pytest.fixture
def stub(recruiting):
    channel = service_channel(f"127.0.0.1:{recruiting.port}", SERVICE_TOKEN)
    yield recruiting_pb2_grpc.RecruitingStub(channel)
    channel.close()


@pytest.fixture
def outbox_rows(recruiting_database_url, engine_for):
    """The TrackRequests recruiting completed (ready or sent): reservations and abandoned rows left out."""
    engine = engine_for(recruiting_database_url)

    def rows() -> list[usage_tracker_pb2.TrackRequest]:
        with engine.connect() as connection:
            payloads = (
                connection.execute(
                    sa.select(outbox.c.payload)
                    .where(outbox.c.state.in_(("ready", "sent")))
                    .order_by(outbox.c.id)
                )
                .scalars()
                .all()
            )
        return [usage_tracker_pb2.TrackRequest.FromString(p) for p in payloads]

    return rows


@pytest.fixture
def outbox_states(recruiting_database_url, engine_for):
    """Every outbox row as (state, last_error), in order."""
    engine = engine_for(recruiting_database_url)

    def states() -> list[tuple[str, str]]:
        with engine.connect() as connection:
            query = sa.select(outbox.c.state, outbox.c.last_error).order_by(outbox.c.id)
            return [tuple(row) for row in connection.execute(query)]

    return states


def code_of(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()
