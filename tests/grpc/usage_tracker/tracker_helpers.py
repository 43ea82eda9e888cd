"""Helpers of the tracker's gRPC tests: request builders, settings for an in-process tracker, SQL counts."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import sqlalchemy as sa
from google.protobuf.timestamp_pb2 import Timestamp
from hiremeter.usage.v1 import usage_tracker_pb2 as pb
from hiremeter.usage.v1 import usage_tracker_pb2_grpc

from services.usage_tracker.clients.usage_api import UsageApiSettings
from services.usage_tracker.config import DEFAULT_FALLBACK_PRICES, Settings
from tools.openai_sim.testing import SimulatorHandle

UTC = dt.UTC
# Default operation times are fixed for the test session, so that a retried request is identical.
SESSION_START = dt.datetime.now(UTC).replace(microsecond=0)


def stamp(when: dt.datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(when)
    return value


def track_request(operation_id: str, *, usage: dict | None = None, **fields) -> pb.TrackRequest:
    """A valid TrackRequest (a gpt-4o CV parse that completed a minute before the session) with fields overridden."""
    started = fields.pop("started", SESSION_START - dt.timedelta(seconds=70))
    completed = fields.pop("completed", SESSION_START - dt.timedelta(seconds=60))
    request = pb.TrackRequest(
        operation_id=operation_id,
        category=fields.pop("category", pb.CATEGORY_CV_PARSING),
        company_id=fields.pop("company_id", "acme"),
        model=fields.pop("model", "gpt-4o"),
        started_time=stamp(started),
        completed_time=stamp(completed),
        **fields,
    )
    if usage is not None:
        request.usage.CopyFrom(pb.TokenUsage(**usage))
    return request


@dataclasses.dataclass
class TrackerHandle:
    stub: usage_tracker_pb2_grpc.UsageTrackerStub
    engine: sa.Engine
    port: int

    def count(self, where: str = "1=1") -> int:
        with self.engine.connect() as connection:
            query = f"SELECT count(*) FROM usage_records WHERE {where}"  # noqa: S608 - test-written SQL
            return connection.execute(sa.text(query)).scalar_one()

    def rows(self, table: str = "usage_records") -> list[dict]:
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(sa.text(f"SELECT * FROM {table}"))]  # noqa: S608


def settings_for(
    database_url: str, server_settings, sim: SimulatorHandle | None = None, **usage_api
) -> Settings:
    api = None
    if sim is not None:
        api = UsageApiSettings(
            base_url=sim.base_url,
            admin_key=sim.admin_key,
            **{"timeout_seconds": 2.0, "min_interval_seconds": 0.2, **usage_api},
        )
    return Settings(
        server=server_settings,
        max_workers=64,
        database_url=database_url,
        default_margin=Decimal("0.25"),
        fallback_prices={k: Decimal(v) for k, v in DEFAULT_FALLBACK_PRICES.items()},
        usage_api=api,
        usage_lookup_timeout_seconds=5.0,
        default_openai_project_id="proj_default",
        reconcile_settle_seconds=0.0,
    )
