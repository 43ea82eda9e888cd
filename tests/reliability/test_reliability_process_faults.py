"""Process faults: during a load of real operations the usage tracker, then recruiting, then the gateway is
SIGKILLed and restarted on its port. Afterwards every acknowledged operation is in the ledger exactly once at
its exact price, every operation recruiting committed is billed once, the rollups equal the ledger, and the
outbox is drained. See reliability_load for what a client retry may and may not bill."""

from __future__ import annotations

import threading
import time

import pytest

from tests.reliability.reliability_load import Load, check_exactly_once, read_ledger, wait_for_drain

OPERATIONS = 120
CONCURRENCY = 8
RATE = 8.0  # intents started per second: about 15 s of load
# Kill each process once this many intents have finished.
SCHEDULE = (("usage_tracker", 20), ("recruiting", 50), ("gateway", 80))


class Faults(threading.Thread):
    """Kills and restarts processes as the load passes each threshold; records the recovery times."""

    def __init__(self, suite, schedule, progress: list[int], deadline: float) -> None:
        super().__init__(daemon=True, name="faults")
        self.suite, self.schedule, self.progress, self.deadline = suite, schedule, progress, deadline
        self.events: list[dict] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for name, threshold in self.schedule:
                while self.progress[0] < threshold:
                    if time.monotonic() > self.deadline:
                        raise TimeoutError(f"load never reached {threshold} for {name}")
                    time.sleep(0.02)
                at = self.progress[0]
                self.suite.kill(name)
                time.sleep(0.5)  # down long enough for callers to notice
                seconds = self.suite.start_one(name)
                self.events.append(
                    {"process": name, "killed_at_intent": at, "restart_seconds": round(seconds, 2)}
                )
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error


@pytest.mark.slow
def test_sigkill_each_process_during_load_bills_every_operation_exactly_once(make_suite, figures):
    suite = make_suite()
    # Every OpenAI call takes 0.3 s, so several are in flight whenever a process dies.
    suite.sim.set_fault("chat", "slow", seconds=0.3)
    load = Load(suite, company_id="co-process-faults")
    progress = [0]

    def on_progress(done: int) -> None:
        progress[0] = done

    faults = Faults(suite, SCHEDULE, progress, time.monotonic() + 150)
    faults.start()
    result = load.run(OPERATIONS, concurrency=CONCURRENCY, rate=RATE, on_progress=on_progress, deadline=150)
    faults.join(timeout=60)
    assert faults.error is None, f"fault injection failed: {faults.error!r}"
    assert [event["process"] for event in faults.events] == [name for name, _ in SCHEDULE]

    assert not suite.dead(), f"died after restart: {suite.dead()}"
    failed = [i for i in result.intents if not i.done]
    assert not failed, (
        f"{len(failed)} intents never succeeded, e.g. {failed[0].kind}: {failed[0].errors[-3:]}"
    )
    drain = wait_for_drain(suite, timeout=60)
    ledger = read_ledger(suite)
    summary = check_exactly_once(result, ledger)
    chat_calls = suite.sim.stats()["requests"]["chat"]
    cv_records = [r for r in ledger.records if r["category"] == "cv_parsing"]
    assert len(cv_records) <= chat_calls, "more CV records than OpenAI calls: something was billed twice"
    served = [r for r in suite.sim.requests() if r.get("source", "chat") == "chat"]
    served_tokens = sum(r["input_tokens"] + r["output_tokens"] for r in served)
    billed_tokens = sum(r["input_tokens"] + r["output_tokens"] for r in cv_records)
    # Every call OpenAI answered is billed, those whose process died included (released as orphans after
    # their grace, from the usage API). Their tokens are not asserted equal to what was served: an orphan
    # released while other calls of its minute are still unmetered takes their tokens too (docs/reliability.md).
    assert len(cv_records) == chat_calls, f"{chat_calls - len(cv_records)} OpenAI calls spent, never billed"
    assert "unbilled" not in summary["orphans_by_source"], summary["orphans_by_source"]
    figures["process_faults"] = {
        **summary,
        "load_seconds": round(result.seconds, 1),
        "drain_seconds_after_load": round(drain, 2),
        "kills": faults.events,
        "client_errors_retried": sum(len(i.errors) for i in result.intents),
        "openai_chat_calls": chat_calls,
        # Calls OpenAI answered whose recruiting process died before the commit: their reservations are
        # released as orphans after RECRUITING_ORPHAN_GRACE_SECONDS (5 s here) and billed without usage.
        "openai_calls_spent_but_unbilled": chat_calls - len(cv_records),
        "cv_tokens_served": served_tokens,
        "cv_tokens_billed": billed_tokens,
    }
