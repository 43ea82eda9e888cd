"""The body of every service's Alembic env.py: online migrations on the connection db.upgrade() hands over,
or on a fresh engine from the configured URL when run by the alembic command line."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from services.common.db import make_engine


def run(metadata: sa.MetaData, version_table: str) -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is None:
        engine = make_engine(config.get_main_option("sqlalchemy.url"), pool_size=1)
        with engine.begin() as connection:
            _migrate(connection, metadata, version_table)
        engine.dispose()
    else:
        _migrate(connection, metadata, version_table)


def _migrate(connection, metadata: sa.MetaData, version_table: str) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=version_table,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
