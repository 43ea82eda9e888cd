"""Token usage as OpenAI reports it (totals and their subsets), and interview durations.

TokenCounts mirrors hiremeter.usage.v1.TokenUsage field for field: input_tokens includes cached and audio
input, output_tokens includes audio output and reasoning. Nothing is pre-split here; the tracker splits the
classes before pricing. Chat usage maps one to one; a Realtime session is the sum of its response.done usages
(each turn re-sends the conversation, so every turn is billed in full).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from services.common.errors import InvalidArgument

MAX_TOKENS_PER_FIELD = 10_000_000_000
MINUTE_QUANTUM = Decimal("0.0001")


@dataclass(frozen=True)
class TokenCounts:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    input_audio_tokens: int = 0
    cached_input_audio_tokens: int = 0
    output_audio_tokens: int = 0
    reasoning_tokens: int = 0

    def __add__(self, other: TokenCounts) -> TokenCounts:
        return TokenCounts(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def check(self, field: str) -> TokenCounts:
        """InvalidArgument naming `field.<name>` unless the counts are non-negative and the subsets fit."""
        for name, value in self.as_dict().items():
            if value < 0:
                raise InvalidArgument(f"{field}.{name} must not be negative")
            if value > MAX_TOKENS_PER_FIELD:
                raise InvalidArgument(f"{field}.{name} must be at most {MAX_TOKENS_PER_FIELD}")
        subsets = (
            ("cached_input_tokens", "input_tokens"),
            ("input_audio_tokens", "input_tokens"),
            ("cached_input_audio_tokens", "cached_input_tokens"),
            ("cached_input_audio_tokens", "input_audio_tokens"),
            ("output_audio_tokens", "output_tokens"),
            ("reasoning_tokens", "output_tokens"),
        )
        for part, whole in subsets:
            if getattr(self, part) > getattr(self, whole):
                raise InvalidArgument(f"{field}.{part} must not exceed {field}.{whole}")
        return self


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _int(obj: Any, *path: str) -> int:
    for name in path:
        obj = _get(obj, name)
    return int(obj or 0)


def from_chat_usage(usage: Any) -> TokenCounts:
    """Chat Completions `usage` (SDK object or dict), mapped exactly: every *_details field may be absent."""
    return TokenCounts(
        input_tokens=_int(usage, "prompt_tokens"),
        output_tokens=_int(usage, "completion_tokens"),
        cached_input_tokens=_int(usage, "prompt_tokens_details", "cached_tokens"),
        input_audio_tokens=_int(usage, "prompt_tokens_details", "audio_tokens"),
        output_audio_tokens=_int(usage, "completion_tokens_details", "audio_tokens"),
        reasoning_tokens=_int(usage, "completion_tokens_details", "reasoning_tokens"),
    )


@dataclass(frozen=True)
class RealtimeUsage:
    """One response.done `usage`, flattened (the shape of recruiting.v1.RealtimeResponseUsage)."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    input_text_tokens: int = 0
    input_audio_tokens: int = 0
    input_cached_tokens: int = 0
    input_cached_text_tokens: int = 0
    input_cached_audio_tokens: int = 0
    output_text_tokens: int = 0
    output_audio_tokens: int = 0

    @classmethod
    def from_event_usage(cls, usage: Any) -> RealtimeUsage:
        """From a response.done `response.usage` as the SDK (or the raw JSON) gives it."""
        return cls(
            input_tokens=_int(usage, "input_tokens"),
            output_tokens=_int(usage, "output_tokens"),
            total_tokens=_int(usage, "total_tokens"),
            input_text_tokens=_int(usage, "input_token_details", "text_tokens"),
            input_audio_tokens=_int(usage, "input_token_details", "audio_tokens"),
            input_cached_tokens=_int(usage, "input_token_details", "cached_tokens"),
            input_cached_text_tokens=_int(
                usage, "input_token_details", "cached_tokens_details", "text_tokens"
            ),
            input_cached_audio_tokens=_int(
                usage, "input_token_details", "cached_tokens_details", "audio_tokens"
            ),
            output_text_tokens=_int(usage, "output_token_details", "text_tokens"),
            output_audio_tokens=_int(usage, "output_token_details", "audio_tokens"),
        )

    def token_counts(self) -> TokenCounts:
        return TokenCounts(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cached_input_tokens=self.input_cached_tokens,
            input_audio_tokens=self.input_audio_tokens,
            cached_input_audio_tokens=self.input_cached_audio_tokens,
            output_audio_tokens=self.output_audio_tokens,
        )


def sum_realtime(usages: Iterable[RealtimeUsage], field: str = "response_usages") -> TokenCounts:
    """The session's usage: the sum of every response.done usage, each checked (named field[i].name)."""
    total = TokenCounts()
    for index, usage in enumerate(usages):
        item = f"{field}[{index}]"
        for name, value in vars(usage).items():
            if value < 0:
                raise InvalidArgument(f"{item}.{name} must not be negative")
        if usage.total_tokens and usage.total_tokens != usage.input_tokens + usage.output_tokens:
            raise InvalidArgument(f"{item}.total_tokens must equal input_tokens + output_tokens")
        if usage.input_cached_text_tokens + usage.input_cached_audio_tokens > usage.input_cached_tokens:
            raise InvalidArgument(f"{item}.input_cached_tokens must include its text and audio parts")
        if usage.input_text_tokens + usage.input_audio_tokens > usage.input_tokens:
            raise InvalidArgument(f"{item}.input_tokens must include its text and audio parts")
        if usage.output_text_tokens + usage.output_audio_tokens > usage.output_tokens:
            raise InvalidArgument(f"{item}.output_tokens must include its text and audio parts")
        total = total + usage.token_counts().check(item)
    return total.check(field)


def duration_minutes(start: dt.datetime, end: dt.datetime) -> Decimal:
    """Interview minutes, exact: (end - start) in microseconds / 60,000,000, rounded half-up to 0.0001 minute
    (6 ms), and at least 0.0001 so that a metered interview never has a zero quantity. "4" for 4 minutes."""
    micros = (end - start) // dt.timedelta(microseconds=1)
    minutes = (Decimal(micros) / Decimal(60_000_000)).quantize(MINUTE_QUANTUM, rounding=ROUND_HALF_UP)
    return max(minutes, MINUTE_QUANTUM)


def decimal_text(value: Decimal) -> str:
    """Canonical decimal text without exponent or trailing zeros: Decimal("4.0000") -> "4"."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
