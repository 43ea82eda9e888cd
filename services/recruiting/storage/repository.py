"""Recruiting's repository: results and their outbox rows, each pair written in one transaction.

The interface is what the service layer and the relay need; SqlRepository implements it on SQLAlchemy Core
for SQLite and PostgreSQL alike.

An outbox row's life (states in tables.py):

    reserve()                       -> reserved   before OpenAI is called; release time = now + grace
    add_resume / add_question_set /
    add_outbox / complete_reserved  reserved -> ready      the exact TrackRequest, with the result if any
    abandon()                       reserved -> abandoned  OpenAI never did any work: never billed
    release_orphan() (the relay)    reserved -> ready      past its release time: billed without usage
    mark_sent(_many) / mark_poisoned  ready -> sent | poisoned

Every transition out of reserved is a conditional UPDATE ... WHERE state = 'reserved', so exactly one of
"completed with usage", "abandoned" and "released as an orphan" wins, on both backends, and the operation_id
never changes: Track's idempotency does the rest.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from services.recruiting.storage.tables import interviews, outbox, question_sets, resumes

STARTED, COMPLETED = "started", "completed"

RESERVED, READY, SENT, ABANDONED, POISONED = "reserved", "ready", "sent", "abandoned", "poisoned"


@dataclass(frozen=True)
class OutboxItem:
    """A TrackRequest to deliver: operation_id and its serialized payload."""

    operation_id: str
    payload: bytes
    created_at: dt.datetime


@dataclass(frozen=True)
class PendingRow:
    id: int
    operation_id: str
    payload: bytes
    attempts: int
    created_at: dt.datetime
    state: str = READY
    next_attempt_at: dt.datetime | None = None  # for a reserved row: when it became an orphan


@dataclass(frozen=True)
class StoredResume:
    resume_id: str
    company_id: str
    job_id: str
    candidate_id: str
    source_format: str
    file_name: str
    model: str
    data: str  # ResumeData JSON
    operation_id: str
    created_at: dt.datetime


@dataclass(frozen=True)
class StoredQuestionSet:
    question_set_id: str
    company_id: str
    job_id: str
    candidate_id: str
    resume_id: str
    job_description: str
    stages: str  # list[QuestionStage] JSON
    question_count: int
    model: str
    operation_id: str
    created_at: dt.datetime


@dataclass(frozen=True)
class StoredInterview:
    interview_id: str
    company_id: str
    job_id: str
    candidate_id: str
    question_set_id: str | None
    model: str
    realtime_session_id: str
    state: str
    secret_expires_at: dt.datetime
    started_at: dt.datetime
    ended_at: dt.datetime | None = None
    duration_minutes: str = ""
    usage: str = ""
    operation_id: str | None = None


class Repository(Protocol):
    def reserve(self, item: OutboxItem, *, release_at: dt.datetime) -> None: ...
    def abandon(self, operation_id: str, *, reason: str) -> bool: ...
    def note(self, operation_id: str, *, reason: str) -> None: ...
    def add_resume(self, resume: StoredResume, item: OutboxItem) -> bool: ...
    def get_resume(self, resume_id: str) -> StoredResume | None: ...
    def add_question_set(self, question_set: StoredQuestionSet, item: OutboxItem) -> bool: ...
    def get_question_set(self, question_set_id: str) -> StoredQuestionSet | None: ...
    def add_interview(self, interview: StoredInterview) -> None: ...
    def get_interview(self, interview_id: str) -> StoredInterview | None: ...
    def complete_interview(
        self, interview_id: str, *, ended_at: dt.datetime, duration_minutes: str, usage: str, item: OutboxItem
    ) -> bool: ...
    def add_outbox(self, item: OutboxItem) -> bool: ...


def _outbox_values(item: OutboxItem) -> dict:
    return {
        "operation_id": item.operation_id,
        "payload": item.payload,
        "created_at": item.created_at,
        "next_attempt_at": item.created_at,
        "attempts": 0,
        "last_error": "",
        "state": READY,
    }


def _complete(connection: sa.Connection, item: OutboxItem) -> bool:
    """The operation's reservation becomes its exact TrackRequest (ready to send). Without a reservation (a
    caller that did not reserve) the row is inserted ready. False when the reservation had already been
    released as an orphan or abandoned: the row is left alone (it is billed, or known to cost nothing, once)."""
    result = connection.execute(
        outbox.update()
        .where(outbox.c.operation_id == item.operation_id, outbox.c.state == RESERVED)
        .values(payload=item.payload, state=READY, next_attempt_at=item.created_at, last_error="")
    )
    if result.rowcount == 1:
        return True
    exists = connection.execute(
        sa.select(outbox.c.id).where(outbox.c.operation_id == item.operation_id)
    ).first()
    if exists is not None:
        return False
    connection.execute(outbox.insert().values(**_outbox_values(item)))
    return True


class SqlRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- reservations --------------------------------------------------------------------------------------
    def reserve(self, item: OutboxItem, *, release_at: dt.datetime) -> None:
        """The intent, durably, before OpenAI is called. Raises when the database is away."""
        values = _outbox_values(item) | {"state": RESERVED, "next_attempt_at": release_at}
        with self._engine.begin() as connection:
            connection.execute(outbox.insert().values(**values))

    def abandon(self, operation_id: str, *, reason: str) -> bool:
        """reserved -> abandoned: the call spent nothing. False when the row had already left reserved."""
        with self._engine.begin() as connection:
            result = connection.execute(
                outbox.update()
                .where(outbox.c.operation_id == operation_id, outbox.c.state == RESERVED)
                .values(state=ABANDONED, last_error=reason[:512])
            )
        return result.rowcount == 1

    def note(self, operation_id: str, *, reason: str) -> None:
        """Why a reservation stays reserved (an OpenAI failure that may have spent tokens), for operators."""
        with self._engine.begin() as connection:
            connection.execute(
                outbox.update()
                .where(outbox.c.operation_id == operation_id, outbox.c.state == RESERVED)
                .values(last_error=reason[:512])
            )

    def complete_reserved(self, item: OutboxItem) -> bool:
        """The relay's retry of a completion the service could not commit (the result itself is gone)."""
        with self._engine.begin() as connection:
            return _complete(connection, item)

    # -- results -------------------------------------------------------------------------------------------
    def add_resume(self, resume: StoredResume, item: OutboxItem) -> bool:
        with self._engine.begin() as connection:
            connection.execute(resumes.insert().values(**vars(resume)))
            return _complete(connection, item)

    def get_resume(self, resume_id: str) -> StoredResume | None:
        with self._engine.connect() as connection:
            row = connection.execute(resumes.select().where(resumes.c.resume_id == resume_id)).first()
        return StoredResume(**row._mapping) if row else None

    def add_question_set(self, question_set: StoredQuestionSet, item: OutboxItem) -> bool:
        with self._engine.begin() as connection:
            connection.execute(question_sets.insert().values(**vars(question_set)))
            return _complete(connection, item)

    def get_question_set(self, question_set_id: str) -> StoredQuestionSet | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                question_sets.select().where(question_sets.c.question_set_id == question_set_id)
            ).first()
        return StoredQuestionSet(**row._mapping) if row else None

    def add_interview(self, interview: StoredInterview) -> None:
        with self._engine.begin() as connection:
            connection.execute(interviews.insert().values(**vars(interview)))

    def get_interview(self, interview_id: str) -> StoredInterview | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                interviews.select().where(interviews.c.interview_id == interview_id)
            ).first()
        return StoredInterview(**row._mapping) if row else None

    def complete_interview(
        self, interview_id: str, *, ended_at: dt.datetime, duration_minutes: str, usage: str, item: OutboxItem
    ) -> bool:
        """Started -> completed plus its outbox row, atomically. False (nothing written) when another call
        completed it first: the conditional UPDATE is the idempotency guard on both backends."""
        with self._engine.begin() as connection:
            result = connection.execute(
                interviews.update()
                .where(interviews.c.interview_id == interview_id, interviews.c.state == STARTED)
                .values(
                    state=COMPLETED,
                    ended_at=ended_at,
                    duration_minutes=duration_minutes,
                    usage=usage,
                    operation_id=item.operation_id,
                )
            )
            if result.rowcount != 1:
                return False
            connection.execute(outbox.insert().values(**_outbox_values(item)))
            return True

    def add_outbox(self, item: OutboxItem) -> bool:
        """An operation metered without a stored result (tokens spent on a reply that failed validation):
        its reservation completed, or a ready row inserted when there was none."""
        with self._engine.begin() as connection:
            return _complete(connection, item)

    # -- the relay's side ----------------------------------------------------------------------------------
    def due(self, now: dt.datetime, limit: int, *, orphan_linger: float = 0.0) -> list[PendingRow]:
        """Ready rows due for a (re)try, and reservations past their release time (orphans to release).

        Reservations are released together: none is due until the earliest has been past its release time
        for `orphan_linger` seconds, and then every reservation past its own release time is. So orphans of
        one crash, reserved moments apart, reach the tracker in one TrackBatch and share their usage-API
        window instead of the first taking it all (each waits at most `orphan_linger` longer)."""
        states: tuple[str, ...] = (READY,)
        with self._engine.connect() as connection:
            earliest = connection.execute(
                sa.select(sa.func.min(outbox.c.next_attempt_at)).where(outbox.c.state == RESERVED)
            ).scalar()
            if earliest is not None:
                earliest = outbox.c.next_attempt_at.type.process_result_value(earliest, self._engine.dialect)
                if earliest <= now - dt.timedelta(seconds=orphan_linger):
                    states = (READY, RESERVED)
            query = (
                sa.select(
                    outbox.c.id,
                    outbox.c.operation_id,
                    outbox.c.payload,
                    outbox.c.attempts,
                    outbox.c.created_at,
                    outbox.c.state,
                    outbox.c.next_attempt_at,
                )
                .where(outbox.c.state.in_(states), outbox.c.next_attempt_at <= now)
                .order_by(outbox.c.next_attempt_at, outbox.c.id)
                .limit(limit)
            )
            return [PendingRow(**row._mapping) for row in connection.execute(query)]

    def release_orphan(self, row_id: int, payload: bytes, now: dt.datetime) -> bool:
        """reserved -> ready without usage. False when the service completed (or abandoned) it meanwhile."""
        with self._engine.begin() as connection:
            result = connection.execute(
                outbox.update()
                .where(outbox.c.id == row_id, outbox.c.state == RESERVED)
                .values(payload=payload, state=READY, orphaned_at=now, next_attempt_at=now)
            )
        return result.rowcount == 1

    def next_due_at(self, *, orphan_linger: float = 0.0) -> dt.datetime | None:
        """When the next row is due: a ready row's next attempt, or the earliest reservation's release time
        plus `orphan_linger` (see due())."""
        ready = sa.select(sa.func.min(outbox.c.next_attempt_at)).where(outbox.c.state == READY)
        reserved = sa.select(sa.func.min(outbox.c.next_attempt_at)).where(outbox.c.state == RESERVED)
        with self._engine.connect() as connection:
            values = [connection.execute(ready).scalar(), connection.execute(reserved).scalar()]
        convert = outbox.c.next_attempt_at.type.process_result_value
        ready_at, reserved_at = (convert(v, self._engine.dialect) if v else None for v in values)
        if reserved_at is not None:
            reserved_at += dt.timedelta(seconds=orphan_linger)
        candidates = [t for t in (ready_at, reserved_at) if t is not None]
        return min(candidates) if candidates else None

    def mark_sent(self, row_id: int, now: dt.datetime) -> None:
        self.mark_sent_many([row_id], now)

    def mark_sent_many(self, row_ids: list[int], now: dt.datetime) -> None:
        """The rows of one acknowledged TrackBatch, in one transaction."""
        with self._engine.begin() as connection:
            connection.execute(
                outbox.update()
                .where(outbox.c.id.in_(row_ids))
                .values(state=SENT, sent_at=now, attempts=outbox.c.attempts + 1, last_error="")
            )

    def mark_failed(self, row_id: int, *, next_attempt_at: dt.datetime, error: str) -> None:
        self.mark_failed_many([row_id], next_attempt_at=next_attempt_at, error=error)

    def mark_failed_many(self, row_ids: list[int], *, next_attempt_at: dt.datetime, error: str) -> None:
        """A failed delivery; the rows of one batch share their next attempt, so they are retried together."""
        with self._engine.begin() as connection:
            connection.execute(
                outbox.update()
                .where(outbox.c.id.in_(row_ids))
                .values(
                    attempts=outbox.c.attempts + 1, next_attempt_at=next_attempt_at, last_error=error[:512]
                )
            )

    def mark_poisoned(self, row_id: int, *, now: dt.datetime, error: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                outbox.update()
                .where(outbox.c.id == row_id)
                .values(
                    state=POISONED, attempts=outbox.c.attempts + 1, poisoned_at=now, last_error=error[:512]
                )
            )

    def pending_stats(self, now: dt.datetime | None = None) -> tuple[int, dt.datetime | None]:
        """Rows owed to the tracker and the creation time of the oldest: ready rows, and reservations past
        their release time (orphans the relay has yet to release). Reservations within their grace are calls
        in flight (reserved_stats), abandoned and poisoned rows are owed nothing."""
        now = now or dt.datetime.now(dt.UTC)
        owed = sa.or_(
            outbox.c.state == READY, sa.and_(outbox.c.state == RESERVED, outbox.c.next_attempt_at <= now)
        )
        return self._count_and_oldest(owed)

    def reserved_stats(self, now: dt.datetime | None = None) -> tuple[int, dt.datetime | None]:
        """Reservations still within their grace (OpenAI calls in flight, or outcomes not yet recorded)."""
        now = now or dt.datetime.now(dt.UTC)
        return self._count_and_oldest(sa.and_(outbox.c.state == RESERVED, outbox.c.next_attempt_at > now))

    def _count_and_oldest(self, condition) -> tuple[int, dt.datetime | None]:
        query = sa.select(sa.func.count(), sa.func.min(outbox.c.created_at)).where(condition)
        with self._engine.connect() as connection:
            count, oldest = connection.execute(query).one()
        if oldest is not None:
            oldest = outbox.c.created_at.type.process_result_value(oldest, self._engine.dialect)
        return int(count), oldest
