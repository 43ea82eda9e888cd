"""Billing's gRPC surface: proto <-> domain translation only; the work is in service.py."""

from __future__ import annotations

from hiremeter.billing.v1 import billing_pb2, billing_pb2_grpc
from hiremeter.usage.v1 import usage_tracker_pb2

from services.billing import csv_export
from services.billing.domain import validation
from services.billing.domain.model import CATEGORIES, SOURCES, RecordFilter, Summary, Sums
from services.billing.domain.money import average_per_unit, decimal_text
from services.billing.domain.periods import Period, parse_period
from services.billing.service import BillingService
from services.common.errors import InvalidArgument
from services.usage_tracker.storage.tables import TOKEN_COLUMNS

Category = usage_tracker_pb2.Category
Source = usage_tracker_pb2.Source
CATEGORY_BY_NAME = {name: Category.Value(f"CATEGORY_{name.upper()}") for name in CATEGORIES}
SOURCE_BY_NAME = {name: Source.Value(f"SOURCE_{name.upper()}") for name in SOURCES}
CATEGORY_NAME = {value: name for name, value in CATEGORY_BY_NAME.items()}
SOURCE_NAME = {value: name for name, value in SOURCE_BY_NAME.items()}


def _period(message: billing_pb2.Period, field: str) -> Period:
    return parse_period(message.start_date, message.end_date, message.time_zone, field)


def _period_message(period: Period) -> billing_pb2.Period:
    return billing_pb2.Period(
        start_date=period.start.isoformat(), end_date=period.end.isoformat(), time_zone=period.time_zone
    )


def _record_filter(message: billing_pb2.UsageRecordFilter) -> RecordFilter:
    category = ""
    if message.category:
        if message.category not in CATEGORY_NAME:
            raise InvalidArgument(f"filter.category {message.category} is not a known category")
        category = CATEGORY_NAME[message.category]
    source = ""
    if message.source:
        if message.source not in SOURCE_NAME:
            raise InvalidArgument(f"filter.source {message.source} is not a known source")
        source = SOURCE_NAME[message.source]
    return RecordFilter(
        period=_period(message.period, "filter.period") if message.HasField("period") else None,
        category=category,
        source=source,
        job_id=validation.optional_identifier(message.job_id, "filter.job_id"),
        candidate_id=validation.optional_identifier(message.candidate_id, "filter.candidate_id"),
    )


def _summary_message(summary: Summary) -> billing_pb2.GetUsageSummaryResponse:
    categories = []
    for total in summary.categories:
        sums = total.sums
        categories.append(
            billing_pb2.CategorySummary(
                category=CATEGORY_BY_NAME[total.category],
                total_cost=decimal_text(sums.cost),
                base_cost=decimal_text(sums.base_cost),
                operations=sums.operations,
                quantity=decimal_text(sums.quantity),
                unit=total.unit,
                average_cost_per_unit=average_per_unit(sums.cost, sums.quantity),
                adjustments_cost=decimal_text(total.adjustments_cost),
                sources=[
                    billing_pb2.SourceBreakdown(
                        source=SOURCE_BY_NAME[source.source],
                        operations=source.sums.operations,
                        cost=decimal_text(source.sums.cost),
                        adjustments=source.sums.adjustments,
                        base_cost=decimal_text(source.sums.base_cost),
                        quantity=decimal_text(source.sums.quantity),
                    )
                    for source in total.sources
                ],
            )
        )
    return billing_pb2.GetUsageSummaryResponse(
        company_id=summary.company_id,
        currency="USD",
        period=_period_message(summary.period),
        total_cost=decimal_text(summary.total_cost),
        base_cost=decimal_text(summary.base_cost),
        categories=categories,
        reconciled=summary.reconciled,
        unreconciled_dates=[day.isoformat() for day in summary.unreconciled_days],
    )


def record_message(row: dict) -> usage_tracker_pb2.UsageRecord:
    record = usage_tracker_pb2.UsageRecord(
        record_id=row["record_id"],
        operation_id=row["operation_id"],
        category=CATEGORY_BY_NAME.get(row["category"], Category.CATEGORY_UNSPECIFIED),
        company_id=row["company_id"],
        job_id=row["job_id"],
        candidate_id=row["candidate_id"],
        model=row["model"],
        priced_model=row["priced_model"],
        usage=usage_tracker_pb2.TokenUsage(**{name: row[name] for name in TOKEN_COLUMNS}),
        quantity=decimal_text(row["quantity"]),
        unit=row["unit"],
        base_cost=decimal_text(row["base_cost"]),
        margin=decimal_text(row["margin"]),
        cost=decimal_text(row["cost"]),
        source=SOURCE_BY_NAME.get(row["source"], Source.SOURCE_UNSPECIFIED),
        price_version=row["price_version"],
        fallback_reason=row["fallback_reason"],
        openai_project_id=row["openai_project_id"],
        adjusts_record_id=row["adjusts_record_id"] or "",
    )
    record.started_time.FromDatetime(row["started_at"])
    record.completed_time.FromDatetime(row["completed_at"])
    record.create_time.FromDatetime(row["created_at"])
    return record


class BillingServicer(billing_pb2_grpc.BillingServicer):
    def __init__(self, service: BillingService) -> None:
        self._service = service

    def GetUsageSummary(self, request, context):
        company_id = validation.company_id(request.company_id)
        summary = self._service.summary(company_id, _period(request.period, "period"))
        return _summary_message(summary)

    def GetDailyCosts(self, request, context):
        company_id = validation.company_id(request.company_id)
        period = _period(request.period, "period")
        days = self._service.daily(company_id, period)
        return billing_pb2.GetDailyCostsResponse(
            period=_period_message(period),
            total_cost=decimal_text(sum((day.total_cost for day in days), Sums().cost)),
            days=[
                billing_pb2.DailyCost(
                    date=day.day.isoformat(),
                    total_cost=decimal_text(day.total_cost),
                    categories=[
                        billing_pb2.CategoryDay(
                            category=CATEGORY_BY_NAME[category],
                            cost=decimal_text(sums.cost),
                            operations=sums.operations,
                            quantity=decimal_text(sums.quantity),
                        )
                        for category, sums in day.categories
                    ],
                )
                for day in days
            ],
        )

    def ListUsageRecords(self, request, context):
        company_id = validation.company_id(request.company_id)
        page_size = validation.page_size(request.page_size)
        record_filter = _record_filter(request.filter)
        page = self._service.list_records(company_id, record_filter, page_size, request.page_token)
        return billing_pb2.ListUsageRecordsResponse(
            records=[record_message(row) for row in page.rows],
            next_page_token=page.next_page_token,
            total_size=page.total_size,
        )

    def ExportUsage(self, request, context):
        company_id = validation.company_id(request.company_id)
        record_filter = _record_filter(request.filter)
        for chunk in csv_export.csv_chunks(self._service.export_rows(company_id, record_filter)):
            yield billing_pb2.ExportUsageResponse(data=chunk)
