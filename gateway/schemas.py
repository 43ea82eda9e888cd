"""The JSON the gateway speaks, as strict pydantic models (so /openapi.json is exact), and the translations
from the gRPC messages. Amounts and quantities are exact decimal strings; times are ISO-8601 UTC."""

from __future__ import annotations

from typing import Annotated, Literal

from google.protobuf.timestamp_pb2 import Timestamp
from hiremeter.usage.v1 import usage_tracker_pb2
from pydantic import BaseModel, ConfigDict, Field

CategoryName = Literal["cv_parsing", "question_generation", "video_interview"]
SourceName = Literal["response_usage", "usage_api", "fallback", "reconciliation"]
CATEGORY_NAMES: tuple[CategoryName, ...] = ("cv_parsing", "question_generation", "video_interview")
SOURCE_NAMES: tuple[SourceName, ...] = ("response_usage", "usage_api", "fallback", "reconciliation")
CATEGORY_VALUE = {
    name: usage_tracker_pb2.Category.Value(f"CATEGORY_{name.upper()}") for name in CATEGORY_NAMES
}
SOURCE_VALUE = {name: usage_tracker_pb2.Source.Value(f"SOURCE_{name.upper()}") for name in SOURCE_NAMES}
CATEGORY_NAME = {value: name for name, value in CATEGORY_VALUE.items()}
SOURCE_NAME = {value: name for name, value in SOURCE_VALUE.items()}

