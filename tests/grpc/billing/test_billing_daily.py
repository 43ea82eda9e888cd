"""GetDailyCosts: one entry per local day with the three categories, equal to the ledger grouped by local
date, across DST changes and partial-hour offsets."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hiremeter.billing.v1 import billing_pb2

from tests.grpc.billing.billing_seed import seed_row

UTC = dt.UTC
CATEGORIES = ("cv_parsing", "question_generation", "video_interview")


def daily(billing, start, end, tz="", company="acme"):
    return billing.GetDailyCosts(
        billing_pb2.GetDailyCostsRequest(
            company_id=company, period=billing_pb2.Period(start_date=start, end_date=end, time_zone=tz)
        ),
        timeout=10,
    )


def test_every_day_is_present_with_zeros(billing):
    answer = daily(billing, "2025-02-01", "2025-02-28")
    assert [day.date for day in answer.days][:2] == ["2025-02-01", "2025-02-02"]
    assert len(answer.days) == 28
    assert all(len(day.categories) == 3 and day.total_cost == "0" for day in answer.days)
    assert answer.total_cost == "0"


@pytest.mark.parametrize("tz", ["UTC", "Asia/Kolkata", "America/New_York", "Australia/Lord_Howe"])
def test_days_equal_the_ledger_grouped_by_local_date(billing, usage_engine, tz):
    zone = ZoneInfo(tz)
    rows = []
    # March 2025 crosses the US DST start (9 March) and Lord Howe's half-hour DST end (6 April is outside).
    start = dt.datetime(2025, 3, 7, tzinfo=zone).astimezone(UTC)
    for index in range(60):
        instant = start + dt.timedelta(minutes=97 * index + 13)
        category = CATEGORIES[index % 3]
        rows.append(
            seed_row(
                usage_engine,
                company_id="acme",
                category=category,
                completed_at=instant,
                base_cost=f"0.{index + 1:04d}",
                quantity=None if category == "cv_parsing" else "2",
            )
        )
    seed_row(
        usage_engine,
        company_id="globex",
        category="cv_parsing",
        completed_at=start + dt.timedelta(hours=5),
        base_cost="50",
    )
    answer = daily(billing, "2025-03-07", "2025-03-11", tz)
    expected: dict[tuple[str, str], Decimal] = {}
    for row in rows:
        local = row["completed_at"].astimezone(zone).date().isoformat()
        expected[(local, row["category"])] = expected.get((local, row["category"]), Decimal(0)) + row["cost"]
    got = {}
    for day in answer.days:
        for entry in day.categories:
            cost = Decimal(entry.cost)
            if cost:
                got[(day.date, CATEGORIES[entry.category - 1])] = cost
        assert Decimal(day.total_cost) == sum(Decimal(c.cost) for c in day.categories)
    in_period = {key: value for key, value in expected.items() if "2025-03-07" <= key[0] <= "2025-03-11"}
    assert got == in_period
    assert Decimal(answer.total_cost) == sum(in_period.values())
