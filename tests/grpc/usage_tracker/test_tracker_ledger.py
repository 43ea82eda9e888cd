"""Idempotency, concurrency, batches and rollups through the real gRPC surface on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hiremeter.usage.v1 import usage_tracker_pb2 as pb
from hiremeter.usage.v1 import usage_tracker_pb2_grpc as pb_grpc

from tests.grpc.usage_tracker.tracker_helpers import track_request

UTC = dt.UTC
USAGE = {"input_tokens": 1500, "output_tokens": 500}


def test_retry_returns_the_original_and_a_changed_payload_is_refused(tracker):
    first = tracker.stub.Track(track_request("op-1", usage=USAGE, job_id="job-7"))
    again = tracker.stub.Track(track_request("op-1", usage=USAGE, job_id="job-7"))
    assert not first.duplicate and again.duplicate
    assert again.record == first.record

    for changes, field in [
        ({"model": "gpt-4o-mini"}, "model"),
        ({"job_id": "job-8"}, "job_id"),
        ({"usage": {**USAGE, "output_tokens": 501}}, "usage"),
    ]:
        with pytest.raises(grpc.RpcError) as error:
            tracker.stub.Track(track_request("op-1", **{"usage": USAGE, "job_id": "job-7", **changes}))
        assert error.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert error.value.details() == f"operation_id op-1 was already tracked with a different {field}"
    assert tracker.count() == 1


def test_one_hundred_concurrent_identical_tracks_make_one_record(tracker):
    request = track_request("op-race", usage=USAGE)
    with ThreadPoolExecutor(max_workers=32) as pool:
        responses = list(pool.map(lambda _: tracker.stub.Track(request, timeout=30), range(100)))
    assert sum(not r.duplicate for r in responses) == 1
    assert sum(r.duplicate for r in responses) == 99
    assert len({r.record.record_id for r in responses}) == 1
    assert tracker.count("operation_id = 'op-race'") == 1
    rollups = tracker.rows("usage_rollups")
    assert len(rollups) == 1 and rollups[0]["operations"] == 1


def test_a_burst_of_tracks_shares_commits_and_each_gets_its_own_answer(tracker):
    """64 callers at once: distinct operations, retries of one operation and a conflicting copy of it land
    in the same group commits; each caller gets its own record (or ALREADY_EXISTS), nothing is doubled."""
    requests = [track_request(f"burst-{n}", usage=USAGE, company_id=f"co-{n % 5}") for n in range(200)]
    requests += [track_request("burst-7", usage=USAGE, company_id="co-2")] * 20
    conflicting = track_request("burst-7", usage={**USAGE, "output_tokens": 9}, company_id="co-2")

    def call(request):
        try:
            return tracker.stub.Track(request, timeout=30)
        except grpc.RpcError as error:
            return error.code()

    with ThreadPoolExecutor(max_workers=64) as pool:
        answers = list(pool.map(call, [*requests, conflicting]))
    assert answers[-1] == grpc.StatusCode.ALREADY_EXISTS
    records = answers[:-1]
    assert [r.record.operation_id for r in records] == [r.operation_id for r in requests]
    assert sum(not r.duplicate for r in records) == 200 and sum(r.duplicate for r in records) == 20
    assert len({r.record.record_id for r in records if r.record.operation_id == "burst-7"}) == 1
    assert tracker.count() == 200
    rollups = tracker.rows("usage_rollups")
    assert sum(r["operations"] for r in rollups) == 200 and len(rollups) == 5
    assert sum(Decimal(str(r["cost"])) for r in rollups) == Decimal("0.0109375") * 200


def test_batch_tracks_in_order_with_duplicates(tracker):
    tracker.stub.Track(track_request("b-0", usage=USAGE))
    batch = pb.TrackBatchRequest(
        requests=[
            track_request("b-0", usage=USAGE),
            track_request("b-1", usage=USAGE, category=pb.CATEGORY_QUESTION_GENERATION, quantity="8"),
            track_request("b-2", model="mystery"),
            track_request("b-1", usage=USAGE, category=pb.CATEGORY_QUESTION_GENERATION, quantity="8"),
        ]
    )
    results = tracker.stub.TrackBatch(batch).results
    assert [r.duplicate for r in results] == [True, False, False, True]
    assert [r.record.operation_id for r in results] == ["b-0", "b-1", "b-2", "b-1"]
    assert results[2].record.source == pb.SOURCE_FALLBACK
    assert tracker.count() == 3


def test_rollups_equal_the_ledger_after_a_mixed_workload(tracker):
    now = dt.datetime.now(UTC).replace(microsecond=0)
    requests = []
    for i in range(60):
        completed = now - dt.timedelta(minutes=37 * i)  # spread over many UTC hours
        fields = {
            "company_id": ("acme", "globex", "initech")[i % 3],
            "started": completed - dt.timedelta(seconds=30),
            "completed": completed,
        }
        if i % 4 == 0:
            fields.update(category=pb.CATEGORY_VIDEO_INTERVIEW, quantity="0.5", model="gpt-realtime")
        elif i % 4 == 1:
            fields.update(category=pb.CATEGORY_QUESTION_GENERATION, quantity=str(5 + i))
        if i % 5 != 0:
            fields["usage"] = {"input_tokens": 1000 + i, "cached_input_tokens": i, "output_tokens": 300 + i}
        requests.append(track_request(f"mix-{i}", **fields))
    tracker.stub.TrackBatch(pb.TrackBatchRequest(requests=requests[:30]))
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(tracker.stub.Track, requests[30:]))
    tracker.stub.Track(requests[3])  # a duplicate changes nothing

    expected: dict[tuple, dict] = defaultdict(lambda: defaultdict(Decimal))
    for row in tracker.rows():
        hour = row["completed_at"]
        hour = (hour if isinstance(hour, dt.datetime) else dt.datetime.fromisoformat(hour)).replace(
            minute=0, second=0, microsecond=0, tzinfo=None
        )
        sums = expected[(row["company_id"], hour, row["category"], row["source"])]
        sums["operations"] += row["kind"] == "record"
        sums["adjustments"] += row["kind"] == "adjustment"
        sums["quantity"] += Decimal(str(row["quantity"])) if row["kind"] == "record" else 0
        sums["base_cost"] += Decimal(str(row["base_cost"]))
        sums["cost"] += Decimal(str(row["cost"]))
        sums["input_tokens"] += row["input_tokens"]
        sums["output_tokens"] += row["output_tokens"]
    actual = {}
    for row in tracker.rows("usage_rollups"):
        hour = row["bucket_start"]
        hour = (hour if isinstance(hour, dt.datetime) else dt.datetime.fromisoformat(hour)).replace(
            tzinfo=None
        )
        key = (row["company_id"], hour, row["category"], row["source"])
        actual[key] = {name: Decimal(str(row[name])) for name in expected[key]}
    assert actual == {key: dict(value) for key, value in expected.items()}
    assert sum(v["operations"] for v in actual.values()) == 60


def test_token_is_required_and_health_is_served(tracker):
    channel = grpc.insecure_channel(f"127.0.0.1:{tracker.port}")
    try:
        with pytest.raises(grpc.RpcError) as error:
            pb_grpc.UsageTrackerStub(channel).Track(track_request("op-anon", usage=USAGE))
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="hiremeter.usage.v1.UsageTracker")
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        channel.close()
    assert tracker.count() == 0
