"""Billing periods: whole local days in an IANA time zone, turned into exact UTC instants.

A period [start_date, end_date] (both inclusive) in time zone Z covers the UTC instants from local midnight
of start_date to local midnight of the day after end_date. Each local day is a window of its own for the
daily series. The rollups are per UTC hour, so a window edge that does not fall on a whole UTC hour (zones
such as Asia/Kolkata, UTC+05:30) splits an hour: those split hours are read from the ledger instead.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.common.errors import InvalidArgument

UTC = dt.UTC
MAX_DAYS = 366
HOUR = dt.timedelta(hours=1)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Far enough from datetime's limits that local midnight always converts to UTC.
_EARLIEST = dt.date(1970, 1, 1)
_LATEST = dt.date(9998, 12, 31)


@dataclass(frozen=True)
class Window:
    """One local day (or the whole period): its key and its UTC bounds [lo, hi)."""

    day: dt.date | None
    lo: dt.datetime
    hi: dt.datetime


@dataclass(frozen=True)
class Period:
    start: dt.date
    end: dt.date
    time_zone: str  # the canonical name given, "UTC" when none

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=offset) for offset in range((self.end - self.start).days + 1)]

    def midnight(self, day: dt.date) -> dt.datetime:
        """Local midnight of a day as a UTC instant (a skipped midnight resolves to the first valid instant)."""
        local = dt.datetime.combine(day, dt.time(), tzinfo=self.zone)
        # Round-trip through UTC normalises a non-existent local time (DST gap at midnight).
        return local.astimezone(UTC)

    @property
    def lo(self) -> dt.datetime:
        return self.midnight(self.start)

    @property
    def hi(self) -> dt.datetime:
        return self.midnight(self.end + dt.timedelta(days=1))

    def whole(self) -> list[Window]:
        return [Window(None, self.lo, self.hi)]

    def daily(self) -> list[Window]:
        edges = [self.midnight(day) for day in [*self.days(), self.end + dt.timedelta(days=1)]]
        return [Window(day, lo, hi) for day, lo, hi in zip(self.days(), edges, edges[1:], strict=False)]

    def utc_days(self) -> list[dt.date]:
        """Every UTC day the period touches."""
        first, last = self.lo.date(), (self.hi - dt.timedelta(microseconds=1)).date()
        return [first + dt.timedelta(days=offset) for offset in range((last - first).days + 1)]


def floor_hour(instant: dt.datetime) -> dt.datetime:
    return instant.replace(minute=0, second=0, microsecond=0)


def split_hours(windows: list[Window]) -> list[dt.datetime]:
    """The UTC hours that a window edge cuts in two: the rollups cannot say which side their usage is on."""
    edges = {edge for window in windows for edge in (window.lo, window.hi)}
    return sorted({floor_hour(edge) for edge in edges if edge != floor_hour(edge)})


def parse_date(value: str, field: str) -> dt.date:
    if not value:
        raise InvalidArgument(f"{field} must not be empty")
    if not _DATE.match(value):
        raise InvalidArgument(f"{field} must be a date YYYY-MM-DD, got {value[:40]!r}")
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidArgument(f"{field} is not a valid date: {value!r}") from None
    if not _EARLIEST <= day <= _LATEST:
        raise InvalidArgument(f"{field} must be between {_EARLIEST} and {_LATEST}")
    return day


def parse_time_zone(value: str, field: str) -> str:
    if not value:
        return "UTC"
    if len(value) > 64 or value.startswith("/") or ".." in value:
        raise InvalidArgument(f"{field} must be an IANA time zone name such as Europe/Paris")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidArgument(f"{field} is not a known IANA time zone: {value[:64]!r}") from None
    return value


def parse_period(start_date: str, end_date: str, time_zone: str, field: str = "period") -> Period:
    """A validated period; errors name the field (period.start_date, filter.period.time_zone, ...)."""
    start = parse_date(start_date, f"{field}.start_date")
    end = parse_date(end_date, f"{field}.end_date")
    if end < start:
        raise InvalidArgument(f"{field}.end_date must not be before {field}.start_date")
    if (end - start).days + 1 > MAX_DAYS:
        raise InvalidArgument(f"{field} spans {(end - start).days + 1} days; at most {MAX_DAYS} are allowed")
    return Period(start, end, parse_time_zone(time_zone, f"{field}.time_zone"))
