"""Deterministic token accounting and the prompt-cache model.

No real tokenizer is involved: the simulator needs counts that are *plausible* (about four characters per
token, a few tokens of overhead per message, as OpenAI documents for its chat format) and, above all,
*reproducible*, so tests can predict them.

A prompt is turned into a sequence of :class:`Segment` s (message headers, text, audio).  Each segment has a
token count and an identity; two prompts share a cached prefix exactly as far as their leading segments are
identical, plus, inside the first differing text segment, the whole 4-character tokens they share.

Caching rules, modelled on OpenAI's documentation:

* chat completions: a prompt of at least 1024 tokens can hit the cache; the cached part is the common
  prefix with an earlier prompt for the same served model, rounded *down* to a multiple of 128, and only
  if that is at least 1024.
* realtime: every turn re-sends the conversation; the cached part is the common prefix with the session's
  previous turn rounded down to a multiple of 64 (the spec's own ``response.done`` example caches 64 of
  132 input tokens, so no 1024 floor applies there).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import deque
from dataclasses import dataclass
from typing import Any

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD = 4  # role marker and separators, per message
REPLY_PRIMING = 3  # the assistant header every prompt ends with

CHAT_CACHE_MIN_TOKENS = 1024
CHAT_CACHE_INCREMENT = 128
REALTIME_CACHE_INCREMENT = 64
CACHE_ENTRIES_PER_MODEL = 64  # bounded memory: only the most recent long prompts are remembered

# Audio: 10 tokens per second of input, i.e. one token per 100 ms.
AUDIO_TOKENS_PER_SECOND = 10
AUDIO_BYTES_PER_SECOND = {"audio/pcm": 48_000, "audio/pcmu": 8_000, "audio/pcma": 8_000}
# Spoken output is about three audio tokens per transcript token (the spec example: 30 text, 91 audio).
AUDIO_OUT_PER_TEXT_TOKEN = 3


def text_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def audio_tokens_for_bytes(n_bytes: int, audio_format: str = "audio/pcm") -> int:
    per_second = AUDIO_BYTES_PER_SECOND.get(audio_format, AUDIO_BYTES_PER_SECOND["audio/pcm"])
    return math.ceil(n_bytes * AUDIO_TOKENS_PER_SECOND / per_second)


@dataclass(frozen=True)
class Segment:
    """A run of tokens of one kind.  ``text`` is kept for text so partial prefixes can be measured."""

    kind: str  # "text" or "audio"
    tokens: int
    identity: str
    text: str | None = None


def text_segment(text: str) -> Segment:
    return Segment("text", text_tokens(text), text, text)


def header_segment(role: str) -> Segment:
    return Segment("text", MESSAGE_OVERHEAD, f"<|{role}|>")


def audio_segment(tokens: int, identity: str) -> Segment:
    return Segment("audio", tokens, identity)


def content_text(content: Any) -> str:
    """The text of a chat message's ``content``: a string, or the text parts of a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content if isinstance(content, list) else [content]:
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            parts.append(part["text"])
        else:
            parts.append(json.dumps(part, sort_keys=True))
    return "\n".join(parts)


def chat_prompt_segments(
    messages: list[dict[str, Any]], response_format: dict[str, Any] | None
) -> list[Segment]:
    """Segments of a chat prompt.  A json_schema goes first, where OpenAI puts its system-level grammar,
    so a fixed schema and system prompt form the cacheable prefix."""
    segments: list[Segment] = []
    if response_format and response_format.get("type") == "json_schema":
        schema_text = json.dumps(response_format.get("json_schema", {}), sort_keys=True)
        segments += [header_segment("response_format"), text_segment(schema_text)]
    for message in messages:
        segments += [
            header_segment(str(message.get("role", "user"))),
            text_segment(content_text(message.get("content"))),
        ]
    segments.append(Segment("text", REPLY_PRIMING, "<|assistant|>"))
    return segments


def total_tokens(segments: list[Segment]) -> int:
    return sum(s.tokens for s in segments)


def common_prefix_tokens(a: list[Segment], b: list[Segment]) -> int:
    shared = 0
    for left, right in zip(a, b, strict=False):
        if left == right:
            shared += left.tokens
            continue
        if left.kind == right.kind == "text" and left.text is not None and right.text is not None:
            same_chars = len(_common_prefix(left.text, right.text))
            shared += same_chars // CHARS_PER_TOKEN
        break
    return shared


def _common_prefix(a: str, b: str) -> str:
    # Binary search on slice equality: string comparison runs in C, so long prompts stay cheap.
    low, high = 0, min(len(a), len(b))
    while low < high:
        mid = (low + high + 1) // 2
        if a[:mid] == b[:mid]:
            low = mid
        else:
            high = mid - 1
    return a[:low]


def split_cached(segments: list[Segment], cached: int) -> tuple[int, int]:
    """How many of the first ``cached`` tokens are text and how many audio."""
    text = audio = 0
    remaining = cached
    for segment in segments:
        if remaining <= 0:
            break
        take = min(segment.tokens, remaining)
        if segment.kind == "audio":
            audio += take
        else:
            text += take
        remaining -= take
    return text, audio


def count_kinds(segments: list[Segment]) -> tuple[int, int]:
    """(text tokens, audio tokens) of a whole prompt."""
    return (
        sum(s.tokens for s in segments if s.kind == "text"),
        sum(s.tokens for s in segments if s.kind == "audio"),
    )


class PromptCache:
    """Remembers recent long chat prompts per served model.  Not thread-safe: the caller holds its lock."""

    def __init__(self) -> None:
        self._entries: dict[str, deque[list[Segment]]] = {}

    def lookup_and_store(self, model: str, segments: list[Segment]) -> int:
        """Cached tokens for this prompt, then remember it for later prompts."""
        prompt = total_tokens(segments)
        if prompt < CHAT_CACHE_MIN_TOKENS:
            return 0
        history = self._entries.setdefault(model, deque(maxlen=CACHE_ENTRIES_PER_MODEL))
        best = max((common_prefix_tokens(segments, earlier) for earlier in history), default=0)
        history.append(segments)
        cached = min(best, prompt) // CHAT_CACHE_INCREMENT * CHAT_CACHE_INCREMENT
        return cached if cached >= CHAT_CACHE_MIN_TOKENS else 0


def realtime_cached(previous: list[Segment] | None, current: list[Segment]) -> int:
    if not previous:
        return 0
    shared = min(common_prefix_tokens(previous, current), total_tokens(current))
    return shared // REALTIME_CACHE_INCREMENT * REALTIME_CACHE_INCREMENT


def short_hash(*parts: str, length: int = 16) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:length]
