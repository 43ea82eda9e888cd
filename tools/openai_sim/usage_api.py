"""The organization usage and costs APIs, computed from the served-usage record.

Pure functions of (query, records, now): the HTTP layer parses the query string into a :class:`Query` (or a
:class:`QueryError` naming the bad parameter) and renders the returned dict as JSON.

Bucket alignment follows the recorded behaviour of the real API: the first bucket starts exactly at
``start_time`` and ends at the next whole UTC minute/hour/day, middle buckets are whole units, the last one
ends at ``end_time`` (default: now, see :func:`buckets`).  ``limit`` counts buckets; ``next_page`` is an opaque cursor holding the
start of the next bucket (``page_`` + base64 of two big-endian 64-bit integers: that start and the query's
``start_time``, so a cursor from another query is refused).
"""

from __future__ import annotations

import base64
import struct
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .prices import line_item_costs
from .state import TOKEN_FIELDS, UsageRecord

WIDTHS = {"1m": 60, "1h": 3600, "1d": 86400}
USAGE_LIMITS = {"1m": (60, 1440), "1h": (24, 168), "1d": (7, 31)}  # (default, maximum)
COSTS_LIMITS = (7, 180)
USAGE_GROUPS = ("project_id", "user_id", "api_key_id", "model", "batch", "service_tier")
COSTS_GROUPS = ("project_id", "line_item", "api_key_id")
USAGE_FILTERS = {
    "project_ids": "project_id",
    "user_ids": "user_id",
    "api_key_ids": "api_key_id",
    "models": "model",
}
COSTS_FILTERS = {"project_ids": "project_id", "api_key_ids": "api_key_id"}


class QueryError(ValueError):
    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class Query:
    start_time: int
    end_time: int | None
    width: int
    limit: int
    group_by: tuple[str, ...]
    filters: dict[str, frozenset[str]]
    batch: bool | None
    page_start: int | None
    line_items: frozenset[str] | None = None


def _values(params: Any, name: str) -> list[str]:
    """Both array encodings: ``name=a&name=b`` (the spec's form/explode) and ``name[]=a`` (the SDK's)."""
    values = [*params.getlist(name), *params.getlist(name + "[]")]
    # A comma-joined single value is what some hand-written clients send; accept it too.
    return [part for value in values for part in value.split(",") if part]


def _int(params: Any, name: str, required: bool = False) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        if required:
            raise QueryError(f"Missing required parameter: '{name}'.", name)
        return None
    try:
        return int(raw)
    except ValueError:
        raise QueryError(f"Invalid value for '{name}': expected an integer, got {raw!r}.", name) from None


def parse_query(params: Any, *, costs: bool) -> Query:
    start_time = _int(params, "start_time", required=True)
    end_time = _int(params, "end_time")
    if end_time is not None and end_time <= start_time:
        raise QueryError("'end_time' must be greater than 'start_time'.", "end_time")
    bucket_width = params.get("bucket_width") or "1d"
    allowed_widths = ("1d",) if costs else tuple(WIDTHS)
    if bucket_width not in allowed_widths:
        raise QueryError(
            f"Invalid value for 'bucket_width': {bucket_width!r}; expected one of {', '.join(allowed_widths)}.",
            "bucket_width",
        )
    default_limit, max_limit = COSTS_LIMITS if costs else USAGE_LIMITS[bucket_width]
    limit = _int(params, "limit")
    if limit is None:
        limit = default_limit
    if not 1 <= limit <= max_limit:
        raise QueryError(
            f"Invalid value for 'limit': {limit}; with bucket_width={bucket_width} it must be between 1 and {max_limit}.",
            "limit",
        )
    groups_allowed = COSTS_GROUPS if costs else USAGE_GROUPS
    group_by = _values(params, "group_by")
    for group in group_by:
        if group not in groups_allowed:
            raise QueryError(
                f"Invalid value for 'group_by': {group!r}; expected any of {', '.join(groups_allowed)}.",
                "group_by",
            )
    filter_names = COSTS_FILTERS if costs else USAGE_FILTERS
    filters = {field: frozenset(v) for name, field in filter_names.items() if (v := _values(params, name))}
    batch = None
    if not costs and params.get("batch") not in (None, ""):
        raw = params["batch"].lower()
        if raw not in ("true", "false", "1", "0"):
            raise QueryError(
                f"Invalid value for 'batch': {params['batch']!r}; expected true or false.", "batch"
            )
        batch = raw in ("true", "1")
    line_items = frozenset(_values(params, "line_items")) if costs and _values(params, "line_items") else None
    page_start = _decode_page(params.get("page"), start_time) if params.get("page") else None
    return Query(
        start_time=start_time,
        end_time=end_time,
        width=WIDTHS[bucket_width],
        limit=limit,
        group_by=tuple(dict.fromkeys(group_by)),
        filters=filters,
        batch=batch,
        page_start=page_start,
        line_items=line_items,
    )


def _encode_page(next_start: int, start_time: int) -> str:
    return "page_" + base64.b64encode(struct.pack(">qq", next_start, start_time)).decode()


def _decode_page(page: str, start_time: int) -> int:
    try:
        if not page.startswith("page_"):
            raise ValueError
        next_start, origin = struct.unpack(">qq", base64.b64decode(page[5:], validate=True))
    except (ValueError, struct.error):
        raise QueryError(f"Invalid value for 'page': {page!r}.", "page") from None
    if origin != start_time or next_start < start_time:
        raise QueryError("'page' does not belong to this query (start_time differs).", "page")
    return next_start


