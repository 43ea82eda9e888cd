"""Track requests: validation (every problem named by its field), the idempotency hash, and the pricing
decision for one operation (response usage, usage-API tokens or the flat fallback).

Validation is pure: it takes a TrackInput (plain values the servicer read off the wire) and returns a
TrackCommand, or raises InvalidArgument whose message starts with the field's path, e.g.
"requests[3].usage.cached_input_tokens must not exceed usage.input_tokens".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from decimal import Decimal

from services.common.errors import InvalidArgument
from services.usage_tracker.domain import decimals
from services.usage_tracker.domain.pricing import (
    CATEGORIES,
    UNITS,
    PriceVersion,
    TokenUsage,
    Unpriceable,
    fallback_cost,
    token_cost,
)

UTC = dt.UTC
ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
MODEL_PATTERN = re.compile(r"^[A-Za-z0-9._:/-]{1,128}$")
MAX_TOKENS = 10_000_000_000
EARLIEST = dt.datetime(2015, 1, 1, tzinfo=UTC)  # before OpenAI existed: a clock or encoding bug
CLOCK_SKEW = dt.timedelta(minutes=5)
MAX_WINDOW = dt.timedelta(hours=24)
MAX_UNITS = {
    "cv_parsing": Decimal(1000),
    "question_generation": Decimal(1000),
    "video_interview": Decimal(1440),
}

SOURCE_RESPONSE_USAGE = "response_usage"
SOURCE_USAGE_API = "usage_api"
SOURCE_FALLBACK = "fallback"
SOURCE_RECONCILIATION = "reconciliation"


@dataclass(frozen=True)
class TrackInput:
    """A TrackRequest as plain values: category as its wire name ("" when unspecified or unknown),
    timestamps as (seconds, nanos) or None when absent, usage None when absent."""

    operation_id: str
    category: str
    company_id: str
    job_id: str
    candidate_id: str
    model: str
    usage: TokenUsage | None
    started: tuple[int, int] | None
    completed: tuple[int, int] | None
    quantity: str
    openai_project_id: str


@dataclass(frozen=True)
class TrackCommand:
    """A validated operation: times in UTC to the microsecond, quantity exact and defaulted."""

    operation_id: str
    category: str
    company_id: str
    job_id: str
    candidate_id: str
    model: str
    usage: TokenUsage | None
    started_at: dt.datetime
    completed_at: dt.datetime
    quantity: Decimal
    openai_project_id: str

    @property
    def unit(self) -> str:
        return UNITS[self.category]

    def payload_hash(self) -> str:
        """sha256 of the canonical payload: the same operation retried hashes the same."""
        body = {
            "category": self.category,
            "company_id": self.company_id,
            "job_id": self.job_id,
            "candidate_id": self.candidate_id,
            "model": self.model,
            "usage": self.usage.as_dict() if self.usage is not None else None,
            "started_at": self.started_at.isoformat(),
            "completed_at": self.completed_at.isoformat(),
            "quantity": decimals.canonical(self.quantity),
            "openai_project_id": self.openai_project_id,
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def validate(raw: TrackInput, *, now: dt.datetime, prefix: str = "") -> TrackCommand:
    """The command for a request, or InvalidArgument naming the first bad field (prefixed for batches)."""

    def bad(field: str, problem: str) -> InvalidArgument:
        return InvalidArgument(f"{prefix}{field} {problem}")

    def identifier(field: str, value: str, required: bool) -> str:
        if not value:
            if required:
                raise bad(field, "must not be empty")
            return ""
        if len(value) > 128:
            raise bad(field, f"must be at most 128 characters, got {len(value)}")
        if not ID_PATTERN.match(value):
            raise bad(field, "must contain only letters, digits and . _ : -")
        return value

    operation_id = identifier("operation_id", raw.operation_id, True)
    if raw.category not in CATEGORIES:
        raise bad("category", "must be one of CV_PARSING, QUESTION_GENERATION, VIDEO_INTERVIEW")
    company_id = identifier("company_id", raw.company_id, True)
    job_id = identifier("job_id", raw.job_id, False)
    candidate_id = identifier("candidate_id", raw.candidate_id, False)
    project = identifier("openai_project_id", raw.openai_project_id, False)
    if not raw.model:
        raise bad("model", "must not be empty")
    if len(raw.model) > 128 or not MODEL_PATTERN.match(raw.model):
        raise bad("model", "must be 1-128 characters of letters, digits and . _ : / -")

    started = _timestamp(raw.started, "started_time", bad)
    completed = _timestamp(raw.completed, "completed_time", bad)
    if started < EARLIEST:
        raise bad("started_time", f"must not be before {EARLIEST.date()}")
    if completed < started:
        raise bad("completed_time", "must not be before started_time")
    if completed > now + CLOCK_SKEW:
        raise bad("completed_time", "must not be in the future")
    if completed - started > MAX_WINDOW:
        raise bad("completed_time", "must be within 24 hours of started_time")

    quantity = _quantity(raw, started, completed, bad)
    if raw.usage is not None:
        _check_usage(raw.usage, bad)
    return TrackCommand(
        operation_id=operation_id,
        category=raw.category,
        company_id=company_id,
        job_id=job_id,
        candidate_id=candidate_id,
        model=raw.model,
        usage=raw.usage,
        started_at=started,
        completed_at=completed,
        quantity=quantity,
        openai_project_id=project,
    )


def _timestamp(value: tuple[int, int] | None, field: str, bad) -> dt.datetime:
    if value is None:
        raise bad(field, "is required")
    seconds, nanos = value
    if not 0 <= nanos < 1_000_000_000:
        raise bad(field, "has nanos out of range")
    try:
        return dt.datetime.fromtimestamp(seconds, UTC) + dt.timedelta(microseconds=nanos // 1000)
    except (OverflowError, OSError, ValueError):
        raise bad(field, "is out of range") from None


def _quantity(raw: TrackInput, started: dt.datetime, completed: dt.datetime, bad) -> Decimal:
    category = raw.category
    if not raw.quantity:
        if category == "cv_parsing":
            return Decimal(1)
        raise bad("quantity", f"is required for {category}")
    try:
        quantity = decimals.parse(raw.quantity, "quantity")
    except ValueError:
        raise bad("quantity", f"must be plain decimal text like 4.5, got {raw.quantity!r}") from None
    if quantity <= 0:
        raise bad("quantity", "must be greater than 0")
    if quantity > MAX_UNITS[category]:
        raise bad("quantity", f"must be at most {MAX_UNITS[category]} for {category}")
    if category != "video_interview" and quantity != quantity.to_integral_value():
        raise bad("quantity", f"must be a whole number of {UNITS[category]}s")
    if category == "video_interview":
        window_minutes = Decimal((completed - started).total_seconds()) / 60
        if quantity > window_minutes + 1:  # one minute of slack for rounding by the caller
            raise bad("quantity", "must not exceed the minutes between started_time and completed_time")
    return quantity


def _check_usage(usage: TokenUsage, bad) -> None:
    for name, value in usage.as_dict().items():
        if value < 0:
            raise bad(f"usage.{name}", "must not be negative")
        if value > MAX_TOKENS:
            raise bad(f"usage.{name}", f"must be at most {MAX_TOKENS}")
    subsets = (
        ("cached_input_tokens", "input_tokens"),
        ("input_audio_tokens", "input_tokens"),
        ("cached_input_audio_tokens", "cached_input_tokens"),
        ("cached_input_audio_tokens", "input_audio_tokens"),
        ("output_audio_tokens", "output_tokens"),
    )
    for part, whole in subsets:
        if getattr(usage, part) > getattr(usage, whole):
            raise bad(f"usage.{part}", f"must not exceed usage.{whole}")
    cached_or_audio = usage.cached_input_tokens + usage.input_audio_tokens - usage.cached_input_audio_tokens
    if cached_or_audio > usage.input_tokens:
        raise bad(
            "usage.input_audio_tokens", "plus uncached cached_input_tokens must not exceed usage.input_tokens"
        )
    if usage.reasoning_tokens > usage.output_tokens - usage.output_audio_tokens:
        raise bad("usage.reasoning_tokens", "must not exceed the text part of usage.output_tokens")


@dataclass(frozen=True)
class Pricing:
    """How one operation is priced: the base cost and what it rests on."""

    source: str
    base_cost: Decimal
    usage: TokenUsage  # the tokens the cost rests on; zero for fallback
    priced_model: str
    price_version: str
    fallback_reason: str = ""


def price_usage(version: PriceVersion, model: str, usage: TokenUsage, source: str) -> Pricing | str:
    """Tokens x the version's price for the model, or the reason they cannot be priced."""
    price = version.resolve(model)
    if price is None:
        return f"model {model} is not in price version {version.version}"
    try:
        cost = token_cost(price, usage.classes())
    except Unpriceable as problem:
        return str(problem)
    return Pricing(source, cost, usage, price.model, version.version)


def price_fallback(
    version: PriceVersion | None,
    defaults: dict[str, Decimal],
    command: TrackCommand,
    reason: str,
) -> Pricing:
    """The flat price: the version's own fallback prices, else the configured defaults."""
    prices = version.fallback_prices if version is not None else {}
    unit_price = prices.get(command.category, defaults[command.category])
    resolved = version.resolve(command.model) if version is not None else None
    return Pricing(
        source=SOURCE_FALLBACK,
        base_cost=fallback_cost(unit_price, command.quantity, command.category),
        usage=TokenUsage(),
        priced_model=resolved.model if resolved is not None else "",
        price_version=version.version if version is not None else "",
        fallback_reason=reason[:256],
    )


def conflicting_field(command: TrackCommand, stored: dict) -> str:
    """The first field where a retried operation_id differs from the stored record (for ALREADY_EXISTS)."""
    for name in ("category", "company_id", "job_id", "candidate_id", "model", "openai_project_id"):
        if getattr(command, name) != stored[name]:
            return name
    if command.started_at != stored["started_at"]:
        return "started_time"
    if command.completed_at != stored["completed_at"]:
        return "completed_time"
    if command.quantity != stored["quantity"]:
        return "quantity"
    return "usage"