Money = Field(description="USD, exact decimal text", examples=["0.0109375"])
Tokens = Annotated[int, Field(ge=0, le=10_000_000_000)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ErrorDetail(Strict):
    code: str = Field(description="gRPC-style status name, e.g. INVALID_ARGUMENT")
    message: str
    request_id: str


class ErrorBody(Strict):
    error: ErrorDetail


# Billing ---------------------------------------------------------------------------------------------------


class SourceTotal(Strict):
    source: SourceName
    operations: int
    adjustments: int
    cost: str = Money
    base_cost: str = Money
    quantity: str


class CategorySummary(Strict):
    category: CategoryName
    total_cost: str = Money
    base_cost: str = Money
    operations: int
    quantity: str = Field(description="Units delivered, exact decimal text")
    unit: Literal["cv", "question", "minute"]
    average_cost_per_unit: str = Field(
        description="total_cost / quantity, half-even to 6 places; '0' if none"
    )
    adjustments_cost: str = Money
    sources: list[SourceTotal]


class UsageSummary(Strict):
    company_id: str
    currency: Literal["USD"]
    start: str = Field(description="YYYY-MM-DD, inclusive")
    end: str = Field(description="YYYY-MM-DD, inclusive")
    time_zone: str
    total_cost: str = Money
    base_cost: str = Money
    reconciled: bool = Field(description="Every UTC day of the period with usage has been reconciled")
    unreconciled_dates: list[str]
    categories: list[CategorySummary]


class CategoryDay(Strict):
    category: CategoryName
    cost: str = Money
    operations: int
    quantity: str


class DailyCost(Strict):
    date: str
    total_cost: str = Money
    categories: list[CategoryDay]


class DailyCosts(Strict):
    company_id: str
    start: str
    end: str
    time_zone: str
    total_cost: str = Money
    days: list[DailyCost]


class TokenUsage(Strict):
    input_tokens: Tokens = 0
    output_tokens: Tokens = 0
    cached_input_tokens: Tokens = 0
    input_audio_tokens: Tokens = 0
    cached_input_audio_tokens: Tokens = 0
    output_audio_tokens: Tokens = 0
    reasoning_tokens: Tokens = 0


class UsageRecord(Strict):
    record_id: str
    operation_id: str
    kind: Literal["record", "adjustment"]
    adjusts_record_id: str
    category: CategoryName
    job_id: str
    candidate_id: str
    model: str
    priced_model: str
    source: SourceName
    quantity: str
    unit: str
    base_cost: str = Money
    margin: str = Field(description="Decimal fraction, '0.25' is 25%")
    cost: str = Money
    price_version: str
    fallback_reason: str
    started_time: str | None
    completed_time: str | None
    create_time: str | None
    usage: TokenUsage


class UsageRecordsPage(Strict):
    company_id: str
    start: str
    end: str
    time_zone: str
    records: list[UsageRecord]
    next_page_token: str = Field(description="Empty on the last page")
    total_size: int


# Recruiting ------------------------------------------------------------------------------------------------


class Experience(Strict):
    title: str
    company: str
    start_date: str
    end_date: str
    description: str


class Education(Strict):
    institution: str
    degree: str
    field_of_study: str
    start_date: str
    end_date: str


class Resume(Strict):
    resume_id: str
    job_id: str
    candidate_id: str
    full_name: str
    emails: list[str]
    phones: list[str]
    location: str
    summary: str
    skills: list[str]
    experience: list[Experience]
    education: list[Education]
    languages: list[str]
    links: list[str]
    source_format: str
    model: str
    create_time: str | None


class ParsedResume(Strict):
    resume: Resume
    operation_id: str
    usage: TokenUsage


class StageIn(Strict):
    stage: str = Field(min_length=1, max_length=64)
    count: int = Field(ge=1, le=20)


class QuestionsIn(Strict):
    job_id: str = ""
    resume_id: str
    job_description: str
    stages: list[StageIn] = Field(default_factory=list)
    company_id: str | None = Field(None, description="Optional; must be the token's company")


class Question(Strict):
    text: str
    rationale: str


class QuestionStage(Strict):
    stage: str
    questions: list[Question]


class QuestionSet(Strict):
    question_set_id: str
    job_id: str
    candidate_id: str
    resume_id: str
    stages: list[QuestionStage]
    model: str
    create_time: str | None


class GeneratedQuestions(Strict):
    question_set: QuestionSet
    question_count: int
    operation_id: str
    usage: TokenUsage


class InterviewIn(Strict):
    job_id: str = ""
    candidate_id: str = ""
    question_set_id: str = ""
    model: str = ""
    secret_ttl_seconds: int = Field(0, ge=0, le=2_147_483_647)
    company_id: str | None = Field(None, description="Optional; must be the token's company")


class Interview(Strict):
    interview_id: str
    job_id: str
    candidate_id: str
    question_set_id: str
    model: str
    state: Literal["started", "completed", "unspecified"]
    start_time: str | None
    end_time: str | None
    duration_minutes: str
    operation_id: str
    realtime_session_id: str


class StartedInterview(Strict):
    interview: Interview
    client_secret: str
    client_secret_expire_time: str | None
    instructions: str


class RealtimeResponseUsage(Strict):
    input_tokens: Tokens = 0
    output_tokens: Tokens = 0
    total_tokens: Tokens = 0
    input_text_tokens: Tokens = 0
    input_audio_tokens: Tokens = 0
    input_cached_tokens: Tokens = 0
    input_cached_text_tokens: Tokens = 0
    input_cached_audio_tokens: Tokens = 0
    output_text_tokens: Tokens = 0
    output_audio_tokens: Tokens = 0


class CompleteIn(Strict):
    end_time: str | None = Field(None, description="ISO-8601 with offset; defaults to now")
    usage: TokenUsage | None = None
    response_usages: list[RealtimeResponseUsage] = Field(default_factory=list)
    company_id: str | None = Field(None, description="Optional; must be the token's company")


class CompletedInterview(Strict):
    interview: Interview
    usage: TokenUsage | None
    already_completed: bool


# Translations ----------------------------------------------------------------------------------------------


def iso(timestamp: Timestamp) -> str | None:
    if not timestamp.seconds and not timestamp.nanos:
        return None
    return timestamp.ToDatetime().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def token_usage(message) -> TokenUsage:
    return TokenUsage(**{name: getattr(message, name) for name in TokenUsage.model_fields})


def usage_record(record) -> UsageRecord:
    return UsageRecord(
        record_id=record.record_id,
        operation_id=record.operation_id,
        kind="adjustment" if record.adjusts_record_id else "record",
        adjusts_record_id=record.adjusts_record_id,
        category=CATEGORY_NAME[record.category],
        job_id=record.job_id,
        candidate_id=record.candidate_id,
        model=record.model,
        priced_model=record.priced_model,
        source=SOURCE_NAME[record.source],
        quantity=record.quantity,
        unit=record.unit,
        base_cost=record.base_cost,
        margin=record.margin,
        cost=record.cost,
        price_version=record.price_version,
        fallback_reason=record.fallback_reason,
        started_time=iso(record.started_time),
        completed_time=iso(record.completed_time),
        create_time=iso(record.create_time),
        usage=token_usage(record.usage),
    )


def _fields(message, model: type[BaseModel], **overrides):
    values = {}
    for name in model.model_fields:
        if name in overrides:
            values[name] = overrides[name]
        else:
            value = getattr(message, name)
            values[name] = list(value) if hasattr(value, "extend") else value
    return model(**values)


def resume(message) -> Resume:
    return _fields(
        message,
        Resume,
        experience=[_fields(item, Experience) for item in message.experience],
        education=[_fields(item, Education) for item in message.education],
        create_time=iso(message.create_time),
    )


def question_set(message) -> QuestionSet:
    return _fields(
        message,
        QuestionSet,
        stages=[
            QuestionStage(stage=stage.stage, questions=[_fields(q, Question) for q in stage.questions])
            for stage in message.stages
        ],
        create_time=iso(message.create_time),
    )


def interview(message) -> Interview:
    state = {1: "started", 2: "completed"}.get(message.state, "unspecified")
    return _fields(
        message, Interview, state=state, start_time=iso(message.start_time), end_time=iso(message.end_time)
    )
