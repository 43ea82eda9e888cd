"""The outbox relay: a background thread that delivers pending outbox rows to UsageTracker.Track.

- Immediately: the service calls notify() after each commit, which wakes the thread.
- Until acknowledged: an OK answer (new or duplicate record) marks the row sent. Track is idempotent on
  operation_id, so a row sent twice (a lost acknowledgement, two replicas) is still billed once.
- Backoff: while the tracker (UNAVAILABLE, DEADLINE_EXCEEDED, ...) or the database is away, the relay stops the
  pass and sleeps base * 2**n seconds (n = consecutive failed passes, capped at max), with full jitter in
  [delay/2, delay], ignoring wake-ups meanwhile so that a burst of new operations does not hammer a dead tracker.
  The row that failed gets the same schedule on its own (attempts, next_attempt_at, last_error).
- Poison: ALREADY_EXISTS (the same operation_id with a different payload) and INVALID_ARGUMENT can never succeed
  on retry; the row is marked poisoned with last_error, logged at ERROR, and skipped from then on.
- Metrics: outbox_pending and outbox_oldest_pending_seconds, refreshed every pass.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from hiremeter.usage.v1 import usage_tracker_pb2
from prometheus_client import Counter, Gauge

from services.recruiting.storage.repository import PendingRow, SqlRepository

log = logging.getLogger("hiremeter.recruiting.outbox")

OUTBOX_PENDING = Gauge("outbox_pending", "Outbox rows not yet acknowledged by the usage tracker")
OUTBOX_OLDEST_PENDING_SECONDS = Gauge(
    "outbox_oldest_pending_seconds", "Age of the oldest outbox row not yet acknowledged (0 when none)"
)
OUTBOX_SENT = Counter("outbox_sent_total", "Outbox rows acknowledged by the usage tracker", ["duplicate"])
OUTBOX_FAILURES = Counter("outbox_send_failures_total", "Failed deliveries of outbox rows", ["code"])
OUTBOX_POISONED = Counter("outbox_poisoned_total", "Outbox rows refused for good by the usage tracker")

POISON_CODES = {grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.INVALID_ARGUMENT}


@dataclass(frozen=True)
class RelaySettings:
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    track_timeout_seconds: float = 5.0
    idle_poll_seconds: float = 5.0
    batch_size: int = 100


@dataclass
class RelayStats:
    """Counters for tests and logs (the Prometheus metrics carry the same)."""

    sent: int = 0
    duplicates: int = 0
    failures: int = 0
    poisoned: int = 0
    database_errors: int = 0


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
    ) -> None:
        self._repository = repository
        self._track = track
        self._settings = settings
        self._clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed_passes = 0
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
            next_due = self._repository.next_due_at()
        except Exception:  # noqa: BLE001 - the next pass reports it
            return self._settings.backoff_base_seconds
        if next_due is None:
            return self._settings.idle_poll_seconds
        seconds = (next_due - self._clock()).total_seconds()
        return min(self._settings.idle_poll_seconds, max(0.0, seconds))

    def run_once(self) -> bool:
        """One pass: deliver every due row. False when the tracker seems away (the caller backs off)."""
        while not self._stop.is_set():
            rows = self._repository.due(self._clock(), self._settings.batch_size)
            if not rows:
                break
            for row in rows:
                if self._stop.is_set() or not self._deliver(row):
                    self._refresh_metrics()
                    return False
        self._refresh_metrics()
        return True

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
        count, oldest = self._repository.pending_stats()
        OUTBOX_PENDING.set(count)
        age = (self._clock() - oldest).total_seconds() if oldest else 0.0
        OUTBOX_OLDEST_PENDING_SECONDS.set(max(0.0, age))
