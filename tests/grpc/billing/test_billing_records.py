"""ListUsageRecords: the ledger newest first, filtered, keyset-paged with page tokens bound to the company
and the filter."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from hiremeter.billing.v1 import billing_pb2
from hiremeter.usage.v1 import usage_tracker_pb2

from tests.grpc.billing.billing_seed import seed_row

UTC = dt.UTC
Category = usage_tracker_pb2.Category
Source = usage_tracker_pb2.Source
MARCH = billing_pb2.Period(start_date="2025-03-01", end_date="2025-03-31")


def listing(billing, company="acme", page_size=0, page_token="", **filter_fields):
    filter_fields.setdefault("period", MARCH)
    return billing.ListUsageRecords(
        billing_pb2.ListUsageRecordsRequest(
            company_id=company,
            filter=billing_pb2.UsageRecordFilter(**filter_fields),
            page_size=page_size,
            page_token=page_token,
        ),
        timeout=10,
    )


@pytest.fixture
def ledger(usage_engine):
    base = dt.datetime(2025, 3, 3, 9, tzinfo=UTC)
    rows = []
    for index in range(7):
        rows.append(
            seed_row(
                usage_engine,
                company_id="acme",
                category=("cv_parsing", "question_generation", "video_interview")[index % 3],
                # Two rows share a completed_at: the id breaks the tie, so paging never skips or repeats.
                completed_at=base + dt.timedelta(hours=index // 2),
                base_cost="0.01",
                quantity=None if index % 3 == 0 else "3",
                source="fallback" if index == 6 else "response_usage",
                job_id="job-a" if index < 4 else "job-b",
                candidate_id=f"cand-{index}",
            )
        )
    rows.append(
        seed_row(
            usage_engine,
            company_id="acme",
            category="video_interview",
            completed_at=rows[6]["completed_at"],
            base_cost="-0.002",
            kind="adjustment",
            adjusts_record_id=rows[6]["record_id"],
        )
    )
    seed_row(usage_engine, company_id="globex", category="cv_parsing", completed_at=base, base_cost="1")
    seed_row(
        usage_engine,
        company_id="acme",
        category="cv_parsing",
        completed_at=base - dt.timedelta(days=10),
        base_cost="1",
    )
    return rows


def test_records_newest_first_with_adjustments(billing, ledger):
    answer = listing(billing)
    assert answer.total_size == 8 and answer.next_page_token == ""
    times = [(r.completed_time.ToDatetime(), r.record_id) for r in answer.records]
    assert times == sorted(times, key=lambda item: item[0], reverse=True)
    adjustment = [r for r in answer.records if r.adjusts_record_id]
    assert len(adjustment) == 1 and adjustment[0].source == Source.SOURCE_RECONCILIATION
    assert adjustment[0].cost == "-0.0025" and adjustment[0].quantity == "0"
    assert {r.company_id for r in answer.records} == {"acme"}


def test_paging_walks_every_record_once(billing, ledger):
    everything = [r.record_id for r in listing(billing, page_size=500).records]
    seen, token, pages = [], "", 0
    while True:
        page = listing(billing, page_size=3, page_token=token)
        assert page.total_size == 8
        seen += [r.record_id for r in page.records]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert seen == everything and pages == 3


@pytest.mark.parametrize(
    ("fields", "count"),
    [
        ({"category": Category.CATEGORY_CV_PARSING}, 3),
        ({"source": Source.SOURCE_FALLBACK}, 1),
        ({"source": Source.SOURCE_RECONCILIATION}, 1),
        ({"job_id": "job-a"}, 4),
        ({"candidate_id": "cand-2"}, 1),
        ({"period": billing_pb2.Period(start_date="2025-02-21", end_date="2025-02-21")}, 1),
        (
            {
                "period": billing_pb2.Period(
                    start_date="2025-03-03", end_date="2025-03-03", time_zone="Asia/Tokyo"
                )
            },
            8,
        ),
        (
            {
                "period": billing_pb2.Period(
                    start_date="2025-03-03", end_date="2025-03-03", time_zone="America/Los_Angeles"
                )
            },
            8,
        ),
        (
            {
                "period": billing_pb2.Period(
                    start_date="2025-03-02", end_date="2025-03-02", time_zone="Asia/Tokyo"
                )
            },
            0,
        ),
    ],
)
def test_filters(billing, ledger, fields, count):
    answer = listing(billing, page_size=100, **fields)
    assert answer.total_size == count == len(answer.records)


def test_no_period_lists_every_record_of_the_company(billing, ledger):
    answer = billing.ListUsageRecords(billing_pb2.ListUsageRecordsRequest(company_id="acme"), timeout=10)
    assert answer.total_size == 9


def test_page_tokens_are_bound_to_company_and_filter(billing, ledger, usage_engine):
    seed_row(
        usage_engine,
        company_id="globex",
        category="cv_parsing",
        completed_at=dt.datetime(2025, 3, 4, tzinfo=UTC),
        base_cost="1",
    )
    token = listing(billing, page_size=2).next_page_token
    assert token
    assert len(listing(billing, page_size=2, page_token=token).records) == 2
    for company, fields in (
        ("globex", {}),
        ("acme", {"category": Category.CATEGORY_CV_PARSING}),
        ("acme", {"period": billing_pb2.Period(start_date="2025-03-01", end_date="2025-03-30")}),
        (
            "acme",
            {
                "period": billing_pb2.Period(
                    start_date="2025-03-01", end_date="2025-03-31", time_zone="Europe/Paris"
                )
            },
        ),
    ):
        with pytest.raises(grpc.RpcError) as error:
            listing(billing, company=company, page_size=2, page_token=token, **fields)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.value.details().startswith("page_token")
    payload, mac = token.split(".")
    for forged in (token + "x", "x" + token, f"{payload}.{mac[::-1]}", "garbage", "a.b.c", "é" * 10):
        with pytest.raises(grpc.RpcError) as error:
            listing(billing, page_size=2, page_token=forged)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_page_size_default_max_and_negative(billing, usage_engine):
    start = dt.datetime(2025, 3, 2, tzinfo=UTC)
    for index in range(55):
        seed_row(
            usage_engine,
            company_id="acme",
            category="cv_parsing",
            completed_at=start + dt.timedelta(minutes=index),
            base_cost="0.01",
        )
    assert len(listing(billing).records) == 50
    assert len(listing(billing, page_size=10_000).records) == 55
    with pytest.raises(grpc.RpcError) as error:
        listing(billing, page_size=-1)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith("page_size")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"category": 42}, "filter.category"),
        ({"source": 9}, "filter.source"),
        ({"job_id": "bad id"}, "filter.job_id"),
        ({"candidate_id": "x" * 200}, "filter.candidate_id"),
        ({"period": billing_pb2.Period(start_date="2025-03-01")}, "filter.period.end_date"),
    ],
)
def test_bad_filters_are_invalid_argument(billing, fields, field):
    with pytest.raises(grpc.RpcError) as error:
        listing(billing, **fields)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith(field)
