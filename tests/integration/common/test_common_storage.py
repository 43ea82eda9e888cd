"""Storage foundations on SQLite and PostgreSQL alike: migrations up and down, the seed's views, exact money
and UTC times, and SQLite's pragmas."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from services.common import db
from services.common.migrate import RECRUITING_MIGRATIONS, USAGE_MIGRATIONS
from services.usage_tracker.storage import tables

MONEY_VALUES = [
    Decimal("0.0109375"),
    Decimal("0.000000093750000000"),
    Decimal("123456789012.123456789012345678"),
    Decimal("-0.5"),
    Decimal("0"),
]


def _insert_record(connection, operation_id: str, cost: Decimal, completed: dt.datetime) -> None:
    connection.execute(
        tables.usage_records.insert().values(
            record_id=f"rec_{operation_id}",
            operation_id=operation_id,
            kind="record",
            category="cv_parsing",
            company_id="acme",
            model="gpt-4o",
            quantity=Decimal("1"),
            unit="cv",
            base_cost=cost,
            margin=Decimal("0.25"),
            cost=cost,
            source="response_usage",
            payload_hash="0" * 64,
            started_at=completed,
            completed_at=completed,
            created_at=completed,
        )
    )


def test_usage_migrations_create_the_ledger_and_the_seed_views(usage_database_url, engine_for):
    inspector = sa.inspect(engine_for(usage_database_url))
    assert {"usage_records", "usage_rollups", "price_versions", "company_margins"} <= set(
        inspector.get_table_names()
    )
    assert set(tables.CATEGORY_VIEWS) <= set(inspector.get_view_names())


def test_the_seed_views_expose_unit_price_and_cost_per_category(usage_database_url, engine_for):
    engine = engine_for(usage_database_url)
    when = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)
    with engine.begin() as connection:
        _insert_record(connection, "op-1", Decimal("0.00875"), when)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT company_id, unit_price, cost, source FROM cv_parsing_usage")
        ).all()
        assert connection.execute(sa.text("SELECT count(*) FROM video_interview_usage")).scalar_one() == 0
    assert [(r.company_id, Decimal(str(r.unit_price)), r.source) for r in rows] == [
        ("acme", Decimal("0.00875"), "response_usage")
    ]


def test_money_and_times_round_trip_exactly(usage_database_url, engine_for):
    engine = engine_for(usage_database_url)
    paris = dt.timezone(dt.timedelta(hours=1))
    when = dt.datetime(2026, 12, 4, 10, 15, 30, 123456, tzinfo=paris)
    with engine.begin() as connection:
        for index, value in enumerate(MONEY_VALUES):
            _insert_record(connection, f"op-{index}", value, when)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(tables.usage_records.c.cost, tables.usage_records.c.completed_at).order_by(
                tables.usage_records.c.id
            )
        ).all()
    assert [row.cost for row in rows] == MONEY_VALUES
    assert all(row.cost.__class__ is Decimal for row in rows)
    assert {row.completed_at for row in rows} == {when}
    assert rows[0].completed_at.tzinfo is not None


def test_naive_datetimes_and_floats_are_refused(usage_database_url, engine_for):
    engine = engine_for(usage_database_url)
    with pytest.raises(sa.exc.StatementError, match="naive datetime"), engine.begin() as connection:
        _insert_record(connection, "op-naive", Decimal("1"), dt.datetime(2026, 1, 1))
    with pytest.raises(sa.exc.StatementError, match="money must be a Decimal"), engine.begin() as connection:
        _insert_record(connection, "op-float", 0.1, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))


def test_operation_ids_are_unique_in_the_ledger(usage_database_url, engine_for):
    engine = engine_for(usage_database_url)
    when = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    with engine.begin() as connection:
        _insert_record(connection, "op-once", Decimal("1"), when)
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
        connection.execute(
            tables.usage_records.insert().values(
                **{
                    **dict(
                        record_id="rec_other",
                        operation_id="op-once",
                        kind="record",
                        category="cv_parsing",
                        company_id="acme",
                        model="gpt-4o",
                        unit="cv",
                        source="fallback",
                        payload_hash="1" * 64,
                    ),
                    **{name: Decimal("1") for name in ("quantity", "base_cost", "margin", "cost")},
                    **{name: when for name in ("started_at", "completed_at", "created_at")},
                }
            )
        )


def test_migrations_are_repeatable_and_reversible(database_url):
    for location in (USAGE_MIGRATIONS, RECRUITING_MIGRATIONS):
        db.upgrade(database_url, location)
        db.upgrade(database_url, location)  # already at head: a no-op
    engine = db.make_engine(database_url, pool_size=1)
    try:
        with engine.begin() as connection:
            versions = {
                table: connection.execute(sa.text(f"SELECT version_num FROM {table}")).scalar_one()  # noqa: S608
                for table in ("alembic_version_usage", "alembic_version_recruiting")
            }
        assert versions["alembic_version_usage"] and versions["alembic_version_recruiting"]
        assert "outbox" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'pragmas.db'}")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 30000
    finally:
        engine.dispose()
