"""Billing's service layer: what each RPC computes, over the read queries, independent of gRPC."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from services.billing.domain.model import (
    CATEGORIES,
    Day,
    Position,
    RecordFilter,
    Summary,
    Sums,
    category_totals,
)
from services.billing.domain.page_tokens import PageTokens
from services.billing.domain.periods import Period
from services.billing.storage.queries import BillingQueries


@dataclass(frozen=True)
class RecordPage:
    rows: list[dict]
    next_page_token: str
    total_size: int


class BillingService:
    def __init__(self, queries: BillingQueries, page_tokens: PageTokens) -> None:
        self._queries = queries
        self._tokens = page_tokens

    def summary(self, company_id: str, period: Period) -> Summary:
        slices = self._queries.slices(company_id, period.whole())
        unreconciled = self._queries.unreconciled_days(company_id, period.lo, period.hi)
        return Summary(company_id, period, category_totals(slices), unreconciled_days=unreconciled)

    def daily(self, company_id: str, period: Period) -> list[Day]:
        slices = self._queries.slices(company_id, period.daily())
        by_day: dict = {}
        for (day, category, _source), value in slices.items():
            by_day.setdefault((day, category), Sums()).add(value)
        return [
            Day(day, [(category, by_day.get((day, category), Sums())) for category in CATEGORIES])
            for day in period.days()
        ]

    def list_records(
        self, company_id: str, record_filter: RecordFilter, page_size: int, page_token: str
    ) -> RecordPage:
        binding = record_filter.binding()
        after = self._tokens.open(company_id, binding, page_token) if page_token else None
        # One row more than asked tells whether a next page exists without a second query.
        rows = self._queries.page(company_id, record_filter, after, page_size + 1)
        next_token = ""
        if len(rows) > page_size:
            rows = rows[:page_size]
            last = rows[-1]
            next_token = self._tokens.issue(company_id, binding, Position(last["completed_at"], last["id"]))
        return RecordPage(rows, next_token, self._queries.count(company_id, record_filter))

    def export_rows(self, company_id: str, record_filter: RecordFilter) -> Iterator[dict]:
        return self._queries.iter_rows(company_id, record_filter)
