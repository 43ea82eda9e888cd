"""Group commit with in-memory fakes: every caller gets its own answer only after its group was written,
callers waiting together share one write, and a failed group fails only the members that fail alone."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from services.usage_tracker.storage.group_commit import GroupCommit


class FakeLedger:
    def __init__(self, gate: threading.Event | None = None) -> None:
        self.stored: dict[str, object] = {}
        self.groups: list[int] = []
        self.entered = 0  # records of the group being written (held at the gate)
        self.gate = gate
        self.lock = threading.Lock()

    def append_group(self, records):
        self.entered = len(records)
        if self.gate is not None:
            self.gate.wait(5)
        if any(record.operation_id.startswith("bad") for record in records):
            raise RuntimeError("constraint violated")
        with self.lock:
            self.groups.append(len(records))
            results = []
            for record in records:
                if record.operation_id in self.stored:
                    results.append((self.stored[record.operation_id], False))
                else:
                    self.stored[record.operation_id] = record
                    results.append((record, True))
            return results

    def append_one(self, record):
        return self.append_group([record])[0]


def _record(operation_id: str):
    return SimpleNamespace(operation_id=operation_id)


def test_callers_waiting_together_share_one_group_and_each_gets_its_own_answer():
    gate = threading.Event()
    ledger = FakeLedger(gate)
    writer = GroupCommit(ledger.append_group, ledger.append_one, writers=1, max_batch=1000)
    records = [_record(f"op-{n}") for n in range(50)] + [_record("op-7")]
    try:
        with ThreadPoolExecutor(max_workers=len(records)) as pool:
            futures = [pool.submit(writer.append, record) for record in records]
            deadline = time.monotonic() + 10
            while writer.queued + ledger.entered < len(records):  # all queued behind the group at the gate
                assert time.monotonic() < deadline, "callers never queued"
                time.sleep(0.01)
            gate.set()
            answers = [future.result(timeout=10) for future in futures]
    finally:
        writer.close()
    assert [answer[0].operation_id for answer in answers] == [r.operation_id for r in records]
    assert sum(inserted for _, inserted in answers) == 50
    assert answers[-1] == (ledger.stored["op-7"], False)  # the repeated operation is a duplicate
    assert len(ledger.groups) == 2 and sum(ledger.groups) == len(records)  # one write for all that waited


def test_a_failing_group_fails_only_its_bad_member():
    gate = threading.Event()
    ledger = FakeLedger(gate)
    writer = GroupCommit(ledger.append_group, ledger.append_one, writers=1)
    records = [_record("op-a"), _record("bad-b"), _record("op-c")]
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            futures = [pool.submit(writer.append, record) for record in records]
            threading.Event().wait(0.5)
            gate.set()
            good_a = futures[0].result(timeout=10)
            good_c = futures[2].result(timeout=10)
            with pytest.raises(RuntimeError, match="constraint violated"):
                futures[1].result(timeout=10)
    finally:
        writer.close()
    assert good_a == (records[0], True) and good_c == (records[2], True)
    assert set(ledger.stored) == {"op-a", "op-c"}


def test_close_writes_what_is_queued_then_refuses():
    ledger = FakeLedger()
    writer = GroupCommit(ledger.append_group, ledger.append_one, writers=2)
    assert writer.append(_record("op-1")) == (ledger.stored["op-1"], True)
    writer.close()
    with pytest.raises(RuntimeError):
        writer.append(_record("op-2"))
