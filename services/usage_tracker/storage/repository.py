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
from sqlalchemy.dialects import postgresql
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

    def append_many(self, records: Sequence[Record]) -> set[str]:
        """Inserts records (whose operation_ids the caller found free) and their rollups in one transaction;
        returns the operation_ids inserted. A plain multi-row insert is several times faster than
        ON CONFLICT ... RETURNING on both drivers; if a concurrent caller took one of the ids meanwhile,
        the transaction fails and each record goes through `append`, which sorts out the duplicates."""
        if not records:
            return set()
        try:
            with self._engine.begin() as connection:
                connection.execute(sa.insert(usage_records), [record.columns() for record in records])
                deltas: dict[tuple, dict] = {}
                for record in records:
                    key, delta = _rollup_delta(record)
                    current = deltas.get(key)
                    deltas[key] = delta if current is None else {n: current[n] + v for n, v in delta.items()}
                rows = [
                    {**dict(zip(_ROLLUP_KEY, key, strict=True)), **delta} for key, delta in deltas.items()
                ]
                if self._sqlite:
                    for row in rows:
                        self._apply_rollup(connection, {k: row.pop(k) for k in _ROLLUP_KEY}, row)
                else:  # one statement: the keys are distinct after the summing above
                    insert = postgresql.insert(usage_rollups).values(rows)
                    r = usage_rollups.c
                    connection.execute(
                        insert.on_conflict_do_update(
                            index_elements=list(_ROLLUP_KEY),
                            set_={
                                name: r[name] + insert.excluded[name]
                                for name in rows[0]
                                if name not in _ROLLUP_KEY
                            },
                        )
                    )
        except sa.exc.IntegrityError:
            return {record.operation_id for record in records if self.append(record)[1]}
        return {record.operation_id for record in records}

    def find_many(self, operation_ids: Sequence[str]) -> dict[str, Record]:
        found: dict[str, Record] = {}
        ids = list(dict.fromkeys(operation_ids))
        with self._engine.connect() as connection:
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
