"""Test helpers for billing: seed the tracker's ledger exactly as the tracker writes it, and start billing.

`seed_row` inserts one usage_records row and adds it to its usage_rollups row (company, UTC hour of
completed_at, category, source) in one transaction: operations count records, adjustments count
adjustments, quantity / base_cost / cost sum both kinds. Used where a test needs shapes that Track cannot
produce on demand (reconciliation adjustments, a chosen completed_at far in the past).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import uuid
from collections.abc import Iterator
from decimal import Decimal

import grpc
import sqlalchemy as sa
from hiremeter.billing.v1 import billing_pb2_grpc

from services.billing.bootstrap import start as start_billing
from services.billing.config import Settings as BillingSettings
from services.common.config import ServerSettings
from services.common.grpc_client import service_channel
from services.usage_tracker.storage.tables import TOKEN_COLUMNS, usage_records, usage_rollups

UTC = dt.UTC
UNITS = {"cv_parsing": "cv", "question_generation": "question", "video_interview": "minute"}


def seed_row(
    engine: sa.Engine,
    *,
    company_id: str,
    category: str,
    completed_at: dt.datetime,
    base_cost: str,
    margin: str = "0.25",
    source: str = "response_usage",
    quantity: str | None = None,
    kind: str = "record",
    adjusts_record_id: str | None = None,
    job_id: str = "",
    candidate_id: str = "",
    model: str = "gpt-4o-2024-08-06",
    input_tokens: int = 0,
    output_tokens: int = 0,
    operation_id: str | None = None,
) -> dict:
    base = Decimal(base_cost)
    margin_value = Decimal(margin)
    cost = base * (1 + margin_value)
    if kind == "adjustment":
        source, qty = "reconciliation", Decimal(0)
    else:
        qty = Decimal(quantity) if quantity is not None else Decimal(1)
    record_id = f"rec_{uuid.uuid4().hex[:20]}"
    row = {
        "record_id": record_id,
        "operation_id": operation_id or f"op-{uuid.uuid4().hex}",
        "kind": kind,
        "adjusts_record_id": adjusts_record_id,
        "category": category,
        "company_id": company_id,
        "job_id": job_id,
        "candidate_id": candidate_id,
        "model": model,
        "priced_model": "gpt-4o" if model.startswith("gpt-4o") else "",
        "openai_project_id": "",
        **{name: 0 for name in TOKEN_COLUMNS},
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "quantity": qty,
        "unit": UNITS[category],
        "base_cost": base,
        "margin": margin_value,
        "cost": cost,
        "source": source,
        "price_version": "2024-12-17",
        "fallback_reason": "usage api unavailable" if source == "fallback" else "",
        "payload_hash": hashlib.sha256(record_id.encode()).hexdigest(),
        "started_at": completed_at - dt.timedelta(seconds=5),
        "completed_at": completed_at,
        "created_at": completed_at + dt.timedelta(seconds=1),
    }
    bucket = completed_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    key = {"company_id": company_id, "bucket_start": bucket, "category": category, "source": source}
    r = usage_rollups.c
    with engine.begin() as connection:
        connection.execute(usage_records.insert().values(**row))
        existing = connection.execute(
            sa.select(usage_rollups).where(*(r[name] == value for name, value in key.items()))
        ).first()
        delta = {
            "operations": 1 if kind == "record" else 0,
            "adjustments": 1 if kind == "adjustment" else 0,
            "quantity": qty,
            "base_cost": base,
            "cost": cost,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
        }
        if existing is None:
            connection.execute(usage_rollups.insert().values(**key, **delta))
        else:
            connection.execute(
                usage_rollups.update()
                .where(*(r[name] == value for name, value in key.items()))
                .values(**{name: getattr(existing, name) + value for name, value in delta.items()})
            )
    return row


@contextlib.contextmanager
def running_billing(
    database_url: str, server: ServerSettings, token: str
) -> Iterator[tuple[str, grpc.Channel]]:
    """A real billing server on 127.0.0.1:0 with its interceptors; yields its target and a channel to it."""
    running = start_billing(
        BillingSettings(server=server, database_url=database_url, page_token_secret="pts")
    )
    target = f"127.0.0.1:{running.port}"
    channel = service_channel(target, token)
    try:
        yield target, channel
    finally:
        channel.close()
        running.stop()


def billing_stub(channel: grpc.Channel) -> billing_pb2_grpc.BillingStub:
    return billing_pb2_grpc.BillingStub(channel)


class Tracker:
    """A real UsageTracker: billing's main tests seed through Track, so they read what the tracker writes."""

    def __init__(self, stub, target: str) -> None:
        self.stub = stub
        self.target = target

    def track(
        self,
        *,
        company_id: str,
        category: str,
        completed_at: dt.datetime,
        input_tokens: int | None = 1500,
        output_tokens: int = 500,
        quantity: str = "",
        model: str = "gpt-4o-2024-08-06",
        job_id: str = "",
        candidate_id: str = "",
    ):
        """Tracks one operation; with input_tokens=None no usage is sent (the tracker falls back)."""
        from hiremeter.usage.v1 import usage_tracker_pb2 as pb

        request = pb.TrackRequest(
            operation_id=f"op-{uuid.uuid4().hex}",
            category=pb.Category.Value(f"CATEGORY_{category.upper()}"),
            company_id=company_id,
            job_id=job_id,
            candidate_id=candidate_id,
            model=model,
            quantity=quantity,
        )
        # An interview's minutes must fit between its start and its end.
        seconds = float(Decimal(quantity) * 60) if category == "video_interview" and quantity else 20.0
        request.started_time.FromDatetime(completed_at - dt.timedelta(seconds=seconds))
        request.completed_time.FromDatetime(completed_at)
        if input_tokens is not None:
            request.usage.CopyFrom(pb.TokenUsage(input_tokens=input_tokens, output_tokens=output_tokens))
        return self.stub.Track(request, timeout=10).record


@contextlib.contextmanager
def running_tracker(database_url: str, server: ServerSettings, token: str) -> Iterator[Tracker]:
    """A real tracker on the usage database, without the usage API (operations without usage fall back)."""
    from hiremeter.usage.v1 import usage_tracker_pb2_grpc

    from services.usage_tracker.bootstrap import start as start_tracker
    from services.usage_tracker.config import DEFAULT_FALLBACK_PRICES
    from services.usage_tracker.config import Settings as TrackerSettings

    running = start_tracker(
        TrackerSettings(
            server=server,
            database_url=database_url,
            default_margin=Decimal("0.25"),
            fallback_prices={name: Decimal(value) for name, value in DEFAULT_FALLBACK_PRICES.items()},
            usage_api=None,
            usage_lookup_timeout_seconds=5.0,
            default_openai_project_id="",
            reconcile_settle_seconds=0.0,
        )
    )
    channel = service_channel(f"127.0.0.1:{running.port}", token)
    try:
        yield Tracker(usage_tracker_pb2_grpc.UsageTrackerStub(channel), f"127.0.0.1:{running.port}")
    finally:
        channel.close()
        running.stop()
