"""The outbox relay: a background thread that delivers pending outbox rows to the UsageTracker.

- Immediately: the service calls notify() after each commit, which wakes the thread.
- Until acknowledged: an OK answer (new or duplicate record) marks the row sent. Track is idempotent on
  operation_id, so a row sent twice (a lost acknowledgement, two replicas) is still billed once.
- Backoff: while the tracker (UNAVAILABLE, DEADLINE_EXCEEDED, ...) or the database is away, the relay stops the
  pass and sleeps base * 2**n seconds (n = consecutive failed passes, capped at max), with full jitter in
  [delay/2, delay], ignoring wake-ups meanwhile so that a burst of new operations does not hammer a dead tracker.
  The row that failed gets the same schedule on its own (attempts, next_attempt_at, last_error).
- Poison: ALREADY_EXISTS (the same operation_id with a different payload) and INVALID_ARGUMENT can never succeed
  on retry; the row is marked poisoned with last_error, logged at ERROR, and skipped from then on.
- Orphans: a reservation (written before OpenAI was called) still reserved past its release time
  (reserved_at + RECRUITING_ORPHAN_GRACE_SECONDS) is an operation whose outcome was lost (the process died, or
  the result could not be stored and this process restarted). The relay releases it as a TrackRequest WITHOUT
  usage, completed_time = its release time (so the window is fixed, the payload identical on every retry, and
  covers the call's longest possible life): the tracker then bills it from OpenAI's usage API for that window,
  or its flagged fallback. The release is a conditional update, so a late completion by the service can never
  bill it a second time.
- Settlements: when the service could not record an outcome (the database was away when OpenAI answered), it
  hands it to settle_later(); each pass first writes those (completing the reservation with its exact usage,
  or abandoning it), so an outage costs no precision. They live in memory: if the process dies first, the
  reservation is released as an orphan after its grace instead.
- Batches: the due rows of a pass go in at most two UsageTracker.TrackBatch calls (with a single row, Track):
  first the rows with exact usage, then the rows without (the orphans), so the orphans' windows already hold the
  exact tokens when the tracker shares what is left. Orphans tracked TOGETHER share their usage-API window fairly
  (1/k, 1/(k-1) of the rest, ...); tracked one at a time the first would take everything and the others fall
  back. Reservations are therefore released together (RelaySettings.orphan_linger_seconds, see
  SqlRepository.due). TrackBatch refuses the whole batch when one request is invalid (INVALID_ARGUMENT naming
  requests[i]): that row alone goes through Track (and is poisoned) and the others are batched again; any other
  refusal (ALREADY_EXISTS, ...) sends the batch's rows one by one through Track, so only the bad row is
  poisoned. A failed batch (UNAVAILABLE, ...) backs off as one: its rows share their next attempt.
- Metrics: outbox_pending (ready rows + reservations past their grace) and outbox_oldest_pending_seconds,
  outbox_reserved (calls in flight), outbox_settlements_waiting, refreshed every pass.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import sqlalchemy.exc
from hiremeter.usage.v1 import usage_tracker_pb2
from prometheus_client import Counter, Gauge

from services.recruiting.storage.repository import RESERVED, OutboxItem, PendingRow, SqlRepository

log = logging.getLogger("hiremeter.recruiting.outbox")

OUTBOX_PENDING = Gauge(
    "outbox_pending",
    "Outbox rows owed to the usage tracker: ready rows and reservations past their grace (orphans)",
)
OUTBOX_OLDEST_PENDING_SECONDS = Gauge(
    "outbox_oldest_pending_seconds", "Age of the oldest outbox row owed to the usage tracker (0 when none)"
)
OUTBOX_RESERVED = Gauge("outbox_reserved", "Reservations within their grace: OpenAI calls in flight")
OUTBOX_SETTLEMENTS_WAITING = Gauge(
    "outbox_settlements_waiting", "Outcomes the service could not record, waiting in memory for the database"
)
OUTBOX_ORPHANS = Counter(
    "outbox_orphans_released_total",
    "Reservations whose outcome was lost, released to be billed without usage",
)
OUTBOX_ABANDONED = Counter(
    "outbox_abandoned_total", "Reservations abandoned: the OpenAI call did no work, nothing is billed"
)
OUTBOX_SENT = Counter("outbox_sent_total", "Outbox rows acknowledged by the usage tracker", ["duplicate"])
OUTBOX_FAILURES = Counter("outbox_send_failures_total", "Failed deliveries of outbox rows", ["code"])
OUTBOX_POISONED = Counter("outbox_poisoned_total", "Outbox rows refused for good by the usage tracker")

POISON_CODES = {grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.INVALID_ARGUMENT}
_NAMED_REQUEST = re.compile(r"^requests\[(\d+)\]")


@dataclass(frozen=True)
class RelaySettings:
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    track_timeout_seconds: float = 5.0
    idle_poll_seconds: float = 5.0
    batch_size: int = 100  # rows per pass query, and so per TrackBatch
    # Reservations past their release time wait up to this long for others coming due, to be released and
    # tracked together (one TrackBatch: they share their usage-API window instead of falling back).
    orphan_linger_seconds: float = 2.0


@dataclass
class RelayStats:
    """Counters for tests and logs (the Prometheus metrics carry the same)."""

    sent: int = 0
    duplicates: int = 0
    failures: int = 0
    poisoned: int = 0
    database_errors: int = 0
    orphans: int = 0


MAX_SETTLEMENTS = 10_000  # beyond this the oldest are dropped: their reservations are released as orphans


@dataclass(frozen=True)
class Settlement:
    """An outcome the service could not write: complete the reservation with `item`, or abandon it."""

    operation_id: str
    item: OutboxItem | None = None  # the exact TrackRequest; None: abandon
    reason: str = ""


def orphan_request(payload: bytes, released_at: dt.datetime) -> bytes:
    """A reservation's TrackRequest completed without usage: completed_time = its release time."""
    request = usage_tracker_pb2.TrackRequest.FromString(payload)
    request.ClearField("usage")
    started = request.started_time.ToDatetime(tzinfo=dt.UTC)
    request.completed_time.FromDatetime(max(started, released_at))
    return request.SerializeToString(deterministic=True)


