"""GetUsageSummary on a real server, on SQLite and PostgreSQL: the figures equal a direct SQL sum over the
ledger (records plus adjustments), in UTC and in time zones whose offset is not a whole hour."""

from __future__ import annotations

import datetime as dt
import json
from decimal import ROUND_HALF_EVEN, Decimal

import grpc
import pytest
import sqlalchemy as sa
from hiremeter.billing.v1 import billing_pb2
from hiremeter.usage.v1 import usage_tracker_pb2

from services.common.db import UTCDateTime
from services.usage_tracker.storage.tables import reconciliation_reports
from tests.grpc.billing.billing_seed import seed_row

UTC = dt.UTC
CATEGORIES = ("cv_parsing", "question_generation", "video_interview")


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def summary(billing, company="acme", start="2025-03-01", end="2025-03-31", tz=""):
    return billing.GetUsageSummary(
        billing_pb2.GetUsageSummaryRequest(
            company_id=company, period=billing_pb2.Period(start_date=start, end_date=end, time_zone=tz)
        ),
        timeout=10,
    )


def ledger_totals(engine, company: str, lo: dt.datetime, hi: dt.datetime) -> dict[str, dict[str, Decimal]]:
    """The reference: a direct SQL read of the ledger, records and adjustments, summed exactly."""
    query = sa.text(
        "SELECT category, kind, quantity, base_cost, cost FROM usage_records "
        "WHERE company_id = :company AND completed_at >= :lo AND completed_at < :hi"
    ).bindparams(sa.bindparam("lo", type_=UTCDateTime()), sa.bindparam("hi", type_=UTCDateTime()))
    totals = {
        c: {"cost": Decimal(0), "base_cost": Decimal(0), "quantity": Decimal(0), "ops": 0} for c in CATEGORIES
    }
    with engine.connect() as connection:
        for row in connection.execute(query, {"company": company, "lo": lo, "hi": hi}):
            entry = totals[row.category]
            entry["cost"] += Decimal(str(row.cost))
            entry["base_cost"] += Decimal(str(row.base_cost))
            entry["quantity"] += Decimal(str(row.quantity))
            entry["ops"] += row.kind == "record"
        if engine.dialect.name == "postgresql":
            # On PostgreSQL the ledger's NUMERIC sums in SQL too: the same figures, straight from SUM.
            sql_sums = connection.execute(
                sa.text(
                    "SELECT category, SUM(cost) AS cost FROM usage_records WHERE company_id = :company "
                    "AND completed_at >= :lo AND completed_at < :hi GROUP BY category"
                ).bindparams(
                    sa.bindparam("lo", type_=UTCDateTime()), sa.bindparam("hi", type_=UTCDateTime())
                ),
                {"company": company, "lo": lo, "hi": hi},
            )
            for row in sql_sums:
                assert row.cost == totals[row.category]["cost"]
    return totals


def seed_month(tracker, engine) -> None:
    """March 2025 through the real Track RPC (priced by the tracker), plus one reconciliation adjustment."""
    track = tracker.track
    track(company_id="acme", category="cv_parsing", completed_at=at("2025-03-01T00:00:00"))  # 0.0109375
    track(company_id="acme", category="cv_parsing", completed_at=at("2025-03-05T10:15:00"), job_id="job-1")
    provisional = track(
        company_id="acme", category="cv_parsing", completed_at=at("2025-03-05T10:45:00"), input_tokens=None
    )  # fallback: 0.50 + 25%
    track(
        company_id="acme",
        category="question_generation",
        completed_at=at("2025-03-09T23:59:59"),
        quantity="11",
    )
    track(
        company_id="acme",
        category="video_interview",
        completed_at=at("2025-03-20T12:00:00"),
        quantity="4.5",
        input_tokens=None,
    )
    track(
        company_id="acme",
        category="video_interview",
        completed_at=at("2025-03-31T23:59:59.999999"),
        quantity="1",
    )
    # Reconciliation trues up the fallback CV: a signed adjustment at the record's completed_at (only the
    # tracker's Reconcile job writes these, so the test writes it the same way, ledger row plus rollup).
    seed_row(
        engine,
        company_id="acme",
        category="cv_parsing",
        completed_at=provisional.completed_time.ToDatetime(tzinfo=UTC),
        base_cost="-0.4912",
        kind="adjustment",
        adjusts_record_id=provisional.record_id,
    )
    # Outside the period, and another company: never counted.
    track(
        company_id="acme",
        category="cv_parsing",
        completed_at=at("2025-02-28T23:59:59.999999"),
        input_tokens=None,
    )
    track(company_id="acme", category="cv_parsing", completed_at=at("2025-04-01T00:00:00"), input_tokens=None)
    track(
        company_id="globex", category="cv_parsing", completed_at=at("2025-03-05T10:00:00"), input_tokens=None
    )


