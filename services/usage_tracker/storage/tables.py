"""Tables of the usage database. The ledger (usage_records) is append-only: rows are inserted, never updated
or deleted; reconciliation corrects with adjustment rows (kind = 'adjustment') that point at the record.

usage_rollups holds, per company, UTC hour, category and source, the sums of the ledger, updated in the
same transaction as each insert, so that summaries and daily series never scan the ledger. Hours rather
than days so that periods in any whole-hour time zone are exact from the rollups alone.

Categories and sources are stored as their wire names: cv_parsing / question_generation / video_interview,
response_usage / usage_api / fallback / reconciliation.
"""

from __future__ import annotations

import sqlalchemy as sa

from services.common.db import Money, UTCDateTime

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

TOKEN_COLUMNS = (
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "input_audio_tokens",
    "cached_input_audio_tokens",
    "output_audio_tokens",
    "reasoning_tokens",
)

usage_records = sa.Table(
    "usage_records",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("record_id", sa.String(40), nullable=False, unique=True),
    # The idempotency key. Adjustments use "adj:<day>:<record_id>" so a re-run of reconciliation is a no-op.
    sa.Column("operation_id", sa.String(160), nullable=False, unique=True),
    sa.Column("kind", sa.String(16), nullable=False),  # record | adjustment
    sa.Column("adjusts_record_id", sa.String(40), nullable=True),
    sa.Column("category", sa.String(32), nullable=False),
    sa.Column("company_id", sa.String(128), nullable=False),
    sa.Column("job_id", sa.String(128), nullable=False, server_default=""),
    sa.Column("candidate_id", sa.String(128), nullable=False, server_default=""),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("priced_model", sa.String(128), nullable=False, server_default=""),
    sa.Column("openai_project_id", sa.String(128), nullable=False, server_default=""),
    *(sa.Column(name, sa.BigInteger, nullable=False, server_default="0") for name in TOKEN_COLUMNS),
    sa.Column("quantity", Money(), nullable=False),
    sa.Column("unit", sa.String(16), nullable=False),
    sa.Column("base_cost", Money(), nullable=False),
    sa.Column("margin", Money(), nullable=False),
    sa.Column("cost", Money(), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("price_version", sa.String(64), nullable=False, server_default=""),
    sa.Column("fallback_reason", sa.String(256), nullable=False, server_default=""),
    # sha256 of the canonical TrackRequest: a retry must carry the same payload.
    sa.Column("payload_hash", sa.String(64), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("completed_at", UTCDateTime(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.CheckConstraint("kind IN ('record', 'adjustment')", name="kind"),
    sa.CheckConstraint("input_tokens >= 0 AND output_tokens >= 0", name="tokens_non_negative"),
)
sa.Index("ix_usage_records_company_completed", usage_records.c.company_id, usage_records.c.completed_at)
sa.Index(
    "ix_usage_records_company_category_completed",
    usage_records.c.company_id,
    usage_records.c.category,
    usage_records.c.completed_at,
)
sa.Index("ix_usage_records_completed", usage_records.c.completed_at)
sa.Index("ix_usage_records_adjusts", usage_records.c.adjusts_record_id)

usage_rollups = sa.Table(
    "usage_rollups",
    metadata,
    sa.Column("company_id", sa.String(128), primary_key=True),
    sa.Column("bucket_start", UTCDateTime(), primary_key=True),  # the UTC hour
    sa.Column("category", sa.String(32), primary_key=True),
    sa.Column("source", sa.String(32), primary_key=True),
    sa.Column("operations", sa.BigInteger, nullable=False),  # records, adjustments not counted
    sa.Column("adjustments", sa.BigInteger, nullable=False),
    sa.Column("quantity", Money(), nullable=False),
    sa.Column("base_cost", Money(), nullable=False),
    sa.Column("cost", Money(), nullable=False),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
)

price_versions = sa.Table(
    "price_versions",
    metadata,
    sa.Column("version", sa.String(64), primary_key=True),
    sa.Column("effective_at", UTCDateTime(), nullable=False, unique=True),
    sa.Column("note", sa.String(512), nullable=False, server_default=""),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

model_prices = sa.Table(
    "model_prices",
    metadata,
    sa.Column("version", sa.String(64), sa.ForeignKey("price_versions.version"), primary_key=True),
    sa.Column("model", sa.String(128), primary_key=True),
    # USD per 1,000,000 tokens; audio columns NULL for text-only models.
    sa.Column("text_input", Money(), nullable=False),
    sa.Column("cached_text_input", Money(), nullable=False),
    sa.Column("text_output", Money(), nullable=False),
    sa.Column("audio_input", Money(), nullable=True),
    sa.Column("cached_audio_input", Money(), nullable=True),
    sa.Column("audio_output", Money(), nullable=True),
)

fallback_prices = sa.Table(
    "fallback_prices",
    metadata,
    sa.Column("version", sa.String(64), sa.ForeignKey("price_versions.version"), primary_key=True),
    sa.Column("category", sa.String(32), primary_key=True),
    sa.Column("unit_price", Money(), nullable=False),
)

company_margins = sa.Table(
    "company_margins",
    metadata,
    sa.Column("company_id", sa.String(128), primary_key=True),
    sa.Column("effective_at", UTCDateTime(), primary_key=True),
    sa.Column("margin", Money(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

reconciliation_reports = sa.Table(
    "reconciliation_reports",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    # The whole report (lines, totals, adjustment record ids) as JSON with decimal strings.
    sa.Column("report", sa.Text, nullable=False),
)
sa.Index("ix_reconciliation_reports_day", reconciliation_reports.c.day)

# The seed's readers: one view per category (unit_price is the base cost, cost includes the margin).
CATEGORY_VIEWS = {
    "cv_parsing_usage": "cv_parsing",
    "question_generation_usage": "question_generation",
    "video_interview_usage": "video_interview",
}


def view_sql(view: str) -> str:
    category = CATEGORY_VIEWS[view]  # both are constants of this module, never input
    columns = "company_id, job_id, candidate_id, base_cost AS unit_price, cost, source, created_at"
    return f"CREATE VIEW {view} AS SELECT {columns} FROM usage_records WHERE category = '{category}'"  # noqa: S608
