"""Identifier rules shared by every request, and the ids recruiting mints."""

from __future__ import annotations

import re
import uuid

from services.common.errors import InvalidArgument

ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def check_id(field: str, value: str, *, required: bool = True) -> str:
    """Returns value when it is a valid identifier (or empty and optional); InvalidArgument names the field."""
    if not value:
        if required:
            raise InvalidArgument(f"{field} must not be empty")
        return value
    if not ID_PATTERN.fullmatch(value):
        raise InvalidArgument(f"{field} must be 1-128 characters of [A-Za-z0-9._:-]")
    return value


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"
