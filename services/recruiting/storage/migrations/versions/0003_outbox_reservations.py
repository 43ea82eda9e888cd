"""Outbox reservations: a state per row (reserved | ready | sent | abandoned | poisoned) and orphaned_at.

A row is now written before OpenAI is called (reserved) and completed with the exact usage in the result's
transaction (ready). Existing rows are backfilled from sent_at / poisoned_at; everything else was ready.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("state", sa.String(length=16), server_default="ready", nullable=False))
        batch_op.add_column(sa.Column("orphaned_at", UTCDateTime(), nullable=True))
        batch_op.create_index("ix_outbox_state", ["state", "next_attempt_at"], unique=False)
    op.execute("UPDATE outbox SET state = 'poisoned' WHERE poisoned_at IS NOT NULL")
    op.execute("UPDATE outbox SET state = 'sent' WHERE sent_at IS NOT NULL AND poisoned_at IS NULL")


def downgrade() -> None:
    # Reservations have no TrackRequest worth keeping as pending rows of the old schema: a reserved row is
    # dropped (its operation was never billed, as before this revision); an abandoned one too.
    op.execute("DELETE FROM outbox WHERE state IN ('reserved', 'abandoned')")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_state")
        batch_op.drop_column("orphaned_at")
        batch_op.drop_column("state")
