"""Opaque page tokens for ListUsageRecords, bound to the company and the filter they were issued for.

A token is base64url(JSON position) "." base64url(HMAC-SHA256(key, company, filter, JSON position)). The
position is the (completed_at, id) of the last row of the page, so the next page is a keyset seek: stable
while rows are appended, cheap at any depth. Because company and filter are inside the MAC, a token replayed
for another company or another filter, or edited in any way, fails verification: INVALID_ARGUMENT.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json

from services.billing.domain.model import Position
from services.common.errors import InvalidArgument

_VERSION = 1
_MAX_LENGTH = 512


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PageTokens:
    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("a page token secret is required")
        # A key of its own, derived from the secret, so the token MAC never equals anything else signed with it.
        self._key = hashlib.sha256(b"hiremeter.billing.page_token\x00" + secret.encode()).digest()

    def _mac(self, company_id: str, binding: str, payload: bytes) -> bytes:
        message = b"\x00".join((company_id.encode(), binding.encode(), payload))
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def issue(self, company_id: str, binding: str, position: Position) -> str:
        payload = json.dumps(
            {"v": _VERSION, "t": position.completed_at.isoformat(), "i": position.row_id},
            separators=(",", ":"),
        ).encode()
        return f"{_b64(payload)}.{_b64(self._mac(company_id, binding, payload))}"

    def open(self, company_id: str, binding: str, token: str) -> Position:
        """The position a token carries; INVALID_ARGUMENT unless it was issued for this company and filter."""
        invalid = InvalidArgument(
            "page_token is invalid or was issued for another company or filter; start again without it"
        )
        if len(token) > _MAX_LENGTH or token.count(".") != 1:
            raise invalid
        encoded_payload, encoded_mac = token.split(".")
        try:
            payload, mac = _unb64(encoded_payload), _unb64(encoded_mac)
        except (binascii.Error, ValueError):
            raise invalid from None
        if not hmac.compare_digest(mac, self._mac(company_id, binding, payload)):
            raise invalid
        try:
            data = json.loads(payload)
            if data["v"] != _VERSION:
                raise invalid
            completed_at = dt.datetime.fromisoformat(data["t"])
            row_id = data["i"]
        except (ValueError, KeyError, TypeError):
            raise invalid from None
        if completed_at.tzinfo is None or not isinstance(row_id, int):
            raise invalid
        return Position(completed_at.astimezone(dt.UTC), row_id)
