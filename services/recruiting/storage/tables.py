"""Tables of the recruiting database.

outbox holds each operation's TrackRequest, written in the same transaction as the operation's result;
the relay sends pending rows to UsageTracker.Track and marks them sent once acknowledged.
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
)
sa.Index("ix_outbox_pending", outbox.c.sent_at, outbox.c.next_attempt_at)