def test_summary_equals_a_direct_sql_sum_over_the_ledger_plus_adjustments(billing, tracker, usage_engine):
    seed_month(tracker, usage_engine)
    answer = summary(billing)
    reference = ledger_totals(usage_engine, "acme", at("2025-03-01T00:00:00"), at("2025-04-01T00:00:00"))
    assert answer.company_id == "acme" and answer.currency == "USD"
    assert [usage_tracker_pb2.Category.Name(c.category) for c in answer.categories] == [
        "CATEGORY_CV_PARSING",
        "CATEGORY_QUESTION_GENERATION",
        "CATEGORY_VIDEO_INTERVIEW",
    ]
    for name, category in zip(CATEGORIES, answer.categories, strict=True):
        expected = reference[name]
        assert Decimal(category.total_cost) == expected["cost"], name
        assert Decimal(category.base_cost) == expected["base_cost"], name
        assert Decimal(category.quantity) == expected["quantity"], name
        assert category.operations == expected["ops"], name
        want_average = (
            (expected["cost"] / expected["quantity"]).quantize(Decimal("0.000001"), ROUND_HALF_EVEN)
            if expected["quantity"]
            else Decimal(0)
        )
        assert Decimal(category.average_cost_per_unit) == want_average
    assert [c.unit for c in answer.categories] == ["cv", "question", "minute"]
    assert Decimal(answer.total_cost) == sum(r["cost"] for r in reference.values())
    # Exact text, not a float's approximation: 2 x 0.0109375 + 0.625 (fallback) - 0.614 (adjustment).
    assert answer.categories[0].total_cost == "0.032875"
    assert answer.categories[0].operations == 3
    assert answer.categories[0].adjustments_cost == "-0.614"
    assert answer.categories[0].average_cost_per_unit == "0.010958"


def test_per_source_breakdown_counts_operations_and_adjustments(billing, tracker, usage_engine):
    seed_month(tracker, usage_engine)
    cv = summary(billing).categories[0]
    by_source = {usage_tracker_pb2.Source.Name(s.source): s for s in cv.sources}
    assert list(by_source) == [
        "SOURCE_RESPONSE_USAGE",
        "SOURCE_USAGE_API",
        "SOURCE_FALLBACK",
        "SOURCE_RECONCILIATION",
    ]
    assert by_source["SOURCE_RESPONSE_USAGE"].operations == 2
    assert by_source["SOURCE_FALLBACK"].operations == 1 and by_source["SOURCE_FALLBACK"].cost == "0.625"
    assert by_source["SOURCE_RECONCILIATION"].operations == 0
    assert by_source["SOURCE_RECONCILIATION"].adjustments == 1
    assert by_source["SOURCE_RECONCILIATION"].cost == "-0.614"


def test_an_empty_period_has_the_three_categories_at_zero(billing):
    answer = summary(billing, company="nobody")
    assert [(c.total_cost, c.operations, c.quantity, c.average_cost_per_unit) for c in answer.categories] == [
        ("0", 0, "0", "0")
    ] * 3
    assert answer.total_cost == "0" and answer.reconciled
    assert answer.period.time_zone == "UTC"


