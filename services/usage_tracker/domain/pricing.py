"""Pricing: disjoint token classes, the versioned price book, model resolution, margins and fallback.

Token usage arrives as OpenAI reports it (totals plus overlapping subsets). Before any price is applied it is
split into six disjoint classes, so that no token is priced twice: OpenAI's input total includes cached and
audio input, and reasoning tokens are part of the (text) output.
"""

from __future__ import annotations

import datetime as dt
import re
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from decimal import Decimal

from services.usage_tracker.domain.decimals import EXACT, per_million

CATEGORIES = ("cv_parsing", "question_generation", "video_interview")
UNITS = {"cv_parsing": "cv", "question_generation": "question", "video_interview": "minute"}

# A price key matches a longer model id only when the rest is a dated snapshot suffix ("-2024-08-06",
# "-0613"). So "gpt-4o-mini" can never fall through to "gpt-4o", and an unlisted variant such as
# "gpt-realtime-mini" falls back (flagged) instead of borrowing a sibling's price.
_SNAPSHOT_SUFFIX = re.compile(r"^-(\d{4}-\d{2}-\d{2}|\d{4})$")


@dataclass(frozen=True)
class TokenUsage:
    """Usage as OpenAI reports it: totals and subsets (see usage_tracker.proto's TokenUsage)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    input_audio_tokens: int = 0
    cached_input_audio_tokens: int = 0
    output_audio_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return _USAGE_FIELDS  # dataclasses.fields() on every call was a hot spot of bulk ingest

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in _USAGE_FIELDS}

    def classes(self) -> TokenClasses:
        """The six disjoint classes. Assumes a validated usage (subsets never above their totals)."""
        audio_uncached = self.input_audio_tokens - self.cached_input_audio_tokens
        return TokenClasses(
            text_input=self.input_tokens - self.cached_input_tokens - audio_uncached,
            cached_text_input=self.cached_input_tokens - self.cached_input_audio_tokens,
            audio_input=audio_uncached,
            cached_audio_input=self.cached_input_audio_tokens,
            text_output=self.output_tokens - self.output_audio_tokens,
            audio_output=self.output_audio_tokens,
        )


@dataclass(frozen=True)
class TokenClasses:
    """Disjoint token classes; each token of an operation is in exactly one."""

    text_input: int = 0
    cached_text_input: int = 0
    audio_input: int = 0
    cached_audio_input: int = 0
    text_output: int = 0
    audio_output: int = 0

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return _CLASS_FIELDS

    def total(self) -> int:
        return sum(getattr(self, name) for name in self.names())

    def minus(self, other: TokenClasses) -> TokenClasses:
        """Per class, what is left after `other`; never negative."""
        return TokenClasses(**{n: max(0, getattr(self, n) - getattr(other, n)) for n in self.names()})

    def plus(self, other: TokenClasses) -> TokenClasses:
        return TokenClasses(**{n: getattr(self, n) + getattr(other, n) for n in self.names()})

    def share(self, parts: int) -> TokenClasses:
        """One of `parts` equal shares, rounded down per class (the last claimant takes the rest)."""
        return TokenClasses(**{n: getattr(self, n) // parts for n in self.names()})

    def usage(self) -> TokenUsage:
        """Back to OpenAI's totals-and-subsets shape (reasoning is unknown here, so 0)."""
        return TokenUsage(
            input_tokens=self.text_input
            + self.cached_text_input
            + self.audio_input
            + self.cached_audio_input,
            output_tokens=self.text_output + self.audio_output,
            cached_input_tokens=self.cached_text_input + self.cached_audio_input,
            input_audio_tokens=self.audio_input + self.cached_audio_input,
            cached_input_audio_tokens=self.cached_audio_input,
            output_audio_tokens=self.audio_output,
        )


_USAGE_FIELDS = tuple(f.name for f in fields(TokenUsage))
_CLASS_FIELDS = tuple(f.name for f in fields(TokenClasses))


@dataclass(frozen=True)
class ModelPrice:
    """USD per 1,000,000 tokens of each class; audio prices are None for text-only models."""

    model: str
    text_input: Decimal
    cached_text_input: Decimal
    text_output: Decimal
    audio_input: Decimal | None = None
    cached_audio_input: Decimal | None = None
    audio_output: Decimal | None = None


@dataclass(frozen=True)
class PriceVersion:
    version: str
    effective_at: dt.datetime
    models: tuple[ModelPrice, ...]
    fallback_prices: dict[str, Decimal]  # category -> USD per unit (per cv, per generation, per minute)
    note: str = ""
    created_at: dt.datetime | None = None

    def resolve(self, model: str) -> ModelPrice | None:
        """Exact id first, then the longest key of which the id is a dated snapshot; None when unknown."""
        by_key = {price.model: price for price in self.models}
        if model in by_key:
            return by_key[model]
        candidates = [
            key for key in by_key if model.startswith(key) and _SNAPSHOT_SUFFIX.match(model[len(key) :])
        ]
        return by_key[max(candidates, key=len)] if candidates else None


@dataclass
class PriceBook:
    """All versions, ordered by effective time; the one in force at a time prices what completed then."""

    versions: list[PriceVersion] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.versions.sort(key=lambda v: v.effective_at)

    def at(self, when: dt.datetime) -> PriceVersion | None:
        index = bisect_right([v.effective_at for v in self.versions], when)
        return self.versions[index - 1] if index else None


class Unpriceable(Exception):
    """Tokens that this model's price cannot cover (e.g. audio tokens on a text-only model)."""


def token_cost(price: ModelPrice, classes: TokenClasses) -> Decimal:
    """The exact USD cost of disjoint token classes at one model's prices."""
    total = Decimal(0)
    for name in TokenClasses.names():
        count = getattr(classes, name)
        if not count:
            continue
        unit = getattr(price, name)
        if unit is None:
            raise Unpriceable(f"model {price.model} has no {name} price")
        total = EXACT.add(total, per_million(count, unit))
    return total


def fallback_cost(unit_price: Decimal, quantity: Decimal, category: str) -> Decimal:
    """Flat price: per cv, per generation (one question set, whatever its size), per interview minute."""
    units = Decimal(1) if category == "question_generation" else quantity
    return EXACT.multiply(unit_price, units)


MAX_MARGIN = Decimal(10)


def margin_problem(margin: Decimal) -> str | None:
    if not Decimal(0) <= margin <= MAX_MARGIN:
        return f"must be between 0 and {MAX_MARGIN}"
    return None


@dataclass(frozen=True)
class MarginChange:
    company_id: str
    margin: Decimal
    effective_at: dt.datetime


def margin_at(changes: Iterable[MarginChange], when: dt.datetime) -> MarginChange | None:
    """The company's override in force at `when` (the latest effective at or before it), if any."""
    applicable = [c for c in changes if c.effective_at <= when]
    return max(applicable, key=lambda c: c.effective_at) if applicable else None


def sum_classes(items: Sequence[TokenClasses]) -> TokenClasses:
    total = TokenClasses()
    for item in items:
        total = total.plus(item)
    return total
