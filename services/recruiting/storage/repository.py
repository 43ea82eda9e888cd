"""Recruiting's repository: results and their outbox rows, each pair written in one transaction.

The interface is what the service layer and the relay need; SqlRepository implements it on SQLAlchemy Core
for SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from services.recruiting.storage.tables import interviews, outbox, question_sets, resumes

STARTED, COMPLETED = "started", "completed"


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
    def add_resume(self, resume: StoredResume, item: OutboxItem) -> None: ...
    def get_resume(self, resume_id: str) -> StoredResume | None: ...
    def add_question_set(self, question_set: StoredQuestionSet, item: OutboxItem) -> None: ...
    def get_question_set(self, question_set_id: str) -> StoredQuestionSet | None: ...
    def add_interview(self, interview: StoredInterview) -> None: ...
    def get_interview(self, interview_id: str) -> StoredInterview | None: ...
    def complete_interview(
        self, interview_id: str, *, ended_at: dt.datetime, duration_minutes: str, usage: str, item: OutboxItem
    ) -> bool: ...
    def add_outbox(self, item: OutboxItem) -> None: ...


def _outbox_values(item: OutboxItem) -> dict:
    return {
        "operation_id": item.operation_id,
        "payload": item.payload,
        "created_at": item.created_at,
        "next_attempt_at": item.created_at,
        "attempts": 0,
        "last_error": "",
    }


class SqlRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- results -------------------------------------------------------------------------------------------
    def add_resume(self, resume: StoredResume, item: OutboxItem) -> None:
        with self._engine.begin() as connection:
            connection.execute(resumes.insert().values(**vars(resume)))
            connection.execute(outbox.insert().values(**_outbox_values(item)))

    def get_resume(self, resume_id: str) -> StoredResume | None:
        with self._engine.connect() as connection:
            row = connection.execute(resumes.select().where(resumes.c.resume_id == resume_id)).first()
        return StoredResume(**row._mapping) if row else None

    def add_question_set(self, question_set: StoredQuestionSet, item: OutboxItem) -> None:
        with self._engine.begin() as connection:
            connection.execute(question_sets.insert().values(**vars(question_set)))
            connection.execute(outbox.insert().values(**_outbox_values(item)))

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

    def add_outbox(self, item: OutboxItem) -> None:
        """An operation metered without a stored result (tokens spent on a reply that failed validation)."""
        with self._engine.begin() as connection:
            connection.execute(outbox.insert().values(**_outbox_values(item)))

    # -- the relay's side ----------------------------------------------------------------------------------
    def due(self, now: dt.datetime, limit: int) -> list[PendingRow]:
        query = (
            sa.select(
                outbox.c.id, outbox.c.operation_id, outbox.c.payload, outbox.c.attempts, outbox.c.created_at
            )
            .where(
                outbox.c.sent_at.is_(None), outbox.c.poisoned_at.is_(None), outbox.c.next_attempt_at <= now
            )
            .order_by(outbox.c.next_attempt_at, outbox.c.id)
            .limit(limit)
        )
        with self._engine.connect() as connection:
            return [PendingRow(**row._mapping) for row in connection.execute(query)]

    def next_due_at(self) -> dt.datetime | None:
        query = sa.select(sa.func.min(outbox.c.next_attempt_at)).where(
            outbox.c.sent_at.is_(None), outbox.c.poisoned_at.is_(None)
        )
        with self._engine.connect() as connection:
            value = connection.execute(query).scalar()
        return (
            outbox.c.next_attempt_at.type.process_result_value(value, self._engine.dialect) if value else None
        )

    def mark_sent(self, row_id: int, now: dt.datetime) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                outbox.update()
                .where(outbox.c.id == row_id)
                .values(sent_at=now, attempts=outbox.c.attempts + 1, last_error="")
            )

    def mark_failed(self, row_id: int, *, next_attempt_at: dt.datetime, error: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                outbox.update()
                .where(outbox.c.id == row_id)
                .values(
                    attempts=outbox.c.attempts + 1, next_attempt_at=next_attempt_at, last_error=error[:512]
                )
            )

    def mark_poisoned(self, row_id: int, *, now: dt.datetime, error: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                outbox.update()
                .where(outbox.c.id == row_id)
                .values(attempts=outbox.c.attempts + 1, poisoned_at=now, last_error=error[:512])
            )

    def pending_stats(self) -> tuple[int, dt.datetime | None]:
        """Rows still to deliver (poisoned rows excluded) and the creation time of the oldest."""
        query = sa.select(sa.func.count(), sa.func.min(outbox.c.created_at)).where(
            outbox.c.sent_at.is_(None), outbox.c.poisoned_at.is_(None)
        )
        with self._engine.connect() as connection:
            count, oldest = connection.execute(query).one()
        if oldest is not None:
            oldest = outbox.c.created_at.type.process_result_value(oldest, self._engine.dialect)
        return int(count), oldest
