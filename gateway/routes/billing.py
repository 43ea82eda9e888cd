"""GET /api/v1/billing/usage/{summary,daily,records,export.csv}: the token's company only."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Annotated

import grpc
from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from hiremeter.billing.v1 import billing_pb2

from gateway import schemas
from gateway.deps import ClientsDep, Tenant, TenantDep
from gateway.errors import from_rpc_error, invalid
from gateway.grpc_clients import BILLING_TIMEOUT_SECONDS, EXPORT_TIMEOUT_SECONDS, call_metadata
from gateway.schemas import CATEGORY_NAME, CATEGORY_VALUE, SOURCE_VALUE, CategoryName, SourceName

ERRORS = {status: {"model": schemas.ErrorBody} for status in (400, 401, 403, 503, 504)}
router = APIRouter(prefix="/api/v1/billing", tags=["billing"], responses=ERRORS)

MAX_PAGE_SIZE = 500
# Billing names fields as in its proto; the HTTP API names them after its query parameters.
RENAME = {
    "filter.period.start_date": "start",
    "filter.period.end_date": "end",
    "filter.period.time_zone": "tz",
    "filter.period": "period",
    "filter.job_id": "job_id",
    "filter.candidate_id": "candidate_id",
    "period.start_date": "start",
    "period.end_date": "end",
    "period.time_zone": "tz",
}

Start = Annotated[
    str | None,
    Query(description="First day, YYYY-MM-DD (default: the 1st of this month, UTC)", max_length=10),
]
End = Annotated[
    str | None,
    Query(description="Last day, inclusive, YYYY-MM-DD (default: this month's last)", max_length=10),
]
Tz = Annotated[str | None, Query(description="IANA time zone of the days, default UTC", max_length=64)]
Company = Annotated[str | None, Query(description="Optional; must equal the token's company", max_length=128)]
CategoryParam = Annotated[CategoryName | None, Query(description="Only this category")]
SourceParam = Annotated[SourceName | None, Query(description="Only this source")]
IdParam = Annotated[str | None, Query(max_length=128)]
_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def requested_period(start: str | None, end: str | None, tz: str | None) -> billing_pb2.Period:
    """The requested period; this month (UTC) when neither day is given. Billing validates the rest."""
    if start is None and end is None:
        today = dt.datetime.now(dt.UTC).date()
        first = today.replace(day=1)
        last = (first + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
        start, end = first.isoformat(), last.isoformat()
    elif start is None or end is None:
        raise invalid("start and end must be given together (or neither, for this month)")
    return billing_pb2.Period(start_date=start, end_date=end, time_zone=tz or "")


def company_query(tenant: TenantDep, company_id: Company = None) -> Tenant:
    """The token's tenant, once a company_id in the query (if any) was found to be its own."""
    tenant.check(company_id)
    return tenant


def period_query(start: Start = None, end: End = None, tz: Tz = None) -> billing_pb2.Period:
    return requested_period(start, end, tz)


def record_filter_query(
    period: Annotated[billing_pb2.Period, Depends(period_query)],
    category: CategoryParam = None,
    source: SourceParam = None,
    job_id: IdParam = None,
    candidate_id: IdParam = None,
) -> billing_pb2.UsageRecordFilter:
    for name, value in (("job_id", job_id), ("candidate_id", candidate_id)):
        if value and not _ID.match(value):
            raise invalid(f"{name} must be 1-128 characters of [A-Za-z0-9._:-]")
    return billing_pb2.UsageRecordFilter(
        period=period,
        category=CATEGORY_VALUE[category] if category else 0,
        source=SOURCE_VALUE[source] if source else 0,
        job_id=job_id or "",
        candidate_id=candidate_id or "",
    )


# Declared in this order on every route: the token, then the company check, then the query's contents.
CompanyDep = Annotated[Tenant, Depends(company_query)]
PeriodDep = Annotated[billing_pb2.Period, Depends(period_query)]
FilterDep = Annotated[billing_pb2.UsageRecordFilter, Depends(record_filter_query)]


def _call(method, request, timeout: float = BILLING_TIMEOUT_SECONDS):
    try:
        return method(request, timeout=timeout, metadata=call_metadata())
    except grpc.RpcError as error:
        raise from_rpc_error(error, RENAME) from None


