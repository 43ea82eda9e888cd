"""A bounded load of real operations against a running suite, and the ledger checks made after it.

An *intent* is one thing a client wants done once: parse this candidate's CV (over gRPC or through the
gateway), or run and complete one interview. A client that loses its answer (the process it talked to was
SIGKILLed) retries the same intent with the same data until it gets an answer or its deadline passes.

What the API promises for such retries, and what these checks hold it to:
- CompleteInterview is idempotent on interview_id: a retry returns the same operation_id
  (already_completed), so an interview is billed once however often completion is retried.
- ParseResume (and GenerateInterviewQuestions) take no idempotency key: each call that reaches OpenAI spends
  tokens and is a new operation. A retry whose lost first attempt had already committed is therefore billed
  twice, because OpenAI charged twice. The invariant is per *committed operation*: every resume stored by
  recruiting has exactly one ledger record, and every ledger record has a stored result behind it. An intent
  is tagged with its own candidate_id so the checks can count its committed attempts.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal

import grpc
import requests
import sqlalchemy as sa
from hiremeter.recruiting.v1 import recruiting_pb2
from hiremeter.usage.v1 import usage_tracker_pb2

from services.common import db
from services.recruiting.storage import tables as recruiting_tables
from services.recruiting.storage.repository import ABANDONED, POISONED, READY, RESERVED
from services.usage_tracker.storage import tables as usage_tables
from tests.reliability.reliability_harness import Suite

CV_TEXT = (
    "Jane Roe\njane.roe@example.com  +44 20 7946 0000  London\n\n"
    "Senior backend engineer, 8 years. Python, PostgreSQL, gRPC, Kubernetes.\n"
    "2019-now  Staff Engineer, Example Ltd: billing pipelines, event sourcing.\n"
    "2015-2019 Engineer, Sample plc: payments APIs.\n"
    "MSc Computer Science, University of Somewhere, 2015.\n"
)
RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.INTERNAL,  # a proxy/stream torn down mid-call can surface as INTERNAL/UNKNOWN
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.CANCELLED,
}

# Prices of the models the simulator answers with (USD per 1M tokens), for an independent expected cost.
PRICES = {
    "gpt-4o": {"in": Decimal("2.50"), "cached": Decimal("1.25"), "out": Decimal("10.00")},
}
MARGIN = Decimal("0.25")
MILLION = Decimal(1_000_000)


def expected_cost(model: str, usage) -> Decimal:
    """base x (1 + margin) for a text-only response usage, priced by our own table."""
    key = next(k for k in sorted(PRICES, key=len, reverse=True) if model.startswith(k))
    price = PRICES[key]
    uncached = usage.input_tokens - usage.cached_input_tokens
    base = (
        uncached * price["in"]
        + usage.cached_input_tokens * price["cached"]
        + usage.output_tokens * price["out"]
    ) / MILLION
    return base * (1 + MARGIN)


@dataclass
class Intent:
    key: str  # also the candidate_id of the operation, so committed attempts can be counted
    kind: str  # "cv_grpc", "cv_http" or "interview"
    attempts: int = 0
    errors: list[str] = field(default_factory=list)
    operation_id: str = ""  # from the answer that was finally acknowledged
    usage: object | None = None
    model: str = ""
    done: bool = False


@dataclass
class LoadResult:
    intents: list[Intent]
    seconds: float

    @property
    def acknowledged(self) -> list[Intent]:
        return [i for i in self.intents if i.done]

    @property
    def retried(self) -> list[Intent]:
        return [i for i in self.intents if i.attempts > 1]


class Load:
    """Runs `count` intents with `concurrency` workers; `on_progress(done)` is called after each intent."""

    def __init__(self, suite: Suite, *, company_id: str, per_intent_deadline: float = 45.0) -> None:
        self.suite = suite
        self.company_id = company_id
        self.per_intent_deadline = per_intent_deadline
        self._stub = suite.recruiting()
        self._token = suite.token(company_id)
        self._done = 0
        self._lock = threading.Lock()
        self.job_id = f"job-{uuid.uuid4().hex[:8]}"

    def run(
        self,
        count: int,
        *,
        concurrency: int = 8,
        kinds: tuple[str, ...] = ("cv_grpc", "cv_http", "interview"),
        on_progress: Callable[[int], None] = lambda done: None,
        deadline: float = 120.0,
        rate: float | None = None,
    ) -> LoadResult:
        """rate (intents per second) spreads the starts evenly, so faults land in the middle of the load."""
        intents = [Intent(f"cand-{uuid.uuid4().hex[:12]}", kinds[n % len(kinds)]) for n in range(count)]
        started = time.monotonic()
        stop_at = started + deadline

        def work(numbered: tuple[int, Intent]) -> None:
            n, intent = numbered
            if rate:
                time.sleep(max(0.0, started + n / rate - time.monotonic()))
            try:
                self._run_intent(intent, min(stop_at, time.monotonic() + self.per_intent_deadline))
            finally:
                with self._lock:
                    self._done += 1
                    done = self._done
                on_progress(done)

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(work, enumerate(intents)))
        return LoadResult(intents, time.monotonic() - started)

    # -- one intent, retried ---------------------------------------------------------------------------------
    def _run_intent(self, intent: Intent, until: float) -> None:
        interview_id = ""
        while time.monotonic() < until:
            intent.attempts += 1
            try:
                if intent.kind == "cv_grpc":
                    answer = self._stub.ParseResume(self._resume_request(intent), timeout=15)
                    intent.operation_id, intent.usage, intent.model = (
                        answer.operation_id,
                        answer.usage,
                        answer.resume.model,
                    )
                elif intent.kind == "cv_http":
                    self._parse_over_http(intent)
                else:
                    if not interview_id:
                        interview_id = self._stub.StartInterview(
                            recruiting_pb2.StartInterviewRequest(
                                company_id=self.company_id, job_id=self.job_id, candidate_id=intent.key
                            ),
                            timeout=15,
                        ).interview.interview_id
                    answer = self._stub.CompleteInterview(
                        recruiting_pb2.CompleteInterviewRequest(
                            company_id=self.company_id, interview_id=interview_id, usage=INTERVIEW_USAGE
                        ),
                        timeout=15,
                    )
                    intent.operation_id = answer.interview.operation_id
                    intent.usage, intent.model = answer.usage, answer.interview.model
                intent.done = True
                return
            except grpc.RpcError as error:
                if error.code() not in RETRYABLE:
                    intent.errors.append(f"{error.code().name}: {error.details()}")
                    return
                intent.errors.append(error.code().name)
            except _Retry as error:
                intent.errors.append(str(error))
            time.sleep(0.2)

    def _resume_request(self, intent: Intent) -> recruiting_pb2.ParseResumeRequest:
        return recruiting_pb2.ParseResumeRequest(
            company_id=self.company_id,
            job_id=self.job_id,
            candidate_id=intent.key,
            file_name="cv.txt",
            content=CV_TEXT.encode(),
        )

    def _parse_over_http(self, intent: Intent) -> None:
        try:
            response = requests.post(
                f"{self.suite.gateway_url}/api/v1/resumes",
                headers={"Authorization": f"Bearer {self._token}"},
                files={"file": ("cv.txt", CV_TEXT.encode(), "text/plain")},
                data={"job_id": self.job_id, "candidate_id": intent.key},
                timeout=20,
            )
        except requests.RequestException as error:
            raise _Retry(type(error).__name__) from None
        if response.status_code in (502, 503, 504) or response.status_code >= 500:
            raise _Retry(f"HTTP {response.status_code}")
        if response.status_code != 200:
            raise AssertionError(f"HTTP {response.status_code}: {response.text[:300]}")
        body = response.json()
        intent.operation_id = body["operation_id"]
        intent.usage = usage_tracker_pb2.TokenUsage(**body["usage"])
        intent.model = body["resume"]["model"]


class _Retry(Exception):
    pass


INTERVIEW_USAGE = usage_tracker_pb2.TokenUsage(
    input_tokens=12_000,
    output_tokens=3_000,
    cached_input_tokens=4_000,
    input_audio_tokens=9_000,
    cached_input_audio_tokens=3_000,
    output_audio_tokens=2_400,
)


# -- what the databases hold -----------------------------------------------------------------------------


@dataclass
class Ledger:
    records: list[dict]  # kind == "record"
    adjustments: list[dict]
    rollup_operations: int
    rollup_cost: Decimal
    outbox_total: int
    outbox_pending: int  # state reserved (a call in flight, or an orphan to release) or ready
    outbox_poisoned: int
    committed_operations: dict[str, str]  # operation_id -> candidate_id, outbox rows owed a ledger record
    outbox_abandoned: int = 0  # reservations whose OpenAI call did no work: never billed
    orphans: set[str] = field(default_factory=set)  # operation_ids released without usage

    @property
    def by_operation(self) -> dict[str, dict]:
        return {r["operation_id"]: r for r in self.records}


def read_ledger(suite: Suite) -> Ledger:
    usage = db.make_engine(suite.usage_database_url, pool_size=1)
    recruiting = db.make_engine(suite.recruiting_database_url, pool_size=1)
    u, r, o = usage_tables.usage_records, usage_tables.usage_rollups, recruiting_tables.outbox
    try:
        with usage.connect() as connection:
            rows = [dict(row._mapping) for row in connection.execute(sa.select(u))]
            rollups = [dict(row._mapping) for row in connection.execute(sa.select(r))]
        with recruiting.connect() as connection:
            outbox_rows = [dict(row._mapping) for row in connection.execute(sa.select(o))]
            committed = {}
            for row in outbox_rows:
                if row["state"] == ABANDONED:
                    continue  # OpenAI did no work: owed nothing
                request = usage_tracker_pb2.TrackRequest.FromString(row["payload"])
                committed[row["operation_id"]] = request.candidate_id
    finally:
        usage.dispose()
        recruiting.dispose()
    return Ledger(
        records=[row for row in rows if row["kind"] == "record"],
        adjustments=[row for row in rows if row["kind"] == "adjustment"],
        rollup_operations=sum(row["operations"] for row in rollups),
        rollup_cost=sum((row["cost"] for row in rollups), Decimal(0)),
        outbox_total=len(outbox_rows),
        outbox_pending=sum(1 for row in outbox_rows if row["state"] in (RESERVED, READY)),
        outbox_poisoned=sum(1 for row in outbox_rows if row["state"] == POISONED),
        committed_operations=committed,
        outbox_abandoned=sum(1 for row in outbox_rows if row["state"] == ABANDONED),
        orphans={row["operation_id"] for row in outbox_rows if row["orphaned_at"] is not None},
    )


def wait_for_drain(suite: Suite, *, timeout: float = 60.0) -> float:
    """Waits until recruiting's outbox has nothing pending (no reservation left, in flight or orphaned, and no
    ready row unsent); the seconds it took."""
    started = time.monotonic()
    while True:
        ledger = read_ledger(suite)
        if ledger.outbox_pending == 0:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{ledger.outbox_pending} outbox rows still pending after {timeout:.0f} s")
        time.sleep(0.25)


def check_exactly_once(result: LoadResult, ledger: Ledger) -> dict:
    """The invariants after a faulty load; returns the figures. Raises AssertionError naming what broke."""
    by_operation = ledger.by_operation
    problems = []
    # No operation_id twice (the UNIQUE constraint guarantees it; the check documents it).
    ids = [r["operation_id"] for r in ledger.records]
    if len(ids) != len(set(ids)):
        problems.append("an operation_id appears twice in the ledger")
    # Every acknowledged operation is in the ledger once, billed exactly what its usage costs.
    for intent in result.acknowledged:
        record = by_operation.get(intent.operation_id)
        if record is None:
            problems.append(f"acknowledged {intent.kind} {intent.operation_id} is not in the ledger")
            continue
        if record["candidate_id"] != intent.key:
            problems.append(f"{intent.operation_id} billed to candidate {record['candidate_id']}")
        if intent.kind != "interview" and record["source"] == "response_usage":
            want = expected_cost(intent.model, intent.usage)
            if record["cost"] != want:
                problems.append(f"{intent.operation_id} costs {record['cost']}, expected {want}")
    # Every committed operation is billed once, and nothing is billed that was not committed.
    committed = set(ledger.committed_operations)
    billed = set(by_operation)
    if committed - billed:
        problems.append(f"committed but not billed: {sorted(committed - billed)[:5]}")
    if billed - committed:
        problems.append(f"billed without a committed result: {sorted(billed - committed)[:5]}")
    # Per intent: one committed attempt, more only where the client retried a non-idempotent call.
    per_intent: dict[str, int] = {}
    for candidate in ledger.committed_operations.values():
        per_intent[candidate] = per_intent.get(candidate, 0) + 1
    double = []
    for intent in result.intents:
        n = per_intent.get(intent.key, 0)
        if intent.kind == "interview" and n > 1:
            problems.append(f"interview {intent.key} billed {n} times")
        if n > 1 and intent.attempts == 1:
            problems.append(f"{intent.key} billed {n} times for a single call")
        if n > 1:
            double.append(intent.key)
    # The rollups agree with the ledger: a kill between the two writes would show here.
    ledger_cost = sum((r["cost"] for r in ledger.records), Decimal(0)) + sum(
        (r["cost"] for r in ledger.adjustments), Decimal(0)
    )
    if ledger.rollup_operations != len(ledger.records):
        problems.append(f"rollups count {ledger.rollup_operations} operations, ledger {len(ledger.records)}")
    if ledger.rollup_cost != ledger_cost:
        problems.append(f"rollups sum {ledger.rollup_cost}, ledger {ledger_cost}")
    if ledger.outbox_poisoned:
        problems.append(f"{ledger.outbox_poisoned} outbox rows poisoned")
    assert not problems, "\n".join(problems)
    orphan_sources: dict[str, int] = {}
    for operation_id in ledger.orphans:
        source = by_operation[operation_id]["source"] if operation_id in by_operation else "unbilled"
        orphan_sources[source] = orphan_sources.get(source, 0) + 1
    return {
        "orphans_released": len(ledger.orphans),
        "orphans_by_source": orphan_sources,
        "reservations_abandoned": ledger.outbox_abandoned,
        "intents": len(result.intents),
        "acknowledged": len(result.acknowledged),
        "retried_intents": len(result.retried),
        "billed_twice_after_retry": len(double),
        "ledger_records": len(ledger.records),
        "ledger_cost": str(ledger_cost),
        "outbox_rows": ledger.outbox_total,
    }
