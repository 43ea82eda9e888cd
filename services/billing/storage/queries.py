"""Read queries over the tracker's tables (services/usage_tracker/storage/tables.py).

Sums come from usage_rollups (one row per company, UTC hour, category and source), never from a ledger scan.
The only ledger reads behind a sum are the UTC hours that a period or day edge cuts in two (time zones whose
offset is not a whole hour): an indexed (company_id, completed_at) range of at most one hour per edge.

Money columns are exact decimals: PostgreSQL sums NUMERIC in SQL; SQLite stores them as text, so there the
rows are summed in Python (SQL SUM on SQLite would be floating point).
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterator, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from services.billing.domain.model import Position, RecordFilter, SliceKey, Sums
from services.billing.domain.periods import HOUR, Window, split_hours
from services.common.db import UTCDateTime, is_sqlite
from services.usage_tracker.storage.tables import reconciliation_reports, usage_records, usage_rollups

_RANGES_PER_QUERY = 100
_SUMMED = ("operations", "adjustments", "quantity", "base_cost", "cost")


class _Windows:
    """Finds the window an instant falls in (windows are sorted and contiguous)."""

    def __init__(self, windows: Sequence[Window]) -> None:
        self._windows = list(windows)
        self._starts = [window.lo for window in self._windows]

    def find(self, instant: dt.datetime) -> Window | None:
        index = bisect.bisect_right(self._starts, instant) - 1
        if index < 0 or instant >= self._windows[index].hi:
            return None
        return self._windows[index]


class BillingQueries:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sqlite = is_sqlite(engine)

    # Sums -------------------------------------------------------------------------------------------------

    def slices(self, company_id: str, windows: Sequence[Window]) -> dict[SliceKey, Sums]:
        """Sums per (window day, category, source) over contiguous windows, adjustments included."""
        split = split_hours(list(windows))
        result: dict[SliceKey, Sums] = {}
        with self._engine.connect() as connection:
            self._rollup_sums(connection, company_id, windows, split, result)
            self._split_hour_sums(connection, company_id, windows, split, result)
        return result

    def _rollup_sums(self, connection, company_id, windows, split, result) -> None:
        r = usage_rollups.c
        lo, hi = windows[0].lo, windows[-1].hi
        where = [r.company_id == company_id, r.bucket_start >= lo, r.bucket_start < hi]
        if split:
            where.append(r.bucket_start.not_in(split))
        if self._sqlite:
            rows = connection.execute(
                sa.select(r.bucket_start, r.category, r.source, *(r[name] for name in _SUMMED)).where(*where)
            )
            locate = _Windows(windows)
            for row in rows:
                window = locate.find(row.bucket_start)
                if window is not None:
                    _add(result, (window.day, row.category, row.source), row)
            return
        sums = [sa.func.sum(r[name]).label(name) for name in _SUMMED]
        if len(windows) == 1:
            query = sa.select(r.category, r.source, *sums).where(*where).group_by(r.category, r.source)
            for row in connection.execute(query):
                _add(result, (windows[0].day, row.category, row.source), row)
            return
        # One grouped query for every day: join the rollups to the days' UTC bounds (computed here, in Python,
        # so both backends agree on the time zone rules).
        bounds = sa.values(
            sa.column("k", sa.Integer),
            sa.column("lo", UTCDateTime()),
            sa.column("hi", UTCDateTime()),
            name="windows",
        ).data([(index, window.lo, window.hi) for index, window in enumerate(windows)])
        query = (
            sa.select(bounds.c.k, r.category, r.source, *sums)
            .select_from(
                usage_rollups.join(
                    bounds, sa.and_(r.bucket_start >= bounds.c.lo, r.bucket_start < bounds.c.hi)
                )
            )
            .where(*where)
            .group_by(bounds.c.k, r.category, r.source)
        )
        for row in connection.execute(query):
            _add(result, (windows[row.k].day, row.category, row.source), row)

    def _split_hour_sums(self, connection, company_id, windows, split, result) -> None:
        if not split:
            return
        u = usage_records.c
        lo, hi = windows[0].lo, windows[-1].hi
        locate = _Windows(windows)
        ranges = [(max(hour, lo), min(hour + HOUR, hi)) for hour in split]
        for offset in range(0, len(ranges), _RANGES_PER_QUERY):
            chunk = ranges[offset : offset + _RANGES_PER_QUERY]
            query = sa.select(
                u.completed_at, u.kind, u.category, u.source, u.quantity, u.base_cost, u.cost
            ).where(
                u.company_id == company_id,
                sa.or_(*(sa.and_(u.completed_at >= start, u.completed_at < end) for start, end in chunk)),
            )
            for row in connection.execute(query):
                window = locate.find(row.completed_at)
                if window is None:
                    continue
                sums = result.setdefault((window.day, row.category, row.source), Sums())
                sums.add(
                    Sums(
                        operations=1 if row.kind == "record" else 0,
                        adjustments=1 if row.kind == "adjustment" else 0,
                        quantity=row.quantity,
                        base_cost=row.base_cost,
                        cost=row.cost,
                    )
                )

    # Reconciliation -------------------------------------------------------------------------------------

    def unreconciled_days(self, company_id: str, lo: dt.datetime, hi: dt.datetime) -> list[dt.date]:
        """UTC days between lo and hi where the company has usage and no reconciliation report exists.

        One query: the distinct UTC days of the company's rollup hours that overlap [lo, hi), minus the days
        that have a report, computed in SQL (the date of a UTC hour is taken in UTC on both backends)."""
        r = usage_rollups.c
        reports = reconciliation_reports.c
        start = lo.replace(hour=0, minute=0, second=0, microsecond=0)
        if self._sqlite:
            day = sa.func.date(r.bucket_start)  # stored as naive UTC text
        else:
            day = sa.cast(sa.func.timezone("UTC", r.bucket_start), sa.Date)
        query = (
            sa.select(day.label("day"))
            .where(
                r.company_id == company_id,
                r.bucket_start >= start,
                r.bucket_start > lo - HOUR,  # the hour overlaps [lo, hi)
                r.bucket_start < hi,
                ~sa.exists(sa.select(reports.id).where(reports.day == day)),
            )
            .distinct()
            .order_by("day")
        )
        with self._engine.connect() as connection:
            days = connection.execute(query).scalars().all()
        return [dt.date.fromisoformat(value) if isinstance(value, str) else value for value in days]

    # The ledger -----------------------------------------------------------------------------------------

    @staticmethod
    def _where(company_id: str, record_filter: RecordFilter) -> list:
        u = usage_records.c
        where = [u.company_id == company_id]
        if record_filter.period is not None:
            where += [u.completed_at >= record_filter.period.lo, u.completed_at < record_filter.period.hi]
        for column, value in (
            (u.category, record_filter.category),
            (u.source, record_filter.source),
            (u.job_id, record_filter.job_id),
            (u.candidate_id, record_filter.candidate_id),
        ):
            if value:
                where.append(column == value)
        return where

    def count(self, company_id: str, record_filter: RecordFilter) -> int:
        query = (
            sa.select(sa.func.count())
            .select_from(usage_records)
            .where(*self._where(company_id, record_filter))
        )
        with self._engine.connect() as connection:
            return connection.execute(query).scalar_one()

    def page(
        self, company_id: str, record_filter: RecordFilter, after: Position | None, limit: int
    ) -> list[dict]:
        """Up to `limit` rows newest first (completed_at, then id, descending), strictly after `after`."""
        with self._engine.connect() as connection:
            return self._page(connection, company_id, record_filter, after, limit)

    def _page(self, connection: Connection, company_id, record_filter, after, limit) -> list[dict]:
        u = usage_records.c
        where = self._where(company_id, record_filter)
        if after is not None:
            where.append(
                sa.or_(
                    u.completed_at < after.completed_at,
                    sa.and_(u.completed_at == after.completed_at, u.id < after.row_id),
                )
            )
        query = (
            sa.select(usage_records).where(*where).order_by(u.completed_at.desc(), u.id.desc()).limit(limit)
        )
        return [dict(row._mapping) for row in connection.execute(query)]

    def iter_rows(
        self, company_id: str, record_filter: RecordFilter, batch_size: int = 1000
    ) -> Iterator[dict]:
        """Every matching row newest first, read in keyset batches (one short read each)."""
        after: Position | None = None
        while True:
            rows = self.page(company_id, record_filter, after, batch_size)
            yield from rows
            if len(rows) < batch_size:
                return
            after = Position(rows[-1]["completed_at"], rows[-1]["id"])


def _add(result: dict[SliceKey, Sums], key: SliceKey, row) -> None:
    result.setdefault(key, Sums()).add(
        Sums(
            operations=int(row.operations or 0),
            adjustments=int(row.adjustments or 0),
            quantity=row.quantity,
            base_cost=row.base_cost,
            cost=row.cost,
        )
    )
