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

    def due(self, now, limit):
        if self.outages > 0:
            self.outages -= 1
            raise sqlalchemy.exc.OperationalError("SELECT", {}, Exception("connection refused"))
        return self._inner.due(now, limit)

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
