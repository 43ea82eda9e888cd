"""Operations without usage, priced from OpenAI's usage API (the local simulator, through the real SDK):
attribution never exceeds what the API reports, calls are shared, and every failure mode of the API still
records the operation, as a flagged fallback, with a bounded number of calls."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import openai
import pytest
import sqlalchemy as sa
from hiremeter.usage.v1 import usage_tracker_pb2 as pb

from tests.grpc.usage_tracker.tracker_helpers import track_request

UTC = dt.UTC
TOKEN_SUMS = "sum(input_tokens), sum(cached_input_tokens), sum(output_tokens), count(*)"


def _minute(minutes_ago: int) -> dt.datetime:
    return dt.datetime.now(UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=minutes_ago)


def _reported(sim, minute: dt.datetime, model: str) -> tuple[int, int, int]:
    """What the simulator's usage API reports for one minute and model (input, cached input, output)."""
    client = openai.OpenAI(
        admin_api_key=sim.admin_key, api_key="unused", base_url=sim.base_url, max_retries=0
    )
    page = client.admin.organization.usage.completions(
        start_time=int(minute.timestamp()),
        end_time=int(minute.timestamp()) + 60,
        bucket_width="1m",
        group_by=["model"],
    )
    results = [r for bucket in page.data for r in bucket.results if r.model == model]
    return (
        sum(r.input_tokens for r in results),
        sum(r.input_cached_tokens for r in results),
        sum(r.output_tokens for r in results),
    )


def _sums(tracker, source: str) -> tuple[int, int, int, int]:
    with tracker.engine.connect() as connection:
        row = connection.execute(
            sa.text(f"SELECT {TOKEN_SUMS} FROM usage_records WHERE source = :source"),  # noqa: S608
            {"source": source},
        ).one()
    return tuple(int(value or 0) for value in row)


def test_fifty_concurrent_operations_share_one_window_and_never_exceed_it(tracker_for, sim):
    minute = _minute(3)
    at = int(minute.timestamp())
    for i in range(50):
        sim.inject_usage(
            model="gpt-4o-2024-08-06",
            time=at + i,
            input_text_tokens=900 + 7 * i,
            input_cached_text_tokens=100 + i,
            output_text_tokens=200 + 3 * i,
        )
    # Usage of another family in the same minute must not be attributed to gpt-4o operations.
    sim.inject_usage(
        model="gpt-4o-mini-2024-07-18", time=at + 5, input_text_tokens=5000, output_text_tokens=500
    )
    # One operation of the window arrives with its own usage: the API's figure includes it.
    sim.inject_usage(model="gpt-4o-2024-08-06", time=at + 2, input_text_tokens=1000, output_text_tokens=400)
    tracker = tracker_for(sim)
    window = {"started": minute + dt.timedelta(seconds=1), "completed": minute + dt.timedelta(seconds=58)}
    held = tracker.stub.Track(
        track_request("with-usage", usage={"input_tokens": 1000, "output_tokens": 400}, **window)
    ).record
    assert held.source == pb.SOURCE_RESPONSE_USAGE

    requests = [track_request(f"no-usage-{i}", job_id=f"job-{i}", **window) for i in range(50)]
    with ThreadPoolExecutor(max_workers=50) as pool:
        records = [
            r.record for r in pool.map(lambda request: tracker.stub.Track(request, timeout=30), requests)
        ]

    calls = sim.stats()["requests"]["usage"]  # before the test's own query below adds one
    reported_input, reported_cached, reported_output = _reported(sim, minute, "gpt-4o-2024-08-06")
    api_input, api_cached, api_output, api_records = _sums(tracker, "usage_api")
    print(
        f"\n50 concurrent operations without usage: {calls} usage API call(s); "
        f"{api_records} usage_api records hold {api_input}/{api_output} in/out tokens; "
        f"the API reports {reported_input}/{reported_output}, of which {held.usage.input_tokens}/"
        f"{held.usage.output_tokens} are held by the response_usage record"
    )
    # The invariant: everything the API reports for the window is attributed, once, and never more.
    assert api_input + held.usage.input_tokens == reported_input
    assert api_cached == reported_cached
    assert api_output + held.usage.output_tokens == reported_output
    assert calls <= 2
    # Fair shares go to the operations being tracked together; any operation that found the window
    # already taken is a flagged fallback, never $0.
    assert api_records >= 1
    for record in records:
        assert record.priced_model == "gpt-4o" and record.base_cost != "0"
        assert record.source == pb.SOURCE_USAGE_API or "no unattributed tokens" in record.fallback_reason

    # A later operation of the same window finds nothing left to attribute: flagged fallback, not $0.
    late = tracker.stub.Track(track_request("late", **window)).record
    assert late.source == pb.SOURCE_FALLBACK and "no unattributed tokens" in late.fallback_reason
    assert _sums(tracker, "usage_api")[:3] == (api_input, api_cached, api_output)


