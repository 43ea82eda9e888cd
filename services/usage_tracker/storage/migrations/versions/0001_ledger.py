"""The ledger, its rollups, the price book, margins, reconciliation reports and the seed views.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import Money, UTCDateTime
from services.usage_tracker.storage.tables import CATEGORY_VIEWS, view_sql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "company_margins",
        sa.Column("company_id", sa.String(length=128), nullable=False),
        sa.Column("effective_at", UTCDateTime(), nullable=False),
        sa.Column("margin", Money(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("company_id", "effective_at", name=op.f("pk_company_margins")),
    )
    op.create_table(
        "price_versions",
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("effective_at", UTCDateTime(), nullable=False),
        sa.Column("note", sa.String(length=512), server_default="", nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_price_versions")),
        sa.UniqueConstraint("effective_at", name=op.f("uq_price_versions_effective_at")),
    )
    op.create_table(
        "reconciliation_reports",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("report", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_reports")),
    )
    with op.batch_alter_table("reconciliation_reports", schema=None) as batch_op:
        batch_op.create_index("ix_reconciliation_reports_day", ["day"], unique=False)

    op.create_table(
        "usage_records",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("record_id", sa.String(length=40), nullable=False),
        sa.Column("operation_id", sa.String(length=160), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("adjusts_record_id", sa.String(length=40), nullable=True),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("company_id", sa.String(length=128), nullable=False),
        sa.Column("job_id", sa.String(length=128), server_default="", nullable=False),
        sa.Column("candidate_id", sa.String(length=128), server_default="", nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("priced_model", sa.String(length=128), server_default="", nullable=False),
        sa.Column("openai_project_id", sa.String(length=128), server_default="", nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("cached_input_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("input_audio_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("cached_input_audio_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("output_audio_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("reasoning_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("quantity", Money(), nullable=False),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.Column("base_cost", Money(), nullable=False),
        sa.Column("margin", Money(), nullable=False),
        sa.Column("cost", Money(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("price_version", sa.String(length=64), server_default="", nullable=False),
        sa.Column("fallback_reason", sa.String(length=256), server_default="", nullable=False),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("completed_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('record', 'adjustment')", name=op.f("ck_usage_records_kind")),
        sa.CheckConstraint(
            "input_tokens >= 0 AND output_tokens >= 0", name=op.f("ck_usage_records_tokens_non_negative")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_records")),
        sa.UniqueConstraint("operation_id", name=op.f("uq_usage_records_operation_id")),
        sa.UniqueConstraint("record_id", name=op.f("uq_usage_records_record_id")),
    )
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.create_index("ix_usage_records_adjusts", ["adjusts_record_id"], unique=False)
        batch_op.create_index(
            "ix_usage_records_company_category_completed",
            ["company_id", "category", "completed_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_usage_records_company_completed", ["company_id", "completed_at"], unique=False
        )
        batch_op.create_index("ix_usage_records_completed", ["completed_at"], unique=False)

    op.create_table(
        "usage_rollups",
        sa.Column("company_id", sa.String(length=128), nullable=False),
        sa.Column("bucket_start", UTCDateTime(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("operations", sa.BigInteger(), nullable=False),
        sa.Column("adjustments", sa.BigInteger(), nullable=False),
        sa.Column("quantity", Money(), nullable=False),
        sa.Column("base_cost", Money(), nullable=False),
        sa.Column("cost", Money(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "company_id", "bucket_start", "category", "source", name=op.f("pk_usage_rollups")
        ),
    )
    op.create_table(
        "fallback_prices",
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("unit_price", Money(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version"], ["price_versions.version"], name=op.f("fk_fallback_prices_version_price_versions")
        ),
        sa.PrimaryKeyConstraint("version", "category", name=op.f("pk_fallback_prices")),
    )
    op.create_table(
        "model_prices",
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("text_input", Money(), nullable=False),
        sa.Column("cached_text_input", Money(), nullable=False),
        sa.Column("text_output", Money(), nullable=False),
        sa.Column("audio_input", Money(), nullable=True),
        sa.Column("cached_audio_input", Money(), nullable=True),
        sa.Column("audio_output", Money(), nullable=True),
        sa.ForeignKeyConstraint(
            ["version"], ["price_versions.version"], name=op.f("fk_model_prices_version_price_versions")
        ),
        sa.PrimaryKeyConstraint("version", "model", name=op.f("pk_model_prices")),
    )

    for view in CATEGORY_VIEWS:
        op.execute(view_sql(view))


def downgrade() -> None:
    for view in CATEGORY_VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {view}")
    op.drop_table("model_prices")
    op.drop_table("fallback_prices")
    op.drop_table("usage_rollups")
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_records_completed")
        batch_op.drop_index("ix_usage_records_company_completed")
        batch_op.drop_index("ix_usage_records_company_category_completed")
        batch_op.drop_index("ix_usage_records_adjusts")

    op.drop_table("usage_records")
    with op.batch_alter_table("reconciliation_reports", schema=None) as batch_op:
        batch_op.drop_index("ix_reconciliation_reports_day")

    op.drop_table("reconciliation_reports")
    op.drop_table("price_versions")
    op.drop_table("company_margins")
