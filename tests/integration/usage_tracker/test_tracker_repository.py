"""The tracker's repository on SQLite and PostgreSQL: bulk append with a racing duplicate, rollups."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from decimal import Decimal

import sqlalchemy as sa

from services.usage_tracker.domain.pricing import TokenUsage
from services.usage_tracker.storage.repository import Record, UsageRepository
from services.usage_tracker.storage.tables import usage_records, usage_rollups

UTC = dt.UTC
WHEN = dt.datetime(2026, 3, 1, 10, 15, tzinfo=UTC)


def _record(operation_id: str, base: str = "0.00875") -> Record:
    return Record(
        record_id=uuid.uuid4().hex,
        operation_id=operation_id,
        kind="record",
        adjusts_record_id=None,
        category="cv_parsing",
        company_id="acme",
        job_id="",
        candidate_id="",
        model="gpt-4o",
        priced_model="gpt-4o",
        openai_project_id="",
        usage=TokenUsage(1500, 500),
        quantity=Decimal(1),
        unit="cv",
        base_cost=Decimal(base),
        margin=Decimal("0.25"),
        cost=Decimal(base) * Decimal("1.25"),
        source="response_usage",
        price_version="2024-12-17",
        fallback_reason="",
        payload_hash="h" * 64,
        started_at=WHEN,
        completed_at=WHEN,
        created_at=WHEN,
    )


def test_group_append_survives_a_racing_duplicate_and_keeps_rollups_exact(usage_database_url, engine_for):
    engine = engine_for(usage_database_url)
    repository = UsageRepository(engine)
    winner, inserted = repository.append(_record("op-raced"))
    assert inserted
    loser = _record("op-raced", base="9")  # another replica's copy, not seen by the caller's pre-check
    again = _record("op-a", base="7")  # the same operation twice in one group: the first one wins
    batch = [_record("op-a"), loser, _record("op-b", base="0.1"), again]
    results = repository.append_group(batch)
    assert [(r.operation_id, inserted) for r, inserted in results] == [
        ("op-a", True),
        ("op-raced", False),
        ("op-b", True),
        ("op-a", False),
    ]
    assert results[1][0] == winner and results[3][0] is batch[0] and results[0][0] is batch[0]
    assert repository.find("op-raced").record_id == winner.record_id
    assert [inserted for _, inserted in repository.append_group([_record("op-c"), _record("op-d")])] == [
        True
    ] * 2
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(usage_records)).scalar_one() == 5
        [rollup] = connection.execute(sa.select(usage_rollups)).all()
    assert rollup.operations == 5 and rollup.input_tokens == 7500
    assert rollup.bucket_start == WHEN.replace(minute=0)
    assert rollup.base_cost == Decimal("0.00875") * 4 + Decimal("0.1")
    assert rollup.cost == (Decimal("0.00875") * 4 + Decimal("0.1")) * Decimal("1.25")
    assert dataclasses.replace(winner) == repository.find("op-raced")
