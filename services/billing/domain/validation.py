"""Checks of request fields that are not periods; messages name the field."""

from __future__ import annotations

import re

from services.common.errors import InvalidArgument

IDENTIFIER = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def company_id(value: str) -> str:
    if not value:
        raise InvalidArgument("company_id must not be empty")
    if not IDENTIFIER.match(value):
        raise InvalidArgument("company_id must be 1-128 characters of [A-Za-z0-9._:-]")
    return value


def optional_identifier(value: str, field: str) -> str:
    if value and not IDENTIFIER.match(value):
        raise InvalidArgument(f"{field} must be 1-128 characters of [A-Za-z0-9._:-]")
    return value


def page_size(value: int) -> int:
    """AIP-158: 0 means the default, above the maximum is clamped, negative is an error."""
    if value < 0:
        raise InvalidArgument(f"page_size must not be negative, got {value}")
    return min(value or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