def test_a_batch_of_operations_in_one_window_shares_it_fairly(tracker_for, sim):
    minute = _minute(5)
    sim.inject_usage(
        model="gpt-4o-2024-08-06",
        time=int(minute.timestamp()) + 1,
        input_text_tokens=20_019,
        output_text_tokens=4_000,
    )
    tracker = tracker_for(sim)
    window = {"started": minute, "completed": minute + dt.timedelta(seconds=50)}
    batch = pb.TrackBatchRequest(requests=[track_request(f"share-{i}", **window) for i in range(20)])
    records = [r.record for r in tracker.stub.TrackBatch(batch).results]
    assert all(r.source == pb.SOURCE_USAGE_API for r in records)
    inputs = [r.usage.input_tokens for r in records]
    assert sum(inputs) == 20_019 and max(inputs) - min(inputs) <= 19  # floor shares; the last takes the rest
    assert sum(r.usage.output_tokens for r in records) == 4_000
    # About 1,000 in x 2.50 + 200 out x 10 per 1M each: $0.0045.
    assert all(Decimal("0.0045") <= Decimal(r.base_cost) < Decimal("0.00455") for r in records)
    assert sim.stats()["requests"]["usage"] == 1


def test_project_filter_and_unknown_model(tracker_for, sim):
    minute = _minute(4)
    at = int(minute.timestamp())
    sim.inject_usage(
        model="gpt-4o-2024-08-06",
        time=at + 1,
        project_id="proj_a",
        input_text_tokens=1500,
        output_text_tokens=500,
    )
    sim.inject_usage(
        model="gpt-4o-2024-08-06",
        time=at + 2,
        project_id="proj_b",
        input_text_tokens=9000,
        output_text_tokens=9000,
    )
    tracker = tracker_for(sim)
    window = {"started": minute, "completed": minute + dt.timedelta(seconds=30)}
    record = tracker.stub.Track(track_request("proj-a-op", openai_project_id="proj_a", **window)).record
    assert (record.source, record.usage.input_tokens, record.usage.output_tokens) == (
        pb.SOURCE_USAGE_API,
        1500,
        500,
    )
    assert (record.base_cost, record.cost) == ("0.00875", "0.0109375")
    unknown = tracker.stub.Track(track_request("unknown-op", model="gpt-99", **window)).record
    assert unknown.source == pb.SOURCE_FALLBACK and "gpt-99" in unknown.fallback_reason
    assert sim.stats()["requests"]["usage"] == 1  # the unknown model never reached the API


FAULTS = [
    ("rate_limit", {"retry_after": 5}, "rate limited", 1),
    ("error", {"status": 500}, "", 2),
    ("hang", {"seconds": 10}, "", 2),
    ("malformed", {}, "", 2),
    ("lag", {"seconds": 300}, "no unattributed tokens", 1),
]


@pytest.mark.parametrize(("mode", "params", "reason", "max_calls"), FAULTS, ids=[f[0] for f in FAULTS])
def test_usage_api_failures_still_record_a_fallback_with_bounded_calls(
    tracker_for, sim, mode, params, reason, max_calls
):
    minute = _minute(2)
    sim.inject_usage(
        model="gpt-4o-2024-08-06",
        time=int(minute.timestamp()) + 3,
        input_text_tokens=1500,
        output_text_tokens=500,
    )
    tracker = tracker_for(
        sim, timeout_seconds=0.5, breaker_failures=2, breaker_cooldown_seconds=60.0, min_interval_seconds=0.0
    )
    sim.set_fault("usage", mode, **params)
    window = {"started": minute, "completed": minute + dt.timedelta(seconds=40)}
    sequential = [tracker.stub.Track(track_request(f"{mode}-{i}", **window)).record for i in range(6)]
    with ThreadPoolExecutor(max_workers=10) as pool:
        concurrent = [
            r.record
            for r in pool.map(
                tracker.stub.Track, [track_request(f"{mode}-c{i}", **window) for i in range(10)]
            )
        ]
    records = sequential + concurrent
    calls = sim.stats()["requests"]["usage"]
    print(f"\nusage API fault {mode}: 16 operations recorded with {calls} usage API call(s)")
    assert all(r.source == pb.SOURCE_FALLBACK for r in records)
    assert all((r.base_cost, r.cost, r.margin) == ("0.5", "0.625", "0.25") for r in records)
    assert all(r.fallback_reason for r in records)
    assert reason in records[0].fallback_reason
    assert calls <= max_calls
    assert tracker.count("source = 'fallback'") == 16
    if mode in ("error", "malformed", "hang"):
        assert any("circuit breaker open" in r.fallback_reason for r in records)
        sim.clear_faults()
        after = tracker.stub.Track(track_request(f"{mode}-after", **window)).record
        assert "circuit breaker open" in after.fallback_reason  # still cooling down: no hammering
        assert sim.stats()["requests"]["usage"] == calls
