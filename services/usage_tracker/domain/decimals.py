"""Exact decimal text: how every amount leaves the tracker, and how decimal input is read.

Canonical form (the wire, CLI output and report JSON): plain positional notation, never an exponent,
trailing fractional zeros stripped, no trailing point, zero is "0" (never "-0"). So 0.00875 is "0.00875",
12.50 is "12.5", 100 is "100". Formatting is exact: no rounding, whatever the number of digits.
"""

from __future__ import annotations

import re
from decimal import Context, Decimal, InvalidOperation

# Money arithmetic never rounds in practice: token counts (<= 1e10) times per-million prices stay far
# below 60 significant digits, so this context only guards against the 28-digit default.
EXACT = Context(prec=60)

_PLAIN_DECIMAL = re.compile(r"^-?\d{1,18}(\.\d{1,18})?$")


def canonical(value: Decimal) -> str:
    """The canonical text of an exact decimal (see the module docstring)."""
    if not value.is_finite():
        raise ValueError(f"not a finite decimal: {value}")
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("-0", ""):
        return "0"
    return text


def parse(text: str, field: str) -> Decimal:
    """A plain decimal ("4.5", "0.25"); exponents, NaN, infinities and stray characters are refused.

    Raises ValueError whose message names the field.
    """
    raw = text.strip()
    if not _PLAIN_DECIMAL.match(raw):
        raise ValueError(f"{field} must be plain decimal text like 4.5, got {text!r}")
    try:
        return Decimal(raw)
    except InvalidOperation:
        raise ValueError(f"{field} must be plain decimal text like 4.5, got {text!r}") from None


def per_million(tokens: int, price: Decimal) -> Decimal:
    """tokens x (USD per 1M tokens), exactly."""
    return EXACT.multiply(Decimal(tokens), price).scaleb(-6, EXACT)


def with_margin(base: Decimal, margin: Decimal) -> Decimal:
    """cost = base x (1 + margin), exactly."""
    return EXACT.multiply(base, EXACT.add(Decimal(1), margin))
