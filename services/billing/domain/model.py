"""What billing answers with: per category and source sums, summaries, daily series, record filters."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from services.billing.domain.money import ZERO
from services.billing.domain.periods import Period

# Wire names, in the order every answer lists them.
CATEGORIES = ("cv_parsing", "question_generation", "video_interview")
SOURCES = ("response_usage", "usage_api", "fallback", "reconciliation")
UNITS = {"cv_parsing": "cv", "question_generation": "question", "video_interview": "minute"}
ADJUSTMENT_SOURCE = "reconciliation"


@dataclass
class Sums:
    """Sums of ledger rows (records and adjustments) for one slice: a rollup row adds in directly."""

    operations: int = 0
    adjustments: int = 0
    quantity: Decimal = ZERO
    base_cost: Decimal = ZERO
    cost: Decimal = ZERO

    def add(self, other: Sums) -> None:
        self.operations += other.operations
        self.adjustments += other.adjustments
        self.quantity += other.quantity
        self.base_cost += other.base_cost
        self.cost += other.cost


# (window day or None, category, source) -> Sums
SliceKey = tuple[dt.date | None, str, str]


@dataclass(frozen=True)
class SourceTotal:
    source: str
    sums: Sums


@dataclass(frozen=True)
class CategoryTotal:
    category: str
    sums: Sums
    adjustments_cost: Decimal
    sources: list[SourceTotal]

    @property
    def unit(self) -> str:
        return UNITS[self.category]


@dataclass(frozen=True)
class Summary:
    company_id: str
    period: Period
    categories: list[CategoryTotal]
    # UTC days of the period with usage but no reconciliation report yet.
    unreconciled_days: list[dt.date]

    @property
    def reconciled(self) -> bool:
        return not self.unreconciled_days

    @property
    def total_cost(self) -> Decimal:
        return sum((category.sums.cost for category in self.categories), ZERO)

    @property
    def base_cost(self) -> Decimal:
        return sum((category.sums.base_cost for category in self.categories), ZERO)


@dataclass(frozen=True)
class Day:
    day: dt.date
    categories: list[tuple[str, Sums]]

    @property
    def total_cost(self) -> Decimal:
        return sum((sums.cost for _, sums in self.categories), ZERO)


def category_totals(slices: dict[SliceKey, Sums], day: dt.date | None = None) -> list[CategoryTotal]:
    """The three categories, in order, each with every source in order (zeros included)."""
    totals = []
    for category in CATEGORIES:
        overall = Sums()
        sources = []
        for source in SOURCES:
            sums = slices.get((day, category, source), Sums())
            overall.add(sums)
            sources.append(SourceTotal(source, sums))
        adjustments = slices.get((day, category, ADJUSTMENT_SOURCE), Sums()).cost
        totals.append(CategoryTotal(category, overall, adjustments, sources))
    return totals


@dataclass(frozen=True)
class RecordFilter:
    """What ListUsageRecords and ExportUsage select; every field narrows, None / "" means any."""

    period: Period | None = None
    category: str = ""
    source: str = ""
    job_id: str = ""
    candidate_id: str = ""

    def binding(self) -> str:
        """A canonical text of the filter: page tokens are bound to it."""
        period = self.period
        parts = [
            f"{period.start}/{period.end}/{period.time_zone}" if period else "",
            self.category,
            self.source,
            self.job_id,
            self.candidate_id,
        ]
        return "\x1f".join(parts)


@dataclass(frozen=True)
class Position:
    """Where a page ends in the newest-first order: (completed_at, id) of its last row."""

    completed_at: dt.datetime
    row_id: int
