"""Recruiting's results (resumes, question sets, interviews) and the outbox's poison marker.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("poisoned_at", UTCDateTime(), nullable=True))

    op.create_table(
        "resumes",
        sa.Column("resume_id", sa.String(length=64), nullable=False),
        sa.Column("company_id", sa.String(length=128), nullable=False),
        sa.Column("job_id", sa.String(length=128), nullable=False),
        sa.Column("candidate_id", sa.String(length=128), nullable=False),
        sa.Column("source_format", sa.String(length=16), nullable=False),
        sa.Column("file_name", sa.String(length=255), server_default="", nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("operation_id", sa.String(length=160), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("resume_id", name=op.f("pk_resumes")),
        sa.UniqueConstraint("operation_id", name=op.f("uq_resumes_operation_id")),
    )
    op.create_index("ix_resumes_company_id", "resumes", ["company_id", "created_at"])

    op.create_table(
        "question_sets",
        sa.Column("question_set_id", sa.String(length=64), nullable=False),
        sa.Column("company_id", sa.String(length=128), nullable=False),
        sa.Column("job_id", sa.String(length=128), nullable=False),
        sa.Column("candidate_id", sa.String(length=128), nullable=False),
        sa.Column("resume_id", sa.String(length=64), nullable=False),
        sa.Column("job_description", sa.Text(), nullable=False),
        sa.Column("stages", sa.Text(), nullable=False),
        sa.Column("question_count", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("operation_id", sa.String(length=160), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["resume_id"], ["resumes.resume_id"], name=op.f("fk_question_sets_resume_id_resumes")
        ),
        sa.PrimaryKeyConstraint("question_set_id", name=op.f("pk_question_sets")),
        sa.UniqueConstraint("operation_id", name=op.f("uq_question_sets_operation_id")),
    )
    op.create_index("ix_question_sets_company_id", "question_sets", ["company_id", "created_at"])

    op.create_table(
        "interviews",
        sa.Column("interview_id", sa.String(length=64), nullable=False),
        sa.Column("company_id", sa.String(length=128), nullable=False),
        sa.Column("job_id", sa.String(length=128), nullable=False),
        sa.Column("candidate_id", sa.String(length=128), nullable=False),
        sa.Column("question_set_id", sa.String(length=64), nullable=True),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("realtime_session_id", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("secret_expires_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("duration_minutes", sa.String(length=32), server_default="", nullable=False),
        sa.Column("usage", sa.Text(), server_default="", nullable=False),
        sa.Column("operation_id", sa.String(length=160), nullable=True),
        sa.ForeignKeyConstraint(
            ["question_set_id"],
            ["question_sets.question_set_id"],
            name=op.f("fk_interviews_question_set_id_question_sets"),
        ),
        sa.PrimaryKeyConstraint("interview_id", name=op.f("pk_interviews")),
        sa.UniqueConstraint("operation_id", name=op.f("uq_interviews_operation_id")),
    )
    op.create_index("ix_interviews_company_id", "interviews", ["company_id", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_interviews_company_id", table_name="interviews")
    op.drop_table("interviews")
    op.drop_index("ix_question_sets_company_id", table_name="question_sets")
    op.drop_table("question_sets")
    op.drop_index("ix_resumes_company_id", table_name="resumes")
    op.drop_table("resumes")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("poisoned_at")