@router.get("/usage/summary", response_model=schemas.UsageSummary, summary="Totals per category")
def usage_summary(tenant: CompanyDep, period: PeriodDep, clients: ClientsDep) -> schemas.UsageSummary:
    answer = _call(
        clients.billing.GetUsageSummary,
        billing_pb2.GetUsageSummaryRequest(company_id=tenant.company_id, period=period),
    )
    return schemas.UsageSummary(
        company_id=answer.company_id,
        currency="USD",
        start=answer.period.start_date,
        end=answer.period.end_date,
        time_zone=answer.period.time_zone,
        total_cost=answer.total_cost,
        base_cost=answer.base_cost,
        reconciled=answer.reconciled,
        unreconciled_dates=list(answer.unreconciled_dates),
        categories=[
            schemas.CategorySummary(
                category=CATEGORY_NAME[c.category],
                total_cost=c.total_cost,
                base_cost=c.base_cost,
                operations=c.operations,
                quantity=c.quantity,
                unit=c.unit,
                average_cost_per_unit=c.average_cost_per_unit,
                adjustments_cost=c.adjustments_cost,
                sources=[
                    schemas.SourceTotal(
                        source=schemas.SOURCE_NAME[s.source],
                        operations=s.operations,
                        adjustments=s.adjustments,
                        cost=s.cost,
                        base_cost=s.base_cost,
                        quantity=s.quantity,
                    )
                    for s in c.sources
                ],
            )
            for c in answer.categories
        ],
    )


@router.get("/usage/daily", response_model=schemas.DailyCosts, summary="Cost per day and category")
def usage_daily(tenant: CompanyDep, period: PeriodDep, clients: ClientsDep) -> schemas.DailyCosts:
    answer = _call(
        clients.billing.GetDailyCosts,
        billing_pb2.GetDailyCostsRequest(company_id=tenant.company_id, period=period),
    )
    return schemas.DailyCosts(
        company_id=tenant.company_id,
        start=answer.period.start_date,
        end=answer.period.end_date,
        time_zone=answer.period.time_zone,
        total_cost=answer.total_cost,
        days=[
            schemas.DailyCost(
                date=day.date,
                total_cost=day.total_cost,
                categories=[
                    schemas.CategoryDay(
                        category=CATEGORY_NAME[c.category],
                        cost=c.cost,
                        operations=c.operations,
                        quantity=c.quantity,
                    )
                    for c in day.categories
                ],
            )
            for day in answer.days
        ],
    )


@router.get("/usage/records", response_model=schemas.UsageRecordsPage, summary="Ledger records, newest first")
def usage_records(
    tenant: CompanyDep,
    record_filter: FilterDep,
    clients: ClientsDep,
    page_size: Annotated[
        int | None, Query(description="Default 50, at most 500; negative is an error")
    ] = None,
    page_token: Annotated[
        str | None, Query(max_length=1024, description="The previous next_page_token")
    ] = None,
) -> schemas.UsageRecordsPage:
    size = min(page_size, MAX_PAGE_SIZE) if page_size is not None else 0
    if size < 0:
        raise invalid(f"page_size must not be negative, got {page_size}")
    answer = _call(
        clients.billing.ListUsageRecords,
        billing_pb2.ListUsageRecordsRequest(
            company_id=tenant.company_id, filter=record_filter, page_size=size, page_token=page_token or ""
        ),
    )
    return schemas.UsageRecordsPage(
        company_id=tenant.company_id,
        start=record_filter.period.start_date,
        end=record_filter.period.end_date,
        time_zone=record_filter.period.time_zone or "UTC",
        records=[schemas.usage_record(record) for record in answer.records],
        next_page_token=answer.next_page_token,
        total_size=answer.total_size,
    )


@router.get(
    "/usage/export.csv",
    response_class=StreamingResponse,
    summary="Ledger records as CSV (streamed)",
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def usage_export(tenant: CompanyDep, record_filter: FilterDep, clients: ClientsDep) -> StreamingResponse:
    call = clients.billing.ExportUsage(
        billing_pb2.ExportUsageRequest(company_id=tenant.company_id, filter=record_filter),
        timeout=EXPORT_TIMEOUT_SECONDS,
        metadata=call_metadata(),
    )
    # The first slice arrives before the response starts, so a refused request still gets its JSON status.
    try:
        first = next(call).data
    except StopIteration:
        first = b""
    except grpc.RpcError as error:
        raise from_rpc_error(error, RENAME) from None

    def body() -> Iterator[bytes]:
        try:
            yield first
            for piece in call:
                yield piece.data
        finally:
            call.cancel()  # a client that goes away stops the export on the billing side too

    name = f"hiremeter-usage-{tenant.company_id}-{record_filter.period.start_date}-{record_filter.period.end_date}.csv"
    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )
