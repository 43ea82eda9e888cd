"""The tracker stopped while 200 operations run, then restarted on the same port and database: every operation
is billed exactly once, the ledger's count and token sums match what the simulator served, the outbox drains."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from hiremeter.recruiting.v1 import recruiting_pb2

OPERATIONS = 200
CONCURRENCY = 8
OUTAGE_SECONDS = 6


def cv(index: int) -> bytes:
    return f"Candidate {index}\nBackend Engineer\ncandidate{index}@example.com\nSkills: Python, SQL".encode()


def wait_until(predicate, deadline: float, what: str) -> None:
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_every_operation_is_billed_exactly_once_across_a_tracker_outage(stack, capsys):
    started = time.monotonic()
    deadline = started + 60
    stack.stop_tracker()

    def parse(index: int):
        request = recruiting_pb2.ParseResumeRequest(
            company_id="acme", job_id=f"job-{index % 7}", content=cv(index)
        )
        return stack.stub.ParseResume(request, timeout=20)

    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        responses = list(pool.map(parse, range(OPERATIONS)))
    operations_done = time.monotonic()

    relay = stack.recruiting.relay
    assert stack.pending() == OPERATIONS, "nothing can have been delivered while the tracker is down"
    wait_until(lambda: relay.stats.failures >= 2, deadline, "the relay to notice the outage")
    # Keep the tracker away long enough for the relay's backoff (and gRPC's reconnect backoff) to grow.
    wait_until(lambda: time.monotonic() - started >= OUTAGE_SECONDS, deadline, "the outage to last")
    failures_during_outage = relay.stats.failures
    assert stack.ledger() == []

    stack.start_tracker()
    restarted = time.monotonic()
    wait_until(lambda: stack.pending() == 0, deadline, "the outbox to drain")
    drained = time.monotonic()

    operation_ids = {response.operation_id for response in responses}
    assert len(operation_ids) == OPERATIONS
    records = stack.ledger()
    assert len(records) == OPERATIONS
    assert {record.operation_id for record in records} == operation_ids
    by_operation = {response.operation_id: response for response in responses}
    for record in records:
        usage = by_operation[record.operation_id].usage
        assert (record.input_tokens, record.output_tokens) == (usage.input_tokens, usage.output_tokens)
        assert record.source == "response_usage"
        assert record.cost == record.base_cost * (1 + record.margin)
    served = [r for r in stack.sim.requests() if r["source"] == "chat"]
    assert len(served) == OPERATIONS
    assert sum(r.input_tokens for r in records) == sum(s["input_tokens"] for s in served)
    assert sum(r.output_tokens for r in records) == sum(s["output_tokens"] for s in served)
    assert sum(r.cached_input_tokens for r in records) == sum(s["input_cached_tokens"] for s in served)
    assert sum((r.quantity for r in records), Decimal(0)) == OPERATIONS
    assert relay.stats.poisoned == 0

    with capsys.disabled():
        print(
            f"\n[outage] {OPERATIONS} ops in {operations_done - started:.2f}s (concurrency {CONCURRENCY}); "
            f"failed deliveries during the outage {failures_during_outage}; "
            f"drained {drained - restarted:.2f}s after the restart; "
            f"relay: sent {relay.stats.sent}, duplicates {relay.stats.duplicates}, failures {relay.stats.failures}; "
            f"ledger cost {sum((r.cost for r in records), Decimal(0))}"
        )
