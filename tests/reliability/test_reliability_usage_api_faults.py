"""Usage API faults: OpenAI's organization usage and costs APIs misbehave in every way the simulator can, in
turns and then all at once, while interviews without captured usage (the operations that need the usage API)
are completed. Operations never fail because of it, every record that could not be priced from the API is a
flagged fallback (source fallback + a reason), the API is called a bounded number of times (coalescing, the
minimum interval, Retry-After and the circuit breaker), and once the API is healthy again reconciliation
trues up the fallback records it has settled data for, exactly once."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from hiremeter.recruiting.v1 import recruiting_pb2
from hiremeter.usage.v1 import usage_tracker_pb2

from tests.reliability.reliability_load import read_ledger, wait_for_drain

COMPANY = "co-usage-api-faults"
# One interview's settled usage as OpenAI reports it, and its price at gpt-realtime's list prices (USD/1M:
# text in 4.00, cached 0.40, text out 16.00, audio in 32.00, cached audio 0.40, audio out 64.00).
REALTIME_TOKENS = {
    "input_text_tokens": 1_000,
    "input_audio_tokens": 6_000,
    "input_cached_audio_tokens": 2_000,
    "output_text_tokens": 500,
    "output_audio_tokens": 2_000,
}
REALTIME_COST = Decimal("0.3328")  # (1000*4 + 6000*32 + 2000*0.40 + 500*16 + 2000*64) / 1e6
MIN_INTERVAL = 2.0
# (mode, params): every fault the simulator has, each longer than the tracker's 1 s API timeout where
# time matters.
MODES = (
    ("rate_limit", {"retry_after": 2}),
    ("error", {"status": 500}),
    ("error", {"status": 503}),
    ("slow", {"seconds": 2.5}),
    ("malformed", {}),
    ("hang", {"seconds": 30}),
    ("lag", {"seconds": 600}),
)
QUIET = 3.2  # > breaker cooldown, Retry-After and minimum interval below
PER_TURN = 4
AT_ONCE = 16
TRACKER_ENV = {
    "USAGE_API_TIMEOUT_SECONDS": "1",
    "USAGE_API_LOOKUP_TIMEOUT_SECONDS": "3",
    "USAGE_API_CACHE_SECONDS": "1",
    "USAGE_API_MIN_INTERVAL_SECONDS": str(MIN_INTERVAL),
    "USAGE_API_BREAKER_FAILURES": "3",
    "USAGE_API_BREAKER_COOLDOWN_SECONDS": "3",
    "USAGE_API_MAX_RETRY_AFTER_SECONDS": "5",
    "RECONCILE_SETTLE_SECONDS": "0",
    "RECRUITING_TRACK_TIMEOUT_SECONDS": "8",
}


def _interview(stub, job_id: str) -> str:
    """One interview whose usage was not captured: completed without usage, metered via the usage API."""
    started = stub.StartInterview(
        recruiting_pb2.StartInterviewRequest(
            company_id=COMPANY, job_id=job_id, candidate_id=f"cand-{uuid.uuid4().hex[:10]}"
        ),
        timeout=10,
    )
    done = stub.CompleteInterview(
        recruiting_pb2.CompleteInterviewRequest(
            company_id=COMPANY, interview_id=started.interview.interview_id
        ),
        timeout=10,
    )
    assert done.interview.operation_id
    return done.interview.operation_id


def _usage_calls(sim) -> int:
    requests = sim.stats()["requests"]
    return requests.get("usage", 0) + requests.get("costs", 0)


@pytest.mark.slow
def test_usage_api_faults_never_fail_operations_and_fallbacks_are_flagged_and_trued_up(make_suite, figures):
    suite = make_suite(env=TRACKER_ENV)
    stub = suite.recruiting()
    sim = suite.sim
    job_id = f"job-{uuid.uuid4().hex[:8]}"
    turns = []
    operation_ids: list[str] = []
    began = time.monotonic()

    # In turns: one mode at a time on both endpoints.
    for mode, params in MODES:
        sim.clear_faults()
        # Let the previous turn's Retry-After, minimum interval and open breaker lapse, so that this turn's
        # lookups reach the API and meet this mode.
        time.sleep(QUIET)
        sim.set_fault("usage", mode, **params)
        sim.set_fault("costs", mode, **params)
        calls_before, started = _usage_calls(sim), time.monotonic()
        ids = [_interview(stub, job_id) for _ in range(PER_TURN)]
        wait_for_drain(suite, timeout=40)
        operation_ids += ids
        records = read_ledger(suite).by_operation
        sources = [records[op]["source"] for op in ids]
        reasons = sorted(
            {records[op]["fallback_reason"] for op in ids if records[op]["source"] == "fallback"}
        )
        turns.append(
            {
                "mode": mode,
                **params,
                "operations": len(ids),
                "fallbacks": sources.count("fallback"),
                "usage_api_calls": _usage_calls(sim) - calls_before,
                "turn_seconds": round(time.monotonic() - started, 1),
                "reasons": reasons,
            }
        )

    # All at once: a concurrent burst while both endpoints cycle through every mode every 0.3 s.
    stop = threading.Event()

    def rotate() -> None:
        for (mode, params), (other, other_params) in zip(
            itertools.cycle(MODES), itertools.cycle(reversed(MODES)), strict=False
        ):
            if stop.is_set():
                return
            sim.set_fault("usage", mode, **params)
            sim.set_fault("costs", other, **other_params)
            stop.wait(0.3)

    rotator = threading.Thread(target=rotate, daemon=True)
    calls_before, started = _usage_calls(sim), time.monotonic()
    rotator.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            burst = list(pool.map(lambda _: _interview(stub, job_id), range(AT_ONCE)))
        wait_for_drain(suite, timeout=40)
    finally:
        stop.set()
        rotator.join(timeout=5)
        sim.clear_faults()
    operation_ids += burst
    at_once_seconds = time.monotonic() - started
    at_once_calls = _usage_calls(sim) - calls_before
    faulty_seconds = time.monotonic() - began
    faulty_calls = sum(t["usage_api_calls"] for t in turns) + at_once_calls

    ledger = read_ledger(suite)
    records = ledger.by_operation
    assert set(operation_ids) <= set(records), (
        "an operation completed under faults is missing from the ledger"
    )
    fallbacks = [records[op] for op in operation_ids if records[op]["source"] == "fallback"]
    # Under faults nothing can be priced from the API: every record is a flagged fallback, never $0.
    assert len(fallbacks) == len(operation_ids), sorted({records[op]["source"] for op in operation_ids})
    assert all(r["fallback_reason"].strip() for r in fallbacks), "a fallback record without its reason"
    assert all(r["cost"] > 0 for r in fallbacks)
    # Bounded: at most one call per minimum interval per endpoint and hour-block (x2 for a block boundary),
    # far below one call per operation.
    bound = 2 * 2 * (math.ceil(faulty_seconds / MIN_INTERVAL) + 1)
    assert faulty_calls <= bound, (
        f"{faulty_calls} usage/costs API calls in {faulty_seconds:.0f} s (bound {bound})"
    )

    # Healthy again: OpenAI's settled usage for these interviews appears, and reconciliation trues up.
    for record in fallbacks:
        sim.inject_usage(
            model="gpt-realtime-2025-08-28", time=int(record["completed_at"].timestamp()), **REALTIME_TOKENS
        )
    tracker = suite.tracker()
    days = sorted({r["completed_at"].date().isoformat() for r in fallbacks})
    first = [
        tracker.Reconcile(usage_tracker_pb2.ReconcileRequest(date=day), timeout=60).report for day in days
    ]
    adjustments = [a for report in first for a in report.adjustments]
    fallback_ids = {r["record_id"] for r in fallbacks}
    assert adjustments, "reconciliation trued up nothing although the usage API now reports the tokens"
    assert all(a.adjusts_record_id in fallback_ids for a in adjustments)
    assert len({a.adjusts_record_id for a in adjustments}) == len(adjustments), "a record adjusted twice"
    assert all(a.source == usage_tracker_pb2.SOURCE_RECONCILIATION for a in adjustments)
    second = [
        tracker.Reconcile(usage_tracker_pb2.ReconcileRequest(date=day), timeout=60).report for day in days
    ]
    assert not [a for report in second for a in report.adjustments], "re-running reconciliation wrote again"
    after = read_ledger(suite)
    assert len(after.adjustments) == len(adjustments)
    assert after.rollup_cost == sum(r["cost"] for r in after.records) + sum(
        r["cost"] for r in after.adjustments
    )

    figures["usage_api_faults"] = {
        "turns": turns,
        "at_once": {
            "operations": AT_ONCE,
            "usage_api_calls": at_once_calls,
            "burst_seconds": round(at_once_seconds, 1),
        },
        "operations": len(operation_ids),
        "operations_failed": 0,
        "fallback_records": len(fallbacks),
        "usage_api_calls_under_faults": faulty_calls,
        "seconds_under_faults": round(faulty_seconds, 1),
        "call_bound": bound,
        "reconciliation_adjustments": len(adjustments),
        "still_provisional": len(fallbacks) - len(adjustments),
        "unsettled_records_reported": sum(report.unsettled_records for report in first),
    }


def _track(tracker, operation_id: str, started: dt.datetime, minutes: int) -> usage_tracker_pb2.UsageRecord:
    request = usage_tracker_pb2.TrackRequest(
        operation_id=operation_id,
        category=usage_tracker_pb2.CATEGORY_VIDEO_INTERVIEW,
        company_id=COMPANY,
        job_id="job-reconcile",
        candidate_id=operation_id.replace("op", "cand"),
        model="gpt-realtime",
        quantity=str(minutes),
    )
    request.started_time.FromDatetime(started)
    request.completed_time.FromDatetime(started + dt.timedelta(minutes=minutes))
    return tracker.Track(request, timeout=20).record


def test_reconciliation_trues_up_every_fallback_record_of_a_shared_window(make_suite, figures):
    """Two 3-minute interviews in the same minutes fall back while the usage API fails; once it reports
    both interviews' tokens, reconciliation must bill exactly those tokens for the pair: each record trued
    up to its share, not the first one to all of them while the other keeps its fallback charge on top."""
    suite = make_suite(env=TRACKER_ENV)
    tracker = suite.tracker()
    suite.sim.set_fault("usage", "error", status=500)
    started = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20)).replace(second=0, microsecond=0)
    pair = [_track(tracker, f"op-shared-{n}-{uuid.uuid4().hex[:8]}", started, 3) for n in range(2)]
    assert [r.source for r in pair] == [usage_tracker_pb2.SOURCE_FALLBACK] * 2
    assert all(r.fallback_reason for r in pair)
    suite.sim.clear_faults()
    for _ in pair:
        suite.sim.inject_usage(
            model="gpt-realtime-2025-08-28",
            time=int((started + dt.timedelta(minutes=1)).timestamp()),
            **REALTIME_TOKENS,
        )
    report = tracker.Reconcile(
        usage_tracker_pb2.ReconcileRequest(date=started.date().isoformat()), timeout=60
    ).report
    billed = sum(Decimal(r.cost) for r in pair) + sum(Decimal(a.cost) for a in report.adjustments)
    want = 2 * REALTIME_COST * (1 + Decimal("0.25"))
    figures["reconcile_shared_window"] = {
        "fallback_cost": str(sum(Decimal(r.cost) for r in pair)),
        "adjustments": len(report.adjustments),
        "billed_after": str(billed),
        "true_cost": str(want),
    }
    assert {a.adjusts_record_id for a in report.adjustments} == {r.record_id for r in pair}
    assert billed == want
