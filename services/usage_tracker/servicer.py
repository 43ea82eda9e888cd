"""UsageTracker's gRPC surface: translation between the proto messages and the tracker, nothing more.
Amounts leave as canonical decimal text (domain/decimals.py)."""

from __future__ import annotations

import base64
import datetime as dt

from google.protobuf.timestamp_pb2 import Timestamp
from hiremeter.usage.v1 import usage_tracker_pb2 as pb
from hiremeter.usage.v1 import usage_tracker_pb2_grpc

from services.common.errors import InvalidArgument
from services.usage_tracker.domain import decimals
from services.usage_tracker.domain.price_admin import build_version
from services.usage_tracker.domain.pricing import (
    MarginChange,
    PriceVersion,
    TokenUsage,
    margin_problem,
)
from services.usage_tracker.domain.tracking import ID_PATTERN, TrackInput, validate
from services.usage_tracker.storage.repository import Record
from services.usage_tracker.tracker import ReconciliationReport, Tracker

UTC = dt.UTC
CATEGORY_BY_ENUM = {
    pb.CATEGORY_CV_PARSING: "cv_parsing",
    pb.CATEGORY_QUESTION_GENERATION: "question_generation",
    pb.CATEGORY_VIDEO_INTERVIEW: "video_interview",
}
ENUM_BY_CATEGORY = {name: value for value, name in CATEGORY_BY_ENUM.items()}
ENUM_BY_SOURCE = {
    "response_usage": pb.SOURCE_RESPONSE_USAGE,
    "usage_api": pb.SOURCE_USAGE_API,
    "fallback": pb.SOURCE_FALLBACK,
    "reconciliation": pb.SOURCE_RECONCILIATION,
}
MAX_BATCH = 10_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def _timestamp(when: dt.datetime) -> Timestamp:
    # Equivalent to Timestamp.FromDatetime for the aware UTC datetimes of the ledger, at a third of its cost
    # (three per record in a TrackBatch answer of 10,000).
    delta = when - _EPOCH
    return Timestamp(seconds=delta.days * 86_400 + delta.seconds, nanos=delta.microseconds * 1000)


def _time_or_none(message, field: str) -> dt.datetime | None:
    if not message.HasField(field):
        return None
    stamp = getattr(message, field)
    try:
        return dt.datetime.fromtimestamp(stamp.seconds, UTC) + dt.timedelta(microseconds=stamp.nanos // 1000)
    except (OverflowError, OSError, ValueError):
        raise InvalidArgument(f"{field} is out of range") from None


def track_input(request: pb.TrackRequest) -> TrackInput:
    usage = None
    if request.HasField("usage"):
        usage = TokenUsage(**{name: getattr(request.usage, name) for name in TokenUsage.field_names()})

    def stamp(field: str) -> tuple[int, int] | None:
        if not request.HasField(field):
            return None
        value = getattr(request, field)
        return value.seconds, value.nanos

    return TrackInput(
        operation_id=request.operation_id,
        category=CATEGORY_BY_ENUM.get(request.category, ""),
        company_id=request.company_id,
        job_id=request.job_id,
        candidate_id=request.candidate_id,
        model=request.model,
        usage=usage,
        started=stamp("started_time"),
        completed=stamp("completed_time"),
        quantity=request.quantity,
        openai_project_id=request.openai_project_id,
    )


def record_message(record: Record) -> pb.UsageRecord:
    return pb.UsageRecord(
        record_id=record.record_id,
        operation_id=record.operation_id,
        category=ENUM_BY_CATEGORY[record.category],
        company_id=record.company_id,
        job_id=record.job_id,
        candidate_id=record.candidate_id,
        model=record.model,
        priced_model=record.priced_model,
        usage=pb.TokenUsage(**record.usage.as_dict()),
        quantity=decimals.canonical(record.quantity),
        unit=record.unit,
        base_cost=decimals.canonical(record.base_cost),
        margin=decimals.canonical(record.margin),
        cost=decimals.canonical(record.cost),
        source=ENUM_BY_SOURCE[record.source],
        price_version=record.price_version,
        fallback_reason=record.fallback_reason,
        started_time=_timestamp(record.started_at),
        completed_time=_timestamp(record.completed_at),
        create_time=_timestamp(record.created_at),
        openai_project_id=record.openai_project_id,
        adjusts_record_id=record.adjusts_record_id or "",
    )


def price_version_message(version: PriceVersion) -> pb.PriceVersion:
    def text(value) -> str:
        return decimals.canonical(value) if value is not None else ""

    message = pb.PriceVersion(
        version=version.version,
        effective_time=_timestamp(version.effective_at),
        note=version.note,
        models=[
            pb.ModelPrice(
                model=m.model,
                text_input=text(m.text_input),
                cached_text_input=text(m.cached_text_input),
                text_output=text(m.text_output),
                audio_input=text(m.audio_input),
                cached_audio_input=text(m.cached_audio_input),
                audio_output=text(m.audio_output),
            )
            for m in version.models
        ],
        fallback_prices=[
            pb.FallbackPrice(category=ENUM_BY_CATEGORY[category], unit_price=text(price))
            for category, price in sorted(version.fallback_prices.items())
        ],
    )
    if version.created_at is not None:
        message.create_time.CopyFrom(_timestamp(version.created_at))
    return message


def report_message(report: ReconciliationReport) -> pb.ReconciliationReport:
    return pb.ReconciliationReport(
        date=report.day.isoformat(),
        create_time=_timestamp(report.created_at),
        lines=[
            pb.ReconciliationLine(
                openai_project_id=line.openai_project_id,
                model=line.model,
                ledger_tokens=line.ledger_tokens,
                ledger_base_cost=decimals.canonical(line.ledger_base_cost),
                reported_tokens=line.reported_tokens,
                reported_cost=decimals.canonical(line.reported_cost),
                token_drift=line.token_drift,
                cost_drift=decimals.canonical(line.cost_drift),
            )
            for line in report.lines
        ],
        adjustments=[record_message(record) for record in report.adjustments],
        unsettled_records=report.unsettled_records,
        reported_cost=decimals.canonical(report.reported_cost),
        ledger_base_cost=decimals.canonical(report.ledger_base_cost),
    )


def _company_id(value: str) -> str:
    if not value:
        raise InvalidArgument("company_id must not be empty")
    if not ID_PATTERN.match(value):
        raise InvalidArgument("company_id must be 1-128 characters of letters, digits and . _ : -")
    return value


def _margin_message(change: MarginChange) -> pb.CompanyMargin:
    return pb.CompanyMargin(
        company_id=change.company_id,
        margin=decimals.canonical(change.margin),
        effective_time=_timestamp(change.effective_at),
    )


class UsageTrackerServicer(usage_tracker_pb2_grpc.UsageTrackerServicer):
    def __init__(self, tracker: Tracker) -> None:
        self._tracker = tracker

    def Track(self, request, context):
        command = validate(track_input(request), now=self._tracker.now())
        record, duplicate = self._tracker.track(command)
        return pb.TrackResponse(record=record_message(record), duplicate=duplicate)

    def TrackBatch(self, request, context):
        if not request.requests:
            raise InvalidArgument("requests must not be empty")
        if len(request.requests) > MAX_BATCH:
            raise InvalidArgument(
                f"requests must hold at most {MAX_BATCH} operations, got {len(request.requests)}"
            )
        now = self._tracker.now()
        commands = [
            validate(track_input(item), now=now, prefix=f"requests[{index}].")
            for index, item in enumerate(request.requests)
        ]
        results = self._tracker.track_batch(commands)
        return pb.TrackBatchResponse(
            results=[pb.TrackResponse(record=record_message(r), duplicate=d) for r, d in results]
        )

    def Reconcile(self, request, context):
        try:
            day = dt.date.fromisoformat(request.date)
        except ValueError:
            raise InvalidArgument(f"date must be YYYY-MM-DD, got {request.date!r}") from None
        return pb.ReconcileResponse(report=report_message(self._tracker.reconcile(day, request.dry_run)))

    def ListReconciliationReports(self, request, context):
        size = request.page_size
        if size < 0:
            raise InvalidArgument("page_size must not be negative")
        size = min(size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        offset = _decode_page_token(request.page_token)
        reports = self._tracker.reports(offset, size + 1)
        next_token = _encode_page_token(offset + size) if len(reports) > size else ""
        return pb.ListReconciliationReportsResponse(
            reports=[report_message(report) for report in reports[:size]], next_page_token=next_token
        )

    def ListPriceVersions(self, request, context):
        return pb.ListPriceVersionsResponse(
            versions=[price_version_message(v) for v in self._tracker.price_versions()]
        )

    def AddPriceVersion(self, request, context):
        message = request.price_version
        models = [
            {
                name: getattr(m, name)
                for name in (
                    "model",
                    "text_input",
                    "cached_text_input",
                    "text_output",
                    "audio_input",
                    "cached_audio_input",
                    "audio_output",
                )
            }
            for m in message.models
        ]
        fallback: dict[str, str] = {}
        for index, item in enumerate(message.fallback_prices):
            category = CATEGORY_BY_ENUM.get(item.category)
            if category is None:
                raise InvalidArgument(f"price_version.fallback_prices[{index}].category must be specified")
            fallback[category] = item.unit_price
        version = build_version(
            message.version, _time_or_none(message, "effective_time"), models, fallback, message.note
        )
        stored = self._tracker.add_price_version(version)
        return pb.AddPriceVersionResponse(price_version=price_version_message(stored))

    def GetCompanyMargin(self, request, context):
        company = _company_id(request.company_id)
        at = _time_or_none(request, "at_time") or self._tracker.now()
        change, is_default = self._tracker.margin(company, at)
        return pb.GetCompanyMarginResponse(margin=_margin_message(change), is_default=is_default)

    def SetCompanyMargin(self, request, context):
        company = _company_id(request.company_id)
        try:
            margin = decimals.parse(request.margin, "margin")
        except ValueError as error:
            raise InvalidArgument(str(error)) from None
        if problem := margin_problem(margin):
            raise InvalidArgument(f"margin {problem}")
        effective = _time_or_none(request, "effective_time") or self._tracker.now()
        change = self._tracker.set_margin(MarginChange(company, margin, effective))
        return pb.SetCompanyMarginResponse(margin=_margin_message(change))

    def ListCompanyMargins(self, request, context):
        company = _company_id(request.company_id)
        return pb.ListCompanyMarginsResponse(
            margins=[_margin_message(c) for c in self._tracker.margins(company)]
        )


def _encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _decode_page_token(token: str) -> int:
    if not token:
        return 0
    try:
        kind, _, value = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        offset = int(value)
        if kind != "offset" or offset < 0:
            raise ValueError
    except ValueError:
        raise InvalidArgument("page_token is not a token this service issued") from None
    return offset
