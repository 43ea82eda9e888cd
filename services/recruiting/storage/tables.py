"""Tables of the recruiting database.

outbox holds each operation's TrackRequest. Its state (see storage/repository.py for the transitions):
  reserved   written BEFORE OpenAI is called: the intent (operation_id, category, company/job/candidate, the
             model requested, started_time, project), no usage yet; next_attempt_at is when it becomes an
             orphan (reserved_at + grace) if nobody records its outcome
  ready      the exact TrackRequest (usage, completed_time, quantity), written in the same transaction as the
             operation's result; or an orphan released by the relay without usage (orphaned_at set)
  sent       acknowledged by UsageTracker.Track (sent_at)
  abandoned  the call never reached OpenAI or was refused before any work: nothing to bill, kept for audit
  poisoned   refused for good by the tracker: kept, with last_error, and no longer retried (poisoned_at)
resumes, question_sets and interviews are the operations' results; the structured parts are JSON text
(their shape is the domain's), the columns are what is looked up or filtered on.
"""

from __future__ import annotations

import sqlalchemy as sa

from services.common.db import UTCDateTime

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("operation_id", sa.String(160), nullable=False, unique=True),
    # The serialized hiremeter.usage.v1.TrackRequest.
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
    sa.Column("last_error", sa.String(512), nullable=False, server_default=""),
    sa.Column("sent_at", UTCDateTime(), nullable=True),
    sa.Column("poisoned_at", UTCDateTime(), nullable=True),
    sa.Column("state", sa.String(16), nullable=False, server_default="ready"),
    # When the relay released a reservation whose outcome was lost, to be billed without usage.
    sa.Column("orphaned_at", UTCDateTime(), nullable=True),
)
sa.Index("ix_outbox_pending", outbox.c.sent_at, outbox.c.next_attempt_at)
sa.Index("ix_outbox_state", outbox.c.state, outbox.c.next_attempt_at)

resumes = sa.Table(
    "resumes",
    metadata,
    sa.Column("resume_id", sa.String(64), primary_key=True),
    sa.Column("company_id", sa.String(128), nullable=False),
    sa.Column("job_id", sa.String(128), nullable=False),
    sa.Column("candidate_id", sa.String(128), nullable=False),
    sa.Column("source_format", sa.String(16), nullable=False),
    sa.Column("file_name", sa.String(255), nullable=False, server_default=""),
    sa.Column("model", sa.String(128), nullable=False),
    # The domain's ResumeData as JSON.
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("operation_id", sa.String(160), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)
sa.Index("ix_resumes_company_id", resumes.c.company_id, resumes.c.created_at)

question_sets = sa.Table(
    "question_sets",
    metadata,
    sa.Column("question_set_id", sa.String(64), primary_key=True),
    sa.Column("company_id", sa.String(128), nullable=False),
    sa.Column("job_id", sa.String(128), nullable=False),
    sa.Column("candidate_id", sa.String(128), nullable=False),
    sa.Column("resume_id", sa.String(64), sa.ForeignKey("resumes.resume_id"), nullable=False),
    sa.Column("job_description", sa.Text, nullable=False),
    # The domain's list of QuestionStage as JSON.
    sa.Column("stages", sa.Text, nullable=False),
    sa.Column("question_count", sa.Integer, nullable=False),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("operation_id", sa.String(160), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)
sa.Index("ix_question_sets_company_id", question_sets.c.company_id, question_sets.c.created_at)

interviews = sa.Table(
    "interviews",
    metadata,
    sa.Column("interview_id", sa.String(64), primary_key=True),
    sa.Column("company_id", sa.String(128), nullable=False),
    sa.Column("job_id", sa.String(128), nullable=False),
    sa.Column("candidate_id", sa.String(128), nullable=False),
    sa.Column(
        "question_set_id", sa.String(64), sa.ForeignKey("question_sets.question_set_id"), nullable=True
    ),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("realtime_session_id", sa.String(128), nullable=False),
    # "started" or "completed". The client secret itself is never stored.
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("secret_expires_at", UTCDateTime(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("ended_at", UTCDateTime(), nullable=True),
    # Exact decimal text, set on completion.
    sa.Column("duration_minutes", sa.String(32), nullable=False, server_default=""),
    # The usage billed (TokenUsage fields as JSON) when it was supplied; empty otherwise.
    sa.Column("usage", sa.Text, nullable=False, server_default=""),
    sa.Column("operation_id", sa.String(160), nullable=True, unique=True),
)
sa.Index("ix_interviews_company_id", interviews.c.company_id, interviews.c.started_at)
