"""The tracker's storage: the append-only ledger with its hourly rollups, the price book, company margins
and reconciliation reports, on SQLite and PostgreSQL alike.

Every ledger insert and its rollup update share one transaction, and the caller is answered only after it
commits. Idempotency rests on the UNIQUE operation_id: a racing duplicate insert fails with an integrity
error, which `append` turns into "already stored" by reading the winner back.

Rollups: PostgreSQL adds with INSERT ... ON CONFLICT DO UPDATE in NUMERIC; SQLite (Money is TEXT there)
reads, adds in Python Decimal and writes, which is safe because every SQLite transaction of this engine
starts with BEGIN IMMEDIATE and so holds the write lock throughout.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from services.common.db import is_sqlite
from services.common.errors import AlreadyExists
from services.usage_tracker.domain.attribution import Window
from services.usage_tracker.domain.decimals import EXACT
from services.usage_tracker.domain.pricing import (
    MarginChange,
    ModelPrice,
    PriceVersion,
    TokenClasses,
    TokenUsage,
)
from services.usage_tracker.domain.tracking import (
    SOURCE_RECONCILIATION,
    SOURCE_RESPONSE_USAGE,
    SOURCE_USAGE_API,
)
from services.usage_tracker.storage.tables import (
    TOKEN_COLUMNS,
    company_margins,
    fallback_prices,
    model_prices,
    price_versions,
    reconciliation_reports,
    usage_records,
    usage_rollups,
)

# Any constant works: it only has to be the same for every tracker replica sharing the database.
_ATTRIBUTION_LOCK_ID = 4_815_162_342
_TOKEN_HOLDING_SOURCES = (SOURCE_RESPONSE_USAGE, SOURCE_USAGE_API, SOURCE_RECONCILIATION)


@dataclass(frozen=True)
class Record:
    """One ledger row (a record or an adjustment)."""

    record_id: str
    operation_id: str
    kind: str
    adjusts_record_id: str | None
    category: str
    company_id: str
    job_id: str
    candidate_id: str
    model: str
    priced_model: str
    openai_project_id: str
    usage: TokenUsage
    quantity: Decimal
    unit: str
    base_cost: Decimal
    margin: Decimal
    cost: Decimal
    source: str
    price_version: str
    fallback_reason: str
    payload_hash: str
    started_at: dt.datetime
    completed_at: dt.datetime
    created_at: dt.datetime

    def columns(self) -> dict:
        # A shallow copy: dataclasses.asdict deep-copies every Decimal and datetime, a hot spot in bulk ingest.
        values = {name: getattr(self, name) for name in _RECORD_FIELDS if name != "usage"}
        values.update(self.usage.as_dict())
        return values

    @classmethod
    def from_row(cls, row) -> Record:
        values = dict(row._mapping)
        values.pop("id", None)
        usage = TokenUsage(**{name: values.pop(name) for name in TOKEN_COLUMNS})
        return cls(usage=usage, **values)

    def as_stored(self) -> dict:
        """The fields a retried payload is compared against."""
        return {
            name: getattr(self, name)
            for name in (
                "category",
                "company_id",
                "job_id",
                "candidate_id",
                "model",
                "openai_project_id",
                "started_at",
                "completed_at",
                "quantity",
            )
        }


_RECORD_FIELDS = tuple(f.name for f in fields(Record))
_ROLLUP_KEY = ("company_id", "bucket_start", "category", "source")


def _rollup_delta(record: Record) -> tuple[tuple, dict]:
    """The rollup row a ledger row adds to, and what it adds: records count as operations and carry
    quantity; adjustments count as adjustments with quantity 0; money and tokens add for both."""
    is_record = record.kind == "record"
    key = (
        record.company_id,
        record.completed_at.replace(minute=0, second=0, microsecond=0),
        record.category,
        record.source,
    )
    delta = {
        "operations": 1 if is_record else 0,
        "adjustments": 0 if is_record else 1,
        "quantity": record.quantity if is_record else Decimal(0),
        "base_cost": record.base_cost,
        "cost": record.cost,
        "input_tokens": record.usage.input_tokens,
        "output_tokens": record.usage.output_tokens,
    }
    return key, delta


def _pg_array_casts(table: sa.Table, names: Sequence[str]) -> str:
    dialect = postgresql.dialect()
    return ", ".join(f"%b::{table.c[name].type.compile(dialect=dialect)}[]" for name in names)


# PostgreSQL writes of many rows are one statement of one array parameter per column (unnest), whatever the
# number of rows: a fixed text that psycopg prepares once, instead of SQLAlchemy compiling a multi-row VALUES
# of 30 parameters per row for every group (the compiler was a sixth of the tracker's CPU under load).
_LEDGER_COLUMNS = tuple(column.name for column in usage_records.c if column.name != "id")
_PG_LEDGER_INSERT = (
    f"INSERT INTO usage_records ({', '.join(_LEDGER_COLUMNS)}) "  # noqa: S608 - column names of this module
    f"SELECT * FROM unnest({_pg_array_casts(usage_records, _LEDGER_COLUMNS)}) "
    "ON CONFLICT (operation_id) DO NOTHING RETURNING operation_id"
)
_ROLLUP_COLUMNS = tuple(column.name for column in usage_rollups.c)
_PG_ROLLUP_UPSERT = (
    f"INSERT INTO usage_rollups ({', '.join(_ROLLUP_COLUMNS)}) "  # noqa: S608 - column names of this module
    f"SELECT * FROM unnest({_pg_array_casts(usage_rollups, _ROLLUP_COLUMNS)}) "
    f"ON CONFLICT ({', '.join(_ROLLUP_KEY)}) DO UPDATE SET "
    + ", ".join(
        f"{name} = usage_rollups.{name} + excluded.{name}"
        for name in _ROLLUP_COLUMNS
        if name not in _ROLLUP_KEY
    )
)


def _pg_insert_new(connection: Connection, records: Sequence[Record]) -> set[str]:
    """Inserts the records whose operation_id is free; returns those operation_ids."""
    parameters = tuple(
        [getattr(record.usage, name) for record in records]
        if name in TOKEN_COLUMNS
        else [getattr(record, name) for record in records]
        for name in _LEDGER_COLUMNS
    )
    return {row[0] for row in connection.exec_driver_sql(_PG_LEDGER_INSERT, parameters)}


class UsageRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sqlite = is_sqlite(engine)

    # -- ledger ----------------------------------------------------------------------------------------
    def find(self, operation_id: str) -> Record | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                sa.select(usage_records).where(usage_records.c.operation_id == operation_id)
            ).first()
        return Record.from_row(row) if row is not None else None

    def append(self, record: Record) -> tuple[Record, bool]:
        """Inserts the row and its rollup in one transaction: (record, True), or (the stored one, False)
        when its operation_id is already taken."""
        return self._append(lambda _connection: record, record.operation_id)

    def append_attributed(
        self,
        operation_id: str,
        window: Window,
        family: str,
        project_id: str,
        build: Callable[[TokenClasses], Record | None],
    ) -> tuple[Record | None, bool]:
        """Like `append`, for a row whose tokens depend on what other rows of the window already hold:
        `build` gets the held tokens inside the transaction, under a lock that serialises claimants, and
        may decline (None): then nothing is written and (None, False) comes back."""

        def make(connection: Connection) -> Record | None:
            if not self._sqlite:
                connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_ATTRIBUTION_LOCK_ID)))
            return build(self._held(connection, window, family, project_id))

        return self._append(make, operation_id)

    def _append(
        self, make: Callable[[Connection], Record | None], operation_id: str
    ) -> tuple[Record | None, bool]:
        try:
            with self._engine.begin() as connection:
                record = make(connection)
                if record is None:
                    return None, False
                connection.execute(sa.insert(usage_records).values(**record.columns()))
                self._add_to_rollup(connection, record)
            return record, True
        except sa.exc.IntegrityError:
            existing = self.find(operation_id)
            if existing is None:
                raise
            return existing, False

    def held_tokens(self, window: Window, family: str, project_id: str) -> TokenClasses:
        with self._engine.connect() as connection:
            return self._held(connection, window, family, project_id)

    def _held(self, connection: Connection, window: Window, family: str, project_id: str) -> TokenClasses:
        """Tokens held by rows whose minute windows overlap `window`. Windows are whole minutes, so a row
        overlaps exactly when it started before the window's end and completed at or after its start.
        The classes are linear in the token columns, so summing the columns in SQL is exact."""
        t = usage_records.c
        query = sa.select(*(sa.func.coalesce(sa.func.sum(t[name]), 0) for name in TOKEN_COLUMNS)).where(
            t.completed_at >= window.start,
            t.started_at < window.end,
            t.priced_model == family,
            t.source.in_(_TOKEN_HOLDING_SOURCES),
        )
        if project_id:
            query = query.where(t.openai_project_id == project_id)
        sums = connection.execute(query).one()
        return TokenUsage(
            **{name: int(value) for name, value in zip(TOKEN_COLUMNS, sums, strict=True)}
        ).classes()

    def append_group(self, records: Sequence[Record]) -> list[tuple[Record, bool]]:
        """Writes many records and their rollups in one transaction, answering each in input order with
        (record, True) when it was inserted, or (the stored record, False) when its operation_id was taken,
        by an earlier transaction or by an earlier record of `records`.

        One multi-row INSERT ... ON CONFLICT (operation_id) DO NOTHING RETURNING operation_id (rows sorted
        by operation_id, so concurrent groups take the unique-index locks in one order), the rollups of the
        inserted rows summed per key and upserted in one statement (keys sorted, same reason), the rows that
        were already taken read back in the same transaction, one COMMIT."""
        if not records:
            return []
        first: dict[str, Record] = {}
        for record in records:
            first.setdefault(record.operation_id, record)
        unique = sorted(first.values(), key=lambda record: record.operation_id)
        with self._engine.begin() as connection:
            if self._sqlite:
                t = usage_records
                statement = (
                    sqlite.insert(t)
                    .on_conflict_do_nothing(index_elements=[t.c.operation_id])
                    .returning(t.c.operation_id)
                )
                rows = connection.execute(statement, [record.columns() for record in unique])
                inserted = set(rows.scalars())
            else:
                inserted = _pg_insert_new(connection, unique)
            self._add_rollups(connection, [record for record in unique if record.operation_id in inserted])
            taken = [record.operation_id for record in unique if record.operation_id not in inserted]
            stored = self._find_many(connection, taken) if taken else {}
        results = []
        for record in records:
            winner = first[record.operation_id]
            if record.operation_id not in inserted:
                results.append((stored[record.operation_id], False))
            else:
                results.append((winner, winner is record))
        return results

    def _add_rollups(self, connection: Connection, records: Sequence[Record]) -> None:
        """Adds records to their rollup rows: summed per key in Python, then one upsert (PostgreSQL) or
        read-add-write per key (SQLite, under its write lock)."""
        if not records:
            return
        deltas: dict[tuple, dict] = {}
        for record in records:
            key, delta = _rollup_delta(record)
            current = deltas.get(key)
            deltas[key] = delta if current is None else {n: current[n] + v for n, v in delta.items()}
        rows = [{**dict(zip(_ROLLUP_KEY, key, strict=True)), **deltas[key]} for key in sorted(deltas)]
        if self._sqlite:
            for row in rows:
                self._apply_rollup(connection, {k: row.pop(k) for k in _ROLLUP_KEY}, row)
            return
        # One statement whatever the number of keys (distinct after the summing above).
        connection.exec_driver_sql(
            _PG_ROLLUP_UPSERT, tuple([row[name] for row in rows] for name in _ROLLUP_COLUMNS)
        )

    def find_many(self, operation_ids: Sequence[str]) -> dict[str, Record]:
        with self._engine.connect() as connection:
            return self._find_many(connection, operation_ids)

    @staticmethod
    def _find_many(connection: Connection, operation_ids: Sequence[str]) -> dict[str, Record]:
        found: dict[str, Record] = {}
        ids = list(dict.fromkeys(operation_ids))
        for start in range(0, len(ids), 500):  # stays far below every backend's bound-parameter limit
            rows = connection.execute(
                sa.select(usage_records).where(usage_records.c.operation_id.in_(ids[start : start + 500]))
            )
            found.update((row.operation_id, Record.from_row(row)) for row in rows)
        return found

    def _add_to_rollup(self, connection: Connection, record: Record) -> None:
        key, delta = _rollup_delta(record)
        self._apply_rollup(connection, dict(zip(_ROLLUP_KEY, key, strict=True)), delta)

    def _apply_rollup(self, connection: Connection, key: dict, delta: dict) -> None:
        r = usage_rollups.c
        if not self._sqlite:
            insert = postgresql.insert(usage_rollups).values(**key, **delta)
            connection.execute(
                insert.on_conflict_do_update(
                    index_elements=list(key),
                    set_={name: r[name] + insert.excluded[name] for name in delta},
                )
            )
            return
        condition = sa.and_(*(r[name] == value for name, value in key.items()))
        current = connection.execute(sa.select(*(r[name] for name in delta)).where(condition)).first()
        if current is None:
            connection.execute(sa.insert(usage_rollups).values(**key, **delta))
            return
        summed = {
            name: EXACT.add(getattr(current, name), value)
            if isinstance(value, Decimal)
            else getattr(current, name) + value
            for name, value in delta.items()
        }
        connection.execute(sa.update(usage_rollups).where(condition).values(**summed))

    def find_records(self, record_ids: Sequence[str]) -> list[Record]:
        if not record_ids:
            return []
        with self._engine.connect() as connection:
            rows = connection.execute(
                sa.select(usage_records)
                .where(usage_records.c.record_id.in_(list(record_ids)))
                .order_by(usage_records.c.id)
            )
            return [Record.from_row(row) for row in rows]

    def records_completed_between(self, start: dt.datetime, end: dt.datetime) -> list[Record]:
        with self._engine.connect() as connection:
            rows = connection.execute(
                sa.select(usage_records)
                .where(usage_records.c.completed_at >= start, usage_records.c.completed_at < end)
                .order_by(usage_records.c.id)
            )
            return [Record.from_row(row) for row in rows]

    # -- price book ------------------------------------------------------------------------------------
    def price_versions(self) -> list[PriceVersion]:
        with self._engine.connect() as connection:
            versions = connection.execute(sa.select(price_versions)).all()
            models = connection.execute(sa.select(model_prices)).all()
            fallbacks = connection.execute(sa.select(fallback_prices)).all()
        by_version: dict[str, list[ModelPrice]] = {}
        for row in models:
            values = dict(row._mapping)
            by_version.setdefault(values.pop("version"), []).append(ModelPrice(**values))
        fallback_by_version: dict[str, dict[str, Decimal]] = {}
        for row in fallbacks:
            fallback_by_version.setdefault(row.version, {})[row.category] = row.unit_price
        return [
            PriceVersion(
                version=row.version,
                effective_at=row.effective_at,
                models=tuple(sorted(by_version.get(row.version, []), key=lambda m: m.model)),
                fallback_prices=fallback_by_version.get(row.version, {}),
                note=row.note,
                created_at=row.created_at,
            )
            for row in versions
        ]

    def add_price_version(self, version: PriceVersion, now: dt.datetime) -> PriceVersion:
        stored = PriceVersion(**{**version.__dict__, "created_at": now})
        try:
            with self._engine.begin() as connection:
                self._insert_version(connection, stored)
        except sa.exc.IntegrityError:
            raise AlreadyExists(
                f"price_version.version {version.version} or a version effective at "
                f"{version.effective_at.isoformat()} already exists"
            ) from None
        return stored

    def seed_price_book(self, versions: Sequence[PriceVersion], now: dt.datetime) -> bool:
        """Loads the seed when the price book is empty; True when it did. Safe to race with another replica."""
        try:
            with self._engine.begin() as connection:
                if connection.execute(sa.select(sa.func.count()).select_from(price_versions)).scalar_one():
                    return False
                for version in versions:
                    self._insert_version(connection, PriceVersion(**{**version.__dict__, "created_at": now}))
            return True
        except sa.exc.IntegrityError:
            return False

    @staticmethod
    def _insert_version(connection: Connection, version: PriceVersion) -> None:
        connection.execute(
            sa.insert(price_versions).values(
                version=version.version,
                effective_at=version.effective_at,
                note=version.note,
                created_at=version.created_at,
            )
        )
        connection.execute(
            sa.insert(model_prices),
            [{"version": version.version, **asdict(model)} for model in version.models],
        )
        connection.execute(
            sa.insert(fallback_prices),
            [
                {"version": version.version, "category": category, "unit_price": price}
                for category, price in version.fallback_prices.items()
            ],
        )

    # -- margins ---------------------------------------------------------------------------------------
    def margin_changes(self, company_id: str) -> list[MarginChange]:
        with self._engine.connect() as connection:
            rows = connection.execute(
                sa.select(company_margins)
                .where(company_margins.c.company_id == company_id)
                .order_by(company_margins.c.effective_at.desc())
            )
            return [MarginChange(row.company_id, row.margin, row.effective_at) for row in rows]

    def set_margin(self, change: MarginChange, now: dt.datetime) -> None:
        """Records a margin from a time on; setting the same company and time again replaces it."""
        key = sa.and_(
            company_margins.c.company_id == change.company_id,
            company_margins.c.effective_at == change.effective_at,
        )
        with self._engine.begin() as connection:
            connection.execute(sa.delete(company_margins).where(key))
            connection.execute(
                sa.insert(company_margins).values(
                    company_id=change.company_id,
                    effective_at=change.effective_at,
                    margin=change.margin,
                    created_at=now,
                )
            )

    # -- reconciliation reports ------------------------------------------------------------------------
    def save_report(self, day: dt.date, created_at: dt.datetime, report_json: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                sa.insert(reconciliation_reports).values(day=day, created_at=created_at, report=report_json)
            )

    def latest_report(self, day: dt.date) -> str | None:
        t = reconciliation_reports.c
        with self._engine.connect() as connection:
            return connection.execute(
                sa.select(t.report).where(t.day == day).order_by(t.id.desc()).limit(1)
            ).scalar_one_or_none()

    def list_reports(self, offset: int, limit: int) -> list[tuple[dt.date, dt.datetime, str]]:
        """(day, created_at, report JSON), newest day first (then newest run first)."""
        t = reconciliation_reports.c
        with self._engine.connect() as connection:
            rows = connection.execute(
                sa.select(t.day, t.created_at, t.report)
                .order_by(t.day.desc(), t.id.desc())
                .offset(offset)
                .limit(limit)
            )
            return [(row.day, row.created_at, row.report) for row in rows]
