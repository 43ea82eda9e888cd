"""The suite's metering path for real: the OpenAI simulator, the real UsageTracker on its own database, and a
recruiting server whose relay delivers to it. Both databases are on the test's backend."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa
from hiremeter.recruiting.v1 import recruiting_pb2_grpc

from services.common.config import Env
from services.common.grpc_client import service_channel
from services.common.grpc_server import RunningServer
from services.recruiting.bootstrap import start as start_recruiting
from services.recruiting.outbox.relay import RelaySettings
from services.recruiting.storage.repository import SqlRepository
from services.usage_tracker.bootstrap import start as start_tracker
from services.usage_tracker.config import Settings as TrackerSettings
from tests.conftest import SERVICE_TOKEN
from tests.support.recruiting import recruiting_settings


@dataclass
class ShiftedClock:
    """Real time minus `offset`: lets a test start an interview 'four minutes ago'."""

    offset: dt.timedelta = field(default_factory=dt.timedelta)

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) - self.offset


@dataclass
class Stack:
    sim: object
    usage_database_url: str
    recruiting_database_url: str
    usage_engine: sa.Engine
    recruiting: RunningServer
    stub: recruiting_pb2_grpc.RecruitingStub
    clock: ShiftedClock
    tracker: RunningServer | None = None
    tracker_port: int = 0

    def start_tracker(self) -> None:
        env = {
            "HIREMETER_SERVICE_TOKEN": SERVICE_TOKEN,
            "USAGE_TRACKER_HOST": "127.0.0.1",
            "USAGE_TRACKER_PORT": str(self.tracker_port),
            "USAGE_TRACKER_METRICS_PORT": "0",
            "HIREMETER_SHUTDOWN_GRACE_SECONDS": "0.5",
            "USAGE_DATABASE_URL": self.usage_database_url,
            "OPENAI_BASE_URL": self.sim.base_url,
            "OPENAI_ADMIN_KEY": self.sim.admin_key,
            "USAGE_API_TIMEOUT_SECONDS": "2",
            "USAGE_API_LOOKUP_TIMEOUT_SECONDS": "4",
        }
        self.tracker = start_tracker(TrackerSettings.from_env(Env(env)))
        self.tracker_port = self.tracker.port

    def stop_tracker(self) -> None:
        self.tracker.stop()
        self.tracker = None

    def ledger(self, operation_ids=None) -> list:
        from services.usage_tracker.storage.tables import usage_records

        query = sa.select(usage_records).where(usage_records.c.kind == "record")
        if operation_ids is not None:
            query = query.where(usage_records.c.operation_id.in_(list(operation_ids)))
        with self.usage_engine.connect() as connection:
            return connection.execute(query).all()

    def pending(self) -> int:
        return SqlRepository(self.recruiting_engine).pending_stats()[0]

    def wait_for_ledger(self, operation_ids, seconds: float = 20.0) -> list:
        deadline = time.monotonic() + seconds
        wanted = set(operation_ids)
        while True:
            rows = self.ledger(wanted)
            if len(rows) >= len(wanted):
                return rows
            assert time.monotonic() < deadline, f"{len(rows)} of {len(wanted)} operations in the ledger"
            time.sleep(0.05)


@pytest.fixture
def stack(usage_database_url, recruiting_database_url, server_settings, sim, engine_for):
    clock = ShiftedClock()
    holder = Stack(
        sim, usage_database_url, recruiting_database_url, engine_for(usage_database_url), None, None, clock
    )
    holder.recruiting_engine = engine_for(recruiting_database_url)
    holder.start_tracker()
    settings = recruiting_settings(
        server_settings,
        recruiting_database_url,
        f"127.0.0.1:{holder.tracker_port}",
        base_url=sim.base_url,
        api_key=sim.api_key,
        relay=RelaySettings(
            backoff_base_seconds=0.05,
            backoff_max_seconds=1.0,
            track_timeout_seconds=10,
            idle_poll_seconds=0.5,
        ),
    )
    holder.recruiting = start_recruiting(settings, clock=clock)
    channel = service_channel(f"127.0.0.1:{holder.recruiting.port}", SERVICE_TOKEN)
    holder.stub = recruiting_pb2_grpc.RecruitingStub(channel)
    try:
        yield holder
    finally:
        channel.close()
        holder.recruiting.stop()
        if holder.tracker is not None:
            holder.tracker.stop()
