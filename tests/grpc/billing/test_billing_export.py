"""ExportUsage: the same records as ListUsageRecords, as CSV with a header, in slices of at most 64 KiB;
and the service token is required on every billing RPC."""

from __future__ import annotations

import csv
import datetime as dt
import io

import grpc
import pytest
from hiremeter.billing.v1 import billing_pb2, billing_pb2_grpc

from services.billing.csv_export import COLUMNS, csv_chunks
from tests.grpc.billing.billing_seed import seed_row

UTC = dt.UTC
MARCH = billing_pb2.Period(start_date="2025-03-01", end_date="2025-03-31")


def test_export_matches_the_listing_and_streams_in_64_kib_slices(billing, usage_engine):
    start = dt.datetime(2025, 3, 2, tzinfo=UTC)
    for index in range(240):
        seed_row(
            usage_engine,
            company_id="acme",
            category="question_generation",
            completed_at=start + dt.timedelta(minutes=7 * index),
            base_cost=f"0.{index:05d}1",
            quantity="11",
            job_id=f"job-{index % 4}",
            candidate_id=f"candidate-with-a-long-identifier-{index:05d}",
            model="=HYPERLINK(evil)" if index == 0 else "gpt-4o-2024-08-06",
            input_tokens=1500 + index,
            output_tokens=500,
        )
    seed_row(usage_engine, company_id="globex", category="cv_parsing", completed_at=start, base_cost="1")
    request_filter = billing_pb2.UsageRecordFilter(period=MARCH)
    chunks = [
        piece.data
        for piece in billing.ExportUsage(
            billing_pb2.ExportUsageRequest(company_id="acme", filter=request_filter), timeout=30
        )
    ]
    assert len(chunks) >= 2 and all(len(chunk) <= 64 * 1024 for chunk in chunks)
    table = list(csv.DictReader(io.StringIO(b"".join(chunks).decode())))
    listed = billing.ListUsageRecords(
        billing_pb2.ListUsageRecordsRequest(company_id="acme", filter=request_filter, page_size=500),
        timeout=10,
    ).records
    assert [row["record_id"] for row in table] == [record.record_id for record in listed]
    assert [row["cost"] for row in table] == [record.cost for record in listed]
    first = table[-1]  # oldest last
    assert first["model"] == "'=HYPERLINK(evil)"  # neutralised for spreadsheets
    assert first["input_tokens"] == "1500" and first["unit"] == "question" and first["quantity"] == "11"
    assert first["completed_time"] == "2025-03-02T00:00:00.000000Z"
    assert list(table[0]) == list(COLUMNS)


def test_an_empty_export_is_the_header_alone(billing):
    chunks = list(billing.ExportUsage(billing_pb2.ExportUsageRequest(company_id="nobody"), timeout=10))
    assert b"".join(piece.data for piece in chunks).decode().strip() == ",".join(COLUMNS)


def test_export_validates_like_the_listing(billing):
    with pytest.raises(grpc.RpcError) as error:
        list(billing.ExportUsage(billing_pb2.ExportUsageRequest(company_id=""), timeout=10))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_chunks_never_exceed_the_limit():
    rows = [
        {
            "record_id": f"r{i}",
            "operation_id": "o",
            "kind": "record",
            "adjusts_record_id": None,
            "created_at": dt.datetime(2025, 1, 1, tzinfo=UTC),
            "started_at": dt.datetime(2025, 1, 1, tzinfo=UTC),
            "completed_at": dt.datetime(2025, 1, 1, tzinfo=UTC),
            "category": "cv_parsing",
            "job_id": "é" * 50,
            "candidate_id": "",
            "model": "m",
            "priced_model": "",
            "source": "fallback",
            "quantity": 1,
            "unit": "cv",
            "base_cost": 1,
            "margin": 0,
            "cost": 1,
            "price_version": "",
            "fallback_reason": "",
            "input_tokens": 0,
            "output_tokens": 0,
            "cached_input_tokens": 0,
            "input_audio_tokens": 0,
            "cached_input_audio_tokens": 0,
            "output_audio_tokens": 0,
            "reasoning_tokens": 0,
        }
        for i in range(100)
    ]
    from decimal import Decimal

    for row in rows:
        row.update(quantity=Decimal(1), base_cost=Decimal(1), margin=Decimal(0), cost=Decimal(1))
    chunks = list(csv_chunks(rows, chunk_bytes=1000))
    assert all(len(chunk) <= 1000 for chunk in chunks) and len(chunks) > 5
    assert len(list(csv.reader(io.StringIO(b"".join(chunks).decode())))) == 101


def test_every_billing_rpc_requires_the_service_token(usage_database_url, server_settings):
    from tests.grpc.billing.billing_seed import running_billing

    with running_billing(usage_database_url, server_settings, "wrong-token") as (_target, channel):
        stub = billing_pb2_grpc.BillingStub(channel)
        period = billing_pb2.Period(start_date="2025-03-01", end_date="2025-03-01")
        calls = [
            lambda: stub.GetUsageSummary(
                billing_pb2.GetUsageSummaryRequest(company_id="a", period=period), timeout=5
            ),
            lambda: stub.GetDailyCosts(
                billing_pb2.GetDailyCostsRequest(company_id="a", period=period), timeout=5
            ),
            lambda: stub.ListUsageRecords(billing_pb2.ListUsageRecordsRequest(company_id="a"), timeout=5),
            lambda: list(stub.ExportUsage(billing_pb2.ExportUsageRequest(company_id="a"), timeout=5)),
        ]
        for call in calls:
            with pytest.raises(grpc.RpcError) as error:
                call()
            assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