def test_reconciled_only_when_every_utc_day_with_usage_has_a_report(billing, tracker, usage_engine):
    seed_month(tracker, usage_engine)
    answer = summary(billing)
    assert not answer.reconciled
    days = list(answer.unreconciled_dates)
    assert days == ["2025-03-01", "2025-03-05", "2025-03-09", "2025-03-20", "2025-03-31"]
    with usage_engine.begin() as connection:
        for day in days:
            connection.execute(
                reconciliation_reports.insert().values(
                    day=dt.date.fromisoformat(day), created_at=dt.datetime.now(UTC), report=json.dumps({})
                )
            )
    answer = summary(billing)
    assert answer.reconciled and list(answer.unreconciled_dates) == []


@pytest.mark.parametrize("tz", ["Asia/Kolkata", "Asia/Kathmandu", "America/St_Johns", "America/New_York"])
def test_periods_in_a_time_zone_are_exact_at_partial_hour_edges(billing, usage_engine, tz):
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(tz)
    lo = dt.datetime(2025, 3, 10, tzinfo=zone).astimezone(UTC)
    hi = dt.datetime(2025, 3, 12, tzinfo=zone).astimezone(UTC)
    # Usage minutes either side of both edges: inside the edges' UTC hours, but on different local days.
    for edge in (lo, hi):
        for minutes, cost in ((-20, "1"), (-1, "2"), (0, "4"), (7, "8"), (25, "16")):
            seed_row(
                usage_engine,
                company_id="acme",
                category="cv_parsing",
                completed_at=edge + dt.timedelta(minutes=minutes),
                base_cost=cost,
            )
    seed_row(
        usage_engine,
        company_id="acme",
        category="video_interview",
        completed_at=lo + dt.timedelta(hours=30),
        base_cost="0.3",
        quantity="2.5",
    )
    answer = summary(billing, start="2025-03-10", end="2025-03-11", tz=tz)
    reference = ledger_totals(usage_engine, "acme", lo, hi)
    for name, category in zip(CATEGORIES, answer.categories, strict=True):
        assert Decimal(category.total_cost) == reference[name]["cost"], (tz, name)
        assert category.operations == reference[name]["ops"]
    assert answer.period.time_zone == tz


@pytest.mark.parametrize(
    ("company", "start", "end", "tz", "field"),
    [
        ("", "2025-03-01", "2025-03-31", "", "company_id"),
        ("a b", "2025-03-01", "2025-03-31", "", "company_id"),
        ("acme", "", "2025-03-31", "", "period.start_date"),
        ("acme", "2025-3-1", "2025-03-31", "", "period.start_date"),
        ("acme", "2025-02-30", "2025-03-31", "", "period.start_date"),
        ("acme", "2025-03-01", "", "", "period.end_date"),
        ("acme", "2025-03-31", "2025-03-01", "", "period.end_date"),
        ("acme", "2024-01-01", "2025-01-01", "", "period"),
        ("acme", "2025-03-01", "2025-03-31", "Mars/Olympus", "period.time_zone"),
        ("acme", "2025-03-01", "2025-03-31", "../../etc/passwd", "period.time_zone"),
    ],
)
def test_bad_requests_are_invalid_argument_naming_the_field(billing, company, start, end, tz, field):
    with pytest.raises(grpc.RpcError) as error:
        summary(billing, company=company, start=start, end=end, tz=tz)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith(field)


def test_a_full_leap_year_is_allowed(billing):
    answer = summary(billing, start="2024-01-01", end="2024-12-31")
    assert answer.period.end_date == "2024-12-31"


def test_average_cost_per_unit_rounds_half_even():
    from services.billing.domain.money import average_per_unit

    assert average_per_unit(Decimal("0.0373695"), Decimal(3)) == "0.012456"  # 0.01245650 -> even
    assert average_per_unit(Decimal("0.0000035"), Decimal(1)) == "0.000004"  # 0.0000035 -> even
    assert average_per_unit(Decimal("5"), Decimal(0)) == "0"
