"""The CSV form of ledger rows, produced in slices of at most 64 KiB for ExportUsage."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator

from services.billing.domain.money import decimal_text
from services.usage_tracker.storage.tables import TOKEN_COLUMNS

CHUNK_BYTES = 64 * 1024

COLUMNS = (
    "record_id",
    "operation_id",
    "kind",
    "adjusts_record_id",
    "created_time",
    "started_time",
    "completed_time",
    "category",
    "job_id",
    "candidate_id",
    "model",
    "priced_model",
    "source",
    "quantity",
    "unit",
    "base_cost",
    "margin",
    "cost",
    "price_version",
    "fallback_reason",
    *TOKEN_COLUMNS,
)
# Free text a spreadsheet could mistake for a formula (CSV injection); numeric columns stay untouched.
_TEXT_COLUMNS = {"job_id", "candidate_id", "model", "priced_model", "fallback_reason", "price_version"}
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _iso(instant) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def csv_line(row: dict) -> list[str]:
    values = {
        **{name: row.get(name, "") for name in COLUMNS},
        "created_time": _iso(row["created_at"]),
        "started_time": _iso(row["started_at"]),
        "completed_time": _iso(row["completed_at"]),
        "adjusts_record_id": row.get("adjusts_record_id") or "",
        "quantity": decimal_text(row["quantity"]),
        "base_cost": decimal_text(row["base_cost"]),
        "margin": decimal_text(row["margin"]),
        "cost": decimal_text(row["cost"]),
    }
    line = []
    for name in COLUMNS:
        text = str(values[name])
        if name in _TEXT_COLUMNS and text.startswith(_FORMULA_STARTS):
            text = "'" + text
        line.append(text)
    return line


def csv_chunks(rows: Iterable[dict], chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The header, then every row, as UTF-8 bytes in slices of at most chunk_bytes."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    buffer = bytearray()

    def take(line: list[str]) -> None:
        writer.writerow(line)
        buffer.extend(text.getvalue().encode())
        text.seek(0)
        text.truncate()

    take(list(COLUMNS))
    for row in rows:
        take(csv_line(row))
        while len(buffer) >= chunk_bytes:
            yield bytes(buffer[:chunk_bytes])
            del buffer[:chunk_bytes]
    while buffer:
        yield bytes(buffer[:chunk_bytes])
        del buffer[:chunk_bytes]
