"""Group commit: one transaction for every Track waiting to be written.

Each Track is priced in its own handler thread, then handed to `GroupCommit.append`, which blocks until
its row is durable. A few writer threads each take everything queued (up to `max_batch`), write it with
`UsageRepository.append_group` (one multi-row INSERT ... ON CONFLICT (operation_id) DO NOTHING RETURNING,
the rollups summed per key in one upsert, one COMMIT), and only then release the waiting callers. While
one writer waits for PostgreSQL to flush its commit, the next batch accumulates, so under load many Tracks
share one WAL flush instead of paying one each.

Guarantees, unchanged from one transaction per Track:
- durable before acknowledged: a caller is released only after its batch's COMMIT returned;
- idempotent: the UNIQUE operation_id decides; a row that was already stored (or that an earlier member
  of the same batch carries) comes back as (the stored record, False);
- failure isolation: when a batch's transaction fails, each member is retried alone in its own
  transaction, so one bad row fails only its own caller and a database outage fails every caller (who
  retry, as the outbox relay does) with the error they would have had alone.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence

from services.usage_tracker.storage.repository import Record

log = logging.getLogger(__name__)


class _Pending:
    __slots__ = ("record", "result", "error", "_done")

    def __init__(self, record: Record) -> None:
        self.record = record
        self.result: tuple[Record, bool] | None = None
        self.error: BaseException | None = None
        self._done = threading.Lock()
        self._done.acquire()

    def resolve(self, result: tuple[Record, bool] | None, error: BaseException | None) -> None:
        self.result, self.error = result, error
        self._done.release()

    def wait(self) -> tuple[Record, bool]:
        self._done.acquire()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class GroupCommit:
    def __init__(
        self,
        append_group: Callable[[Sequence[Record]], list[tuple[Record, bool]]],
        append_one: Callable[[Record], tuple[Record, bool]],
        *,
        writers: int = 1,
        max_batch: int = 1000,
    ) -> None:
        self._append_group = append_group
        self._append_one = append_one
        self._max_batch = max_batch
        self._queue: deque[_Pending] = deque()
        self._ready = threading.Condition(threading.Lock())
        self._closed = False
        self._threads = [
            threading.Thread(target=self._run, name=f"ledger-writer-{n}", daemon=True) for n in range(writers)
        ]
        for thread in self._threads:
            thread.start()

    def append(self, record: Record) -> tuple[Record, bool]:
        """(record, True) once it is committed, or (the stored record, False) when its operation_id was
        taken; raises what writing it raised."""
        pending = _Pending(record)
        with self._ready:
            if self._closed:
                raise RuntimeError("the ledger writer is closed")
            self._queue.append(pending)
            self._ready.notify()
        return pending.wait()

    @property
    def queued(self) -> int:
        """Tracks waiting for a writer (not counting the batches being written)."""
        with self._ready:
            return len(self._queue)

    def close(self) -> None:
        """Writes what is queued, then stops the writers."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)

    def _take(self) -> list[_Pending] | None:
        with self._ready:
            while not self._queue:
                if self._closed:
                    return None
                self._ready.wait()
            batch = []
            while self._queue and len(batch) < self._max_batch:
                batch.append(self._queue.popleft())
            return batch

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            self._write(batch)

    def _write(self, batch: list[_Pending]) -> None:
        try:
            results = self._append_group([pending.record for pending in batch])
        except BaseException as error:  # noqa: BLE001 - every waiter must be released, whatever happened
            if len(batch) == 1:
                batch[0].resolve(None, error)
                return
            log.warning("group commit failed; writing its %d members one by one: %s", len(batch), error)
            for pending in batch:
                try:
                    pending.resolve(self._append_one(pending.record), None)
                except BaseException as own:  # noqa: BLE001
                    pending.resolve(None, own)
            return
        for pending, result in zip(batch, results, strict=True):
            pending.resolve(result, None)
