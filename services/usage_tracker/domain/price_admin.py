"""Building price versions from untrusted input (the AddPriceVersion RPC, `prices add --file`, the seed),
with every problem named by its field, and reading the price book file format.

File format (JSON): {"versions": [{"version", "effective_time" (RFC 3339), "note", "models": [{"model",
"text_input", "cached_text_input", "text_output", "audio_input"?, "cached_audio_input"?, "audio_output"?}],
"fallback_prices": {"cv_parsing": "0.50", ...}}]}, or one such version object on its own. Prices are
decimal strings, USD per 1M tokens (fallback: per unit).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from services.common.errors import InvalidArgument
from services.usage_tracker.domain import decimals
from services.usage_tracker.domain.pricing import CATEGORIES, ModelPrice, PriceVersion
from services.usage_tracker.domain.tracking import MODEL_PATTERN

SEED_FILE = Path(__file__).with_name("price_book_seed.json")
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
REQUIRED_PRICES = ("text_input", "cached_text_input", "text_output")
AUDIO_PRICES = ("audio_input", "cached_audio_input", "audio_output")


def build_version(
    version: str,
    effective_at: dt.datetime | None,
    models: Sequence[Mapping[str, str]],
    fallback_prices: Mapping[str, str],
    note: str = "",
    prefix: str = "price_version.",
) -> PriceVersion:
    """A validated PriceVersion, or InvalidArgument naming the field."""

    def bad(field: str, problem: str) -> InvalidArgument:
        return InvalidArgument(f"{prefix}{field} {problem}")

    if not VERSION_PATTERN.match(version or ""):
        raise bad("version", "must be 1-64 characters of letters, digits and . _ -")
    if effective_at is None:
        raise bad("effective_time", "is required")
    if len(note) > 512:
        raise bad("note", "must be at most 512 characters")
    if not models:
        raise bad("models", "must not be empty")
    prices: list[ModelPrice] = []
    seen: set[str] = set()
    for index, entry in enumerate(models):
        name = entry.get("model", "")
        if not name or not MODEL_PATTERN.match(name):
            raise bad(f"models[{index}].model", "must be 1-128 characters of letters, digits and . _ : / -")
        if name in seen:
            raise bad(f"models[{index}].model", f"repeats {name}")
        seen.add(name)
        values: dict[str, Decimal | None] = {}
        for field in (*REQUIRED_PRICES, *AUDIO_PRICES):
            raw = entry.get(field, "") or ""
            if not raw:
                if field in REQUIRED_PRICES:
                    raise bad(f"models[{index}].{field}", "is required")
                values[field] = None
                continue
            values[field] = _price(raw, f"models[{index}].{field}", bad)
        prices.append(ModelPrice(model=name, **values))
    fallback: dict[str, Decimal] = {}
    for category in CATEGORIES:
        raw = fallback_prices.get(category, "")
        if not raw:
            raise bad(f"fallback_prices.{category}", "is required")
        value = _price(raw, f"fallback_prices.{category}", bad)
        if value <= 0:
            raise bad(f"fallback_prices.{category}", "must be greater than 0: a fallback is never free")
        fallback[category] = value
    unknown = set(fallback_prices) - set(CATEGORIES)
    if unknown:
        raise bad("fallback_prices", f"has unknown categories {sorted(unknown)}")
    return PriceVersion(version, effective_at, tuple(prices), fallback, note)


def _price(raw: str, field: str, bad) -> Decimal:
    try:
        value = decimals.parse(str(raw), field)
    except ValueError:
        raise bad(field, f"must be plain decimal text like 2.50, got {raw!r}") from None
    if value < 0:
        raise bad(field, "must not be negative")
    return value


def _parse_time(raw: Any, field: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(f"{field} must be an RFC 3339 time, got {raw!r}") from None
    if when.tzinfo is None:
        raise InvalidArgument(f"{field} must carry a time zone (e.g. Z)")
    return when.astimezone(dt.UTC)


def versions_from_json(text: str) -> list[PriceVersion]:
    """Price versions from the file format above."""
    try:
        body = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidArgument(f"price book file is not JSON: {error}") from None
    entries = body.get("versions") if isinstance(body, dict) and "versions" in body else [body]
    if not isinstance(entries, list) or not entries:
        raise InvalidArgument("price book file must hold a version object or {'versions': [...]}")
    result = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise InvalidArgument(f"versions[{index}] must be an object")
        prefix = f"versions[{index}]."
        result.append(
            build_version(
                str(entry.get("version", "")),
                _parse_time(entry.get("effective_time", ""), prefix + "effective_time"),
                [{k: str(v) for k, v in m.items()} for m in entry.get("models", [])],
                {k: str(v) for k, v in (entry.get("fallback_prices") or {}).items()},
                str(entry.get("note", "")),
                prefix,
            )
        )
    return result


def seed_versions() -> list[PriceVersion]:
    return versions_from_json(SEED_FILE.read_text())
