"""Database faults: the suite runs on a PostgreSQL cluster of its own, which is crashed (`pg_ctl stop -m
immediate`) and restarted in the middle of a load. Nothing is lost, nothing doubled, and every service recovers
on its own: the same processes (no restart) serve again, the relay delivers the backlog, billing answers."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from hiremeter.billing.v1 import billing_pb2
from hiremeter.recruiting.v1 import recruiting_pb2

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


@pytest.mark.postgres
@pytest.mark.xfail(
    strict=True,
    reason=(
        "defect in services/recruiting/service.py parse_resume (same shape in generate_questions): OpenAI is "
        "called before anything is written, and when the commit then fails (database down) the call's spent "
        "tokens are dropped: the caller gets UNAVAILABLE, no outbox row exists, the usage is never billed "
        "(28 such calls in a 3 s outage under load)"
    ),
)
def test_an_openai_call_spent_while_the_database_is_down_is_still_billed(pg_cluster, make_suite):
    suite = make_suite(
        usage_url=pg_cluster.create_database("usage"),
        recruiting_url=pg_cluster.create_database("recruiting"),
    )
    stub = suite.recruiting()
    pg_cluster.stop("immediate")
    try:
        with pytest.raises(grpc.RpcError) as info:
            stub.ParseResume(
                recruiting_pb2.ParseResumeRequest(
                    company_id="co-spent", job_id="job-1", candidate_id="cand-spent", content=CV_TEXT.encode()
                ),
                timeout=20,
            )
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        pg_cluster.start()
    spent = suite.sim.stats()["requests"]["chat"]
    assert spent == 1, "the call reached OpenAI"
    deadline = time.monotonic() + 8  # the relay delivers within a second when there is anything to deliver
    while time.monotonic() < deadline and len(read_ledger(suite).records) < spent:
        time.sleep(0.2)
    assert len(read_ledger(suite).records) == spent, "OpenAI charged for a call HireMeter never billed"
