"""The outbox relay on SQLite and PostgreSQL: delivery on commit, backoff while the tracker or the database is
away, poison rows, and the pending metrics."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid

import grpc
import pytest
import sqlalchemy as sa
import sqlalchemy.exc
from hiremeter.usage.v1 import usage_tracker_pb2

from services.recruiting.outbox.relay import (
    OUTBOX_OLDEST_PENDING_SECONDS,
    OUTBOX_PENDING,
    OutboxRelay,
    RelaySettings,
)
from services.recruiting.storage.repository import OutboxItem, SqlRepository
from services.recruiting.storage.tables import outbox

FAST = RelaySettings(
    backoff_base_seconds=0.02, backoff_max_seconds=0.2, track_timeout_seconds=1, idle_poll_seconds=0.2
)


class RpcFailure(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return f"{self._code.name.lower()} for the test"


class FakeTrack:
    """Track as a callable: fails with `failing` while it is set, else acknowledges (duplicate on repeats)."""

    def __init__(self) -> None:
        self.failing: grpc.StatusCode | None = None
        self.seen: list[str] = []
        self.attempts = 0
        self.lock = threading.Lock()

    def __call__(self, request, timeout=None):
        with self.lock:
            self.attempts += 1
            if self.failing is not None:
                raise RpcFailure(self.failing)
            duplicate = request.operation_id in self.seen
            self.seen.append(request.operation_id)
            return usage_tracker_pb2.TrackResponse(duplicate=duplicate)


def item(now=None) -> OutboxItem:
    operation_id = f"op_{uuid.uuid4().hex}"
    request = usage_tracker_pb2.TrackRequest(operation_id=operation_id, company_id="acme", quantity="1")
    return OutboxItem(operation_id, request.SerializeToString(), now or dt.datetime.now(dt.UTC))


def wait_for(predicate, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def repository(recruiting_database_url, engine_for):
    return SqlRepository(engine_for(recruiting_database_url))


@pytest.fixture
def relay_for(repository):
    relays = []

    def make(track, settings=FAST, repo=None):
        relay = OutboxRelay(repo or repository, track, settings)
        relays.append(relay)
        relay.start()
        return relay

    yield make
    for relay in relays:
        relay.stop()


def test_rows_are_delivered_as_soon_as_they_are_committed(repository, relay_for):
    track = FakeTrack()
    relay = relay_for(track, RelaySettings(idle_poll_seconds=30))  # only notify() can wake it in time
    time.sleep(0.1)
    rows = [item() for _ in range(3)]
    for row in rows:
        repository.add_outbox(row)
    relay.notify()
    wait_for(lambda: len(track.seen) == 3, seconds=2)
    assert track.seen == [row.operation_id for row in rows]
    wait_for(lambda: repository.pending_stats()[0] == 0)
    assert OUTBOX_PENDING._value.get() == 0


def test_the_relay_backs_off_while_the_tracker_is_away_and_drains_after(
    repository, relay_for, recruiting_database_url, engine_for
):
    track = FakeTrack()
    track.failing = grpc.StatusCode.UNAVAILABLE
    relay = relay_for(track)
    for _ in range(20):
        repository.add_outbox(item())
        relay.notify()
    time.sleep(1.0)
    # Backing off: a few attempts per second, not one per row or per notify.
    assert 2 <= track.attempts <= 20
    assert repository.pending_stats()[0] == 20
    assert OUTBOX_PENDING._value.get() == 20
    assert OUTBOX_OLDEST_PENDING_SECONDS._value.get() > 0.5
    with engine_for(recruiting_database_url).connect() as connection:
        failed = connection.execute(
            sa.select(outbox.c.attempts, outbox.c.last_error).where(outbox.c.attempts > 0)
        ).all()
    assert failed and all("UNAVAILABLE" in row.last_error for row in failed)
    track.failing = None
    wait_for(lambda: repository.pending_stats()[0] == 0, seconds=5)
    assert len(set(track.seen)) == 20
    assert relay.stats.failures >= 2


def test_already_exists_poisons_the_row_which_is_kept_and_not_retried(
    repository, relay_for, recruiting_database_url, engine_for
):
    track = FakeTrack()
    track.failing = grpc.StatusCode.ALREADY_EXISTS
    poisoned = item()
    repository.add_outbox(poisoned)
    relay = relay_for(track)
    wait_for(lambda: relay.stats.poisoned == 1)
    track.failing = None
    healthy = item()
    repository.add_outbox(healthy)
    relay.notify()
    wait_for(lambda: healthy.operation_id in track.seen)
    time.sleep(0.3)
    assert poisoned.operation_id not in track.seen
    with engine_for(recruiting_database_url).connect() as connection:
        row = connection.execute(
            sa.select(outbox).where(outbox.c.operation_id == poisoned.operation_id)
        ).one()
    assert row.poisoned_at is not None and row.sent_at is None and "ALREADY_EXISTS" in row.last_error
    assert repository.pending_stats()[0] == 0


class FlakyRepository:
    """The real repository, with the database 'away' for the first `outages` reads of due rows."""

    def __init__(self, inner: SqlRepository, outages: int) -> None:
        self._inner, self.outages = inner, outages

    def due(self, now, limit, **options):
        if self.outages > 0:
            self.outages -= 1
            raise sqlalchemy.exc.OperationalError("SELECT", {}, Exception("connection refused"))
        return self._inner.due(now, limit, **options)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def test_the_relay_survives_the_database_being_away(repository, relay_for):
    repository.add_outbox(item())
    track = FakeTrack()
    relay = relay_for(track, repo=FlakyRepository(repository, outages=3))
    wait_for(lambda: len(track.seen) == 1)
    assert relay.stats.database_errors == 3


def test_a_lost_acknowledgement_is_resent_and_answered_as_a_duplicate(repository, relay_for):
    track = FakeTrack()
    row = item()
    track.seen.append(row.operation_id)  # the tracker recorded it, the ack never arrived
    repository.add_outbox(row)
    relay = relay_for(track)
    wait_for(lambda: relay.stats.sent == 1)
    assert relay.stats.duplicates == 1


class FakeTrackBatch:
    """TrackBatch as a callable: all or nothing; `refuse` maps an operation_id to the code that refuses it
    (INVALID_ARGUMENT names the request, as the real validation does); `failing` fails every call."""

    def __init__(self, track: FakeTrack) -> None:
        self.track = track
        self.batches: list[list[str]] = []
        self.refuse: dict[str, grpc.StatusCode] = {}
        self.failing: grpc.StatusCode | None = None

    def __call__(self, request, timeout=None):
        ids = [r.operation_id for r in request.requests]
        with self.track.lock:
            self.batches.append(ids)
            if self.failing is not None:
                raise RpcFailure(self.failing)
            for index, operation_id in enumerate(ids):
                if operation_id in self.refuse:
                    raise NamedFailure(self.refuse[operation_id], f"requests[{index}].model is unknown")
            results = []
            for operation_id in ids:
                results.append(usage_tracker_pb2.TrackResponse(duplicate=operation_id in self.track.seen))
                self.track.seen.append(operation_id)
            return usage_tracker_pb2.TrackBatchResponse(results=results)


class NamedFailure(RpcFailure):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code)
        self._details = details

    def details(self) -> str:
        return self._details


def reserved_item(now, *, with_usage: bool = False) -> OutboxItem:
    operation_id = f"op_{uuid.uuid4().hex}"
    request = usage_tracker_pb2.TrackRequest(
        operation_id=operation_id, company_id="acme", quantity="1", model="gpt-4o"
    )
    request.started_time.FromDatetime(now)
    if with_usage:
        request.usage.input_tokens = 10
    return OutboxItem(operation_id, request.SerializeToString(), now)


def states(engine) -> dict[str, tuple[str, int]]:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(outbox.c.operation_id, outbox.c.state, outbox.c.attempts)).all()
    return {row.operation_id: (row.state, row.attempts) for row in rows}


def test_orphans_coming_due_together_are_released_and_tracked_in_one_batch_after_the_exact_rows(
    repository, relay_for
):
    track = FakeTrack()
    batch = FakeTrackBatch(track)
    now = dt.datetime.now(dt.UTC)
    # Three reservations whose release times fall 0.3 s apart, and two rows with exact usage.
    orphans = [reserved_item(now) for _ in range(3)]
    for offset, orphan in enumerate(orphans):
        repository.reserve(orphan, release_at=now + dt.timedelta(seconds=0.5 + 0.3 * offset))
    exact = [reserved_item(now, with_usage=True) for _ in range(2)]
    for row in exact:
        repository.add_outbox(row)
    settings = RelaySettings(
        backoff_base_seconds=0.02, track_timeout_seconds=1, idle_poll_seconds=0.2, orphan_linger_seconds=1.0
    )
    relay = OutboxRelay(repository, track, settings, track_batch=batch)
    relay.start()
    try:
        wait_for(lambda: len(track.seen) == 5, seconds=5)
    finally:
        relay.stop()
    assert batch.batches == [[r.operation_id for r in exact], [r.operation_id for r in orphans]]
    assert track.attempts == 0  # nothing went through Track
    assert relay.stats.orphans == 3 and relay.stats.sent == 5
    # The orphans went without usage.
    assert repository.pending_stats()[0] == 0


def test_a_batch_refused_for_one_request_poisons_that_row_alone_and_the_others_still_go_together(
    repository, relay_for, recruiting_database_url, engine_for
):
    track = FakeTrack()
    batch = FakeTrackBatch(track)
    rows = [item() for _ in range(4)]
    for row in rows:
        repository.add_outbox(row)
    bad = rows[1].operation_id
    batch.refuse[bad] = grpc.StatusCode.INVALID_ARGUMENT
    original = track.__call__

    def refusing_track(request, timeout=None):
        if request.operation_id == bad:
            with track.lock:
                track.attempts += 1
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT)
        return original(request, timeout)

    relay = OutboxRelay(repository, refusing_track, FAST, track_batch=batch)
    relay.start()
    try:
        wait_for(lambda: relay.stats.poisoned == 1 and relay.stats.sent == 3)
    finally:
        relay.stop()
    others = [r.operation_id for r in rows if r.operation_id != bad]
    assert batch.batches == [[r.operation_id for r in rows], others]
    final = states(engine_for(recruiting_database_url))
    assert final[bad][0] == "poisoned"
    assert all(final[o] == ("sent", 1) for o in others)


def test_a_batch_refused_without_naming_a_request_is_delivered_row_by_row(
    repository, recruiting_database_url, engine_for
):
    track = FakeTrack()
    batch = FakeTrackBatch(track)
    rows = [item() for _ in range(3)]
    for row in rows:
        repository.add_outbox(row)
    batch.failing = grpc.StatusCode.ALREADY_EXISTS
    relay = OutboxRelay(repository, track, FAST, track_batch=batch)
    relay.start()
    try:
        wait_for(lambda: relay.stats.sent == 3)
    finally:
        relay.stop()
    assert track.seen == [r.operation_id for r in rows]  # one Track each
    assert relay.stats.poisoned == 0


def test_a_batch_the_tracker_cannot_take_backs_off_and_is_retried_together(
    repository, recruiting_database_url, engine_for
):
    track = FakeTrack()
    batch = FakeTrackBatch(track)
    rows = [item() for _ in range(3)]
    for row in rows:
        repository.add_outbox(row)
    batch.failing = grpc.StatusCode.UNAVAILABLE
    relay = OutboxRelay(repository, track, FAST, track_batch=batch)
    relay.start()
    try:
        wait_for(lambda: len(batch.batches) >= 3)
        with engine_for(recruiting_database_url).connect() as connection:
            schedules = connection.execute(sa.select(outbox.c.next_attempt_at, outbox.c.last_error)).all()
        assert len({row.next_attempt_at for row in schedules}) == 1  # one schedule: retried together
        assert all("UNAVAILABLE" in row.last_error for row in schedules)
        batch.failing = None
        wait_for(lambda: relay.stats.sent == 3)
    finally:
        relay.stop()
    ids = [r.operation_id for r in rows]
    assert all(sent == ids for sent in batch.batches)
    assert track.attempts == 0 and relay.stats.failures >= 3


def test_a_tracker_without_track_batch_gets_track(repository):
    track = FakeTrack()
    batch = FakeTrackBatch(track)
    batch.failing = grpc.StatusCode.UNIMPLEMENTED
    rows = [item() for _ in range(3)]
    for row in rows:
        repository.add_outbox(row)
    relay = OutboxRelay(repository, track, FAST, track_batch=batch)
    relay.start()
    try:
        wait_for(lambda: relay.stats.sent == 3)
    finally:
        relay.stop()
    assert track.seen == [r.operation_id for r in rows] and len(batch.batches) == 1