def backoff_delay(failures: int, base: float, cap: float, rng: Callable[[], float] = random.random) -> float:
    """base * 2**(failures-1), capped, with full jitter in [delay/2, delay]."""
    delay = min(cap, base * (2 ** max(0, min(failures - 1, 30))))
    return delay / 2 + rng() * delay / 2


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class OutboxRelay:
    def __init__(
        self,
        repository: SqlRepository,
        track: Callable[..., usage_tracker_pb2.TrackResponse],
        settings: RelaySettings = RelaySettings(),  # noqa: B008 - frozen dataclass
        clock: Callable[[], dt.datetime] = _utcnow,
        track_batch: Callable[..., usage_tracker_pb2.TrackBatchResponse] | None = None,
    ) -> None:
        """`track_batch`: UsageTracker.TrackBatch; None delivers every row through `track`, one at a time."""
        self._repository = repository
        self._track = track
        self._track_batch = track_batch
        self._settings = settings
        self._clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed_passes = 0
        self._settlements: deque[Settlement] = deque()
        self._settlements_lock = threading.Lock()
        self.stats = RelayStats()

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def notify(self) -> None:
        """A row was committed: deliver it now (unless the relay is backing off from a failure)."""
        self._wake.set()

    def settle_later(self, settlement: Settlement) -> None:
        """An outcome the service could not write (database away); written at the start of each pass."""
        with self._settlements_lock:
            if len(self._settlements) >= MAX_SETTLEMENTS:
                dropped = self._settlements.popleft()
                log.error(
                    "too many unwritten outcomes; the oldest will be billed as an orphan after its grace",
                    extra={"operation_id": dropped.operation_id},
                )
            self._settlements.append(settlement)
            OUTBOX_SETTLEMENTS_WAITING.set(len(self._settlements))
        self._wake.set()

    def settlements_waiting(self) -> int:
        with self._settlements_lock:
            return len(self._settlements)

    # -- the loop ------------------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                ok = self.run_once()
            except Exception:  # noqa: BLE001 - the database is away or misbehaving: back off, keep going
                self.stats.database_errors += 1
                log.warning("outbox pass failed (database?)", exc_info=True)
                ok = False
            if ok:
                self._failed_passes = 0
                self._wait(self._idle_wait(), wakeable=True)
            else:
                self._failed_passes += 1
                delay = backoff_delay(
                    self._failed_passes,
                    self._settings.backoff_base_seconds,
                    self._settings.backoff_max_seconds,
                )
                self._wait(delay, wakeable=False)

    def _wait(self, seconds: float, *, wakeable: bool) -> None:
        if wakeable:
            self._wake.wait(seconds)
        else:
            self._stop.wait(seconds)

    def _idle_wait(self) -> float:
        try:
            next_due = self._repository.next_due_at(orphan_linger=self._settings.orphan_linger_seconds)
        except Exception:  # noqa: BLE001 - the next pass reports it
            return self._settings.backoff_base_seconds
        if next_due is None:
            return self._settings.idle_poll_seconds
        seconds = (next_due - self._clock()).total_seconds()
        return min(self._settings.idle_poll_seconds, max(0.0, seconds))

    def _settle(self) -> None:
        """Writes the outcomes waiting in memory; raises (leaving the rest queued) while the database is away."""
        while True:
            with self._settlements_lock:
                if not self._settlements:
                    break
                settlement = self._settlements[0]
            try:
                if settlement.item is not None:
                    if not self._repository.complete_reserved(settlement.item):
                        log.warning(
                            "an outcome written late found its reservation already released or abandoned",
                            extra={"operation_id": settlement.operation_id},
                        )
                elif self._repository.abandon(settlement.operation_id, reason=settlement.reason):
                    OUTBOX_ABANDONED.inc()
            except sqlalchemy.exc.OperationalError:
                raise  # the database is away: the pass backs off, the settlement waits
            except Exception:  # noqa: BLE001 - never let one bad settlement block the others
                log.exception(
                    "an outcome could not be written; its reservation is released as an orphan after its grace",
                    extra={"operation_id": settlement.operation_id},
                )
            with self._settlements_lock:
                if self._settlements and self._settlements[0] is settlement:
                    self._settlements.popleft()
                OUTBOX_SETTLEMENTS_WAITING.set(len(self._settlements))

    def _release(self, row: PendingRow) -> PendingRow | None:
        """A reservation past its grace becomes an orphan: its TrackRequest without usage, ready to send."""
        payload = orphan_request(row.payload, row.next_attempt_at or self._clock())
        if not self._repository.release_orphan(row.id, payload, self._clock()):
            return None  # completed or abandoned meanwhile; a ready row is picked up by the next query
        self.stats.orphans += 1
        OUTBOX_ORPHANS.inc()
        log.warning(
            "an operation's outcome was lost; it is billed without usage (usage API or fallback)",
            extra={"operation_id": row.operation_id},
        )
        return PendingRow(row.id, row.operation_id, payload, row.attempts, row.created_at)

    def run_once(self) -> bool:
        """One pass: deliver every due row. False when the tracker seems away (the caller backs off)."""
        self._settle()
        while not self._stop.is_set():
            rows = self._repository.due(
                self._clock(), self._settings.batch_size, orphan_linger=self._settings.orphan_linger_seconds
            )
            if not rows:
                break
            with_usage: list[PendingRow] = []
            without_usage: list[PendingRow] = []
            for due in rows:
                row = self._release(due) if due.state == RESERVED else due
                if row is None:
                    continue
                has_usage = usage_tracker_pb2.TrackRequest.FromString(row.payload).HasField("usage")
                (with_usage if has_usage else without_usage).append(row)
            # Exact usage first: the window's remainder the orphans then share excludes those tokens.
            for group in (with_usage, without_usage):
                if group and (self._stop.is_set() or not self._deliver_group(group)):
                    self._refresh_metrics()
                    return False
        self._refresh_metrics()
        return True

    def _deliver_group(self, rows: list[PendingRow]) -> bool:
        """The rows in one TrackBatch (one row, or no TrackBatch: Track). False: the tracker seems away."""
        if self._track_batch is None or len(rows) == 1:
            return all(not self._stop.is_set() and self._deliver(row) for row in rows)
        request = usage_tracker_pb2.TrackBatchRequest(
            requests=[usage_tracker_pb2.TrackRequest.FromString(row.payload) for row in rows]
        )
        try:
            response = self._track_batch(request, timeout=self._settings.track_timeout_seconds)
        except grpc.RpcError as error:
            code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
            details = (error.details() if hasattr(error, "details") else "") or ""
            message = f"{code.name}: {details}"
            OUTBOX_FAILURES.labels(code.name).inc()
            if code == grpc.StatusCode.UNIMPLEMENTED:  # a tracker without TrackBatch: Track, from now on
                log.warning("the usage tracker does not implement TrackBatch; rows are tracked one by one")
                self._track_batch = None
                return self._deliver_group(rows)
            if code in POISON_CODES:
                named = _NAMED_REQUEST.match(details)
                index = int(named.group(1)) if named else -1
                log.warning(
                    "a TrackBatch was refused; its rows are delivered apart so only the bad one is poisoned",
                    extra={"rows": len(rows), "error": message},
                )
                if code == grpc.StatusCode.INVALID_ARGUMENT and 0 <= index < len(rows):
                    # The named row alone (Track poisons it), the others batched again: they still share.
                    if not self._deliver(rows[index]):
                        return False
                    return self._deliver_group(rows[:index] + rows[index + 1 :])
                return all(not self._stop.is_set() and self._deliver(row) for row in rows)
            self._batch_failed(rows, message)
            return False
        if len(response.results) != len(rows):
            self._batch_failed(rows, f"TrackBatch answered {len(response.results)} results for {len(rows)}")
            return False
        self._repository.mark_sent_many([row.id for row in rows], self._clock())
        for result in response.results:
            self.stats.sent += 1
            if result.duplicate:
                self.stats.duplicates += 1
            OUTBOX_SENT.labels(str(result.duplicate).lower()).inc()
        return True

    def _batch_failed(self, rows: list[PendingRow], message: str) -> None:
        """The rows share their next attempt, so they are retried (and share their windows) together."""
        self.stats.failures += 1
        delay = backoff_delay(
            max(row.attempts for row in rows) + 1,
            self._settings.backoff_base_seconds,
            self._settings.backoff_max_seconds,
        )
        self._repository.mark_failed_many(
            [row.id for row in rows],
            next_attempt_at=self._clock() + dt.timedelta(seconds=delay),
            error=message,
        )
        log.warning("outbox batch delivery failed", extra={"rows": len(rows), "error": message})

    def _deliver(self, row: PendingRow) -> bool:
        request = usage_tracker_pb2.TrackRequest.FromString(row.payload)
        try:
            response = self._track(request, timeout=self._settings.track_timeout_seconds)
        except grpc.RpcError as error:
            code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
            details = (error.details() if hasattr(error, "details") else "") or ""
            message = f"{code.name}: {details}"
            OUTBOX_FAILURES.labels(code.name).inc()
            if code in POISON_CODES:
                self.stats.poisoned += 1
                OUTBOX_POISONED.inc()
                log.error(
                    "outbox row refused by the usage tracker for good; it will not be retried",
                    extra={"operation_id": row.operation_id, "error": message},
                )
                self._repository.mark_poisoned(row.id, now=self._clock(), error=message)
                return True
            self.stats.failures += 1
            delay = backoff_delay(
                row.attempts + 1, self._settings.backoff_base_seconds, self._settings.backoff_max_seconds
            )
            self._repository.mark_failed(
                row.id, next_attempt_at=self._clock() + dt.timedelta(seconds=delay), error=message
            )
            log.warning("outbox delivery failed", extra={"operation_id": row.operation_id, "error": message})
            return False
        self._repository.mark_sent(row.id, self._clock())
        self.stats.sent += 1
        if response.duplicate:
            self.stats.duplicates += 1
        OUTBOX_SENT.labels(str(response.duplicate).lower()).inc()
        return True

    def _refresh_metrics(self) -> None:
        now = self._clock()
        count, oldest = self._repository.pending_stats(now)
        OUTBOX_PENDING.set(count)
        age = (now - oldest).total_seconds() if oldest else 0.0
        OUTBOX_OLDEST_PENDING_SECONDS.set(max(0.0, age))
        OUTBOX_RESERVED.set(self._repository.reserved_stats(now)[0])
