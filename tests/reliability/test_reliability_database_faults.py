"""Database faults: the suite runs on a PostgreSQL cluster of its own, which is crashed (`pg_ctl stop -m
immediate`) and restarted in the middle of a load. Nothing is lost, nothing doubled, and every service recovers
on its own: the same processes (no restart) serve again, the relay delivers the backlog, billing answers."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
import sqlalchemy as sa
from hiremeter.billing.v1 import billing_pb2
from hiremeter.recruiting.v1 import recruiting_pb2

from services.common import db
from services.recruiting.storage.tables import outbox
from tests.reliability.reliability_load import CV_TEXT, Load, check_exactly_once, read_ledger, wait_for_drain

OPERATIONS = 80
CONCURRENCY = 6
RATE = 8.0
CRASH_AT = 25  # intents finished
DOWN_SECONDS = 3.0


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_crash_and_restart_during_load_loses_and_doubles_nothing(pg_cluster, make_suite, figures):
    suite = make_suite(
        usage_url=pg_cluster.create_database("usage"),
        recruiting_url=pg_cluster.create_database("recruiting"),
    )
    suite.sim.set_fault("chat", "slow", seconds=0.2)
    pids = {name: proc.process.pid for name, proc in suite.processes.items()}
    load = Load(suite, company_id="co-database-faults", per_intent_deadline=60)
    progress = [0]
    crash: dict = {}

    def on_progress(done: int) -> None:
        progress[0] = done

    def crash_and_restart() -> None:
        try:
            deadline = time.monotonic() + 60
            while progress[0] < CRASH_AT and time.monotonic() < deadline:
                time.sleep(0.02)
            crash["at_intent"] = progress[0]
            pg_cluster.stop("immediate")
            time.sleep(DOWN_SECONDS)
            crash["restart_seconds"] = round(pg_cluster.start(), 2)
            crash["up_at"] = time.monotonic()
        except BaseException as error:  # noqa: BLE001 - reported by the test
            crash["error"] = error

    thread = threading.Thread(target=crash_and_restart, daemon=True)
    thread.start()
    result = load.run(OPERATIONS, concurrency=CONCURRENCY, rate=RATE, on_progress=on_progress, deadline=120)
    thread.join(timeout=60)
    assert "error" not in crash, f"crash injection failed: {crash.get('error')!r}"
    assert "up_at" in crash, "PostgreSQL was never restarted"

    # Recovery without a restart: the same processes are serving.
    assert {name: proc.process.pid for name, proc in suite.processes.items()} == pids
    assert not suite.dead()
    failed = [i for i in result.intents if not i.done]
    assert not failed, (
        f"{len(failed)} intents never succeeded, e.g. {failed[0].kind}: {failed[0].errors[-3:]}"
    )
    drain = wait_for_drain(suite, timeout=60)
    ledger = read_ledger(suite)
    summary = check_exactly_once(result, ledger)

    # Billing reads the recovered database through its own (pre-pinged) pool.
    today = time.strftime("%Y-%m-%d", time.gmtime())
    answer = suite.billing().GetUsageSummary(
        billing_pb2.GetUsageSummaryRequest(
            company_id="co-database-faults", period=billing_pb2.Period(start_date=today, end_date=today)
        ),
        timeout=10,
    )
    assert sum(c.operations for c in answer.categories) == len(ledger.records)

    errors = [e for i in result.intents for e in i.errors]
    chat_calls = suite.sim.stats()["requests"]["chat"]
    cv_records = sum(1 for r in ledger.records if r["category"] == "cv_parsing")
    figures["database_faults"] = {
        **summary,
        "load_seconds": round(result.seconds, 1),
        "crashed_at_intent": crash["at_intent"],
        "down_seconds": DOWN_SECONDS,
        "postgres_restart_seconds": crash["restart_seconds"],
        "drain_seconds_after_load": round(drain, 2),
        "client_errors_retried": len(errors),
        "client_error_codes": sorted(set(errors)),
        "openai_chat_calls": chat_calls,
        "openai_calls_spent_but_unbilled": chat_calls - cv_records,
    }


IN_FLIGHT = 6  # calls whose OpenAI answer arrives while the database is down (the process survives)
DURING_OUTAGE = 4  # calls made while the database is down: refused before OpenAI is called
LOST_WITH_PROCESS = 3  # calls answered by OpenAI while the database is down, then recruiting is killed
ORPHAN_GRACE = 6.0


def _parse_in_threads(suite, candidates: list[str]) -> tuple[list[threading.Thread], dict]:
    outcomes: dict[str, object] = {}

    def call(candidate: str) -> None:
        try:
            suite.recruiting().ParseResume(
                recruiting_pb2.ParseResumeRequest(
                    company_id="co-spent", job_id="job-1", candidate_id=candidate, content=CV_TEXT.encode()
                ),
                timeout=20,
            )
            outcomes[candidate] = grpc.StatusCode.OK
        except grpc.RpcError as error:
            outcomes[candidate] = error.code()

    threads = [threading.Thread(target=call, args=(c,), daemon=True) for c in candidates]
    for thread in threads:
        thread.start()
    return threads, outcomes


def _reserved(suite) -> int:
    engine = db.make_engine(suite.recruiting_database_url, pool_size=1)
    try:
        with engine.connect() as connection:
            return connection.execute(
                sa.select(sa.func.count()).select_from(outbox).where(outbox.c.state == "reserved")
            ).scalar()
    finally:
        engine.dispose()


def _wait(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.postgres
def test_an_openai_call_spent_while_the_database_is_down_is_still_billed(pg_cluster, make_suite, figures):
    """Every chat completion the simulator served is billed exactly once, whether recruiting's database died
    while OpenAI was answering (the answer is kept by the relay and written when the database is back: exact
    usage) or recruiting died too (the reservations are released together after their grace and share the
    usage API's window: every served token billed, none at the fallback); and a call made while the database
    is down never reaches OpenAI."""
    suite = make_suite(
        usage_url=pg_cluster.create_database("usage"),
        recruiting_url=pg_cluster.create_database("recruiting"),
        env={"RECRUITING_ORPHAN_GRACE_SECONDS": str(ORPHAN_GRACE)},
    )
    suite.sim.set_fault("chat", "slow", seconds=1.0)

    # 1. The database dies while OpenAI answers; recruiting lives.
    in_flight = [f"cand-inflight-{i}" for i in range(IN_FLIGHT)]
    threads, outcomes = _parse_in_threads(suite, in_flight)
    _wait(lambda: _reserved(suite) == IN_FLIGHT, 10, "the reservations")
    pg_cluster.stop("immediate")
    try:
        during = [f"cand-outage-{i}" for i in range(DURING_OUTAGE)]
        during_threads, during_outcomes = _parse_in_threads(suite, during)
        for thread in threads + during_threads:
            thread.join(25)
        assert set(outcomes.values()) == {grpc.StatusCode.UNAVAILABLE}, outcomes
        assert set(during_outcomes.values()) == {grpc.StatusCode.UNAVAILABLE}, during_outcomes
        # The in-flight calls were served; the calls made during the outage never reached OpenAI.
        assert len(suite.sim.requests()) == IN_FLIGHT, (
            "a call made while the database was down reached OpenAI"
        )
    finally:
        pg_cluster.start()

    # 2. The database dies while OpenAI answers, and recruiting dies before the database is back.
    lost = [f"cand-lost-{i}" for i in range(LOST_WITH_PROCESS)]
    _wait(lambda: _reserved(suite) == 0, 20, "the first outage's answers to be written")
    threads, outcomes = _parse_in_threads(suite, lost)
    _wait(lambda: _reserved(suite) == LOST_WITH_PROCESS, 10, "the reservations")
    served_before = len(suite.sim.requests())
    pg_cluster.stop("immediate")
    try:
        _wait(lambda: len(suite.sim.requests()) == served_before + LOST_WITH_PROCESS, 10, "OpenAI's answers")
        time.sleep(0.3)
        suite.kill("recruiting")
        for thread in threads:
            thread.join(25)
        assert grpc.StatusCode.OK not in outcomes.values(), outcomes
    finally:
        pg_cluster.start()
    suite.start_one("recruiting")

    # Every call OpenAI served is billed exactly once.
    served = [r for r in suite.sim.requests() if r.get("source", "chat") == "chat"]
    expected = len(in_flight) + len(lost)
    assert len(served) == expected, f"the simulator served {len(served)} calls, {expected} expected"
    deadline = time.monotonic() + ORPHAN_GRACE + 30
    while time.monotonic() < deadline and len(read_ledger(suite).records) < expected:
        time.sleep(0.25)
    ledger = read_ledger(suite)
    by_candidate: dict[str, list[dict]] = {}
    for record in ledger.records:
        by_candidate.setdefault(record["candidate_id"], []).append(record)
    unbilled = [c for c in in_flight + lost if c not in by_candidate]
    assert not unbilled, f"OpenAI charged for calls HireMeter never billed: {unbilled}"
    assert all(len(records) == 1 for records in by_candidate.values()), "a call was billed twice"
    assert not set(by_candidate) & set(during), "a call that never reached OpenAI was billed"
    assert len(ledger.records) == len(served)
    assert len({r["operation_id"] for r in ledger.records}) == len(ledger.records)
    sources = {c: by_candidate[c][0]["source"] for c in in_flight + lost}
    assert all(sources[c] == "response_usage" for c in in_flight), sources  # exact: kept by the relay
    # The orphans, released together in one TrackBatch, share their window: none falls back.
    assert all(sources[c] == "usage_api" for c in lost), sources
    # Tokens: what the simulator served is exactly what the ledger holds.
    for kind in ("input_tokens", "output_tokens"):
        assert sum(r[kind] for r in ledger.records) == sum(r[kind] for r in served), kind
    figures["database_down_during_openai_calls"] = {
        "openai_calls_served": len(served),
        "billed": len(ledger.records),
        "billed_with_response_usage": sum(1 for s in sources.values() if s == "response_usage"),
        "billed_as_orphans": {
            s: sum(1 for v in sources.values() if v == s) for s in ("usage_api", "fallback")
        },
        "calls_refused_before_openai": len(during),
        "orphan_grace_seconds": ORPHAN_GRACE,
        "tokens_served": sum(r["input_tokens"] + r["output_tokens"] for r in served),
        "tokens_billed": sum(r["input_tokens"] + r["output_tokens"] for r in ledger.records),
    }