def buckets(query: Query, now: int) -> tuple[list[tuple[int, int]], int | None]:
    """The page's ``(start, end)`` buckets and the start of the next page's first bucket (or ``None``).

    Without ``end_time`` the range ends *after* the current second (``now + 1``, the bound being exclusive),
    so usage served a moment ago is already reported, as a caller querying "up to now" expects.
    """
    end = query.end_time if query.end_time is not None else now + 1
    start = query.page_start if query.page_start is not None else query.start_time
    result: list[tuple[int, int]] = []
    while start < end and len(result) < query.limit:
        boundary = min((start // query.width + 1) * query.width, end)
        result.append((start, boundary))
        start = boundary
    return result, (start if start < end else None)


def _matches(record: UsageRecord, query: Query) -> bool:
    if query.batch is not None and record.batch != query.batch:
        return False
    return all(getattr(record, field) in allowed for field, allowed in query.filters.items())


def _page(query: Query, now: int, records: list[UsageRecord], result_rows) -> dict[str, Any]:
    spans, next_start = buckets(query, now)
    starts = [s for s, _ in spans]
    per_bucket: dict[int, list[UsageRecord]] = defaultdict(list)
    if spans:
        first, last = spans[0][0], spans[-1][1]
        for record in records:
            if first <= record.time < last and _matches(record, query):
                per_bucket[bisect_right(starts, record.time) - 1].append(record)
    data = [
        {"object": "bucket", "start_time": s, "end_time": e, "results": result_rows(per_bucket.get(i, []))}
        for i, (s, e) in enumerate(spans)
    ]
    return {
        "object": "page",
        "data": data,
        "has_more": next_start is not None,
        "next_page": _encode_page(next_start, query.start_time) if next_start is not None else None,
    }


def usage_page(query: Query, records: list[UsageRecord], now: int) -> dict[str, Any]:
    def rows(bucket_records: list[UsageRecord]) -> list[dict[str, Any]]:
        groups: dict[tuple, list[UsageRecord]] = defaultdict(list)
        for record in bucket_records:
            groups[tuple(getattr(record, g) for g in query.group_by)].append(record)
        return [
            _usage_result(query.group_by, key, members)
            for key, members in sorted(groups.items(), key=_sort_key)
        ]

    return _page(query, now, records, rows)


def _sort_key(item: tuple[tuple, Any]) -> tuple:
    return tuple((value is None, str(value)) for value in item[0])


def _usage_result(group_by: tuple[str, ...], key: tuple, records: list[UsageRecord]) -> dict[str, Any]:
    def total(name: str) -> int:
        return sum(getattr(r, name) for r in records)

    cached_text, cached_audio = total("input_cached_text_tokens"), total("input_cached_audio_tokens")
    text, audio = total("input_text_tokens"), total("input_audio_tokens")
    out_text, out_audio = total("output_text_tokens"), total("output_audio_tokens")
    grouped = dict(zip(group_by, key, strict=True))
    return {
        "object": "organization.usage.completions.result",
        "input_tokens": cached_text + cached_audio + text + audio,
        "input_cached_tokens": cached_text + cached_audio,
        "input_cache_write_tokens": 0,
        "input_uncached_tokens": text + audio,
        "output_tokens": out_text + out_audio,
        "input_text_tokens": text,
        "output_text_tokens": out_text,
        "input_cached_text_tokens": cached_text,
        "input_audio_tokens": audio,
        "input_cached_audio_tokens": cached_audio,
        "output_audio_tokens": out_audio,
        "input_image_tokens": 0,
        "input_cached_image_tokens": 0,
        "output_image_tokens": 0,
        "num_model_requests": total("num_model_requests"),
        **{field: grouped.get(field) for field in USAGE_GROUPS},
    }


def costs_page(query: Query, records: list[UsageRecord], now: int) -> dict[str, Any]:
    def rows(bucket_records: list[UsageRecord]) -> list[dict[str, Any]]:
        amounts: dict[tuple, Decimal] = defaultdict(Decimal)
        quantities: dict[tuple, int] = defaultdict(int)
        for record in bucket_records:
            tokens = {name: getattr(record, name) for name in TOKEN_FIELDS}
            for line_item, quantity, amount in line_item_costs(record.model, tokens):
                if query.line_items is not None and line_item not in query.line_items:
                    continue
                values = {
                    "project_id": record.project_id,
                    "api_key_id": record.api_key_id,
                    "line_item": line_item,
                }
                key = tuple(values[g] for g in query.group_by)
                amounts[key] += amount
                quantities[key] += quantity
        return [
            _costs_result(query.group_by, key, amount, quantities[key])
            for key, amount in sorted(amounts.items(), key=_sort_key)
        ]

    return _page(query, now, records, rows)


def _costs_result(group_by: tuple[str, ...], key: tuple, amount: Decimal, quantity: int) -> dict[str, Any]:
    grouped = dict(zip(group_by, key, strict=True))
    by_line_item = "line_item" in grouped
    return {
        "object": "organization.costs.result",
        # The spec types value as a JSON number; the sum above is exact, this is its nearest float.
        "amount": {"value": float(amount), "currency": "usd"},
        "line_item": grouped.get("line_item"),
        "project_id": grouped.get("project_id"),
        "api_key_id": grouped.get("api_key_id"),
        "quantity": quantity if by_line_item else None,
        "quantity_unit": "tokens" if by_line_item else None,
    }
