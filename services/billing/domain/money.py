"""Money as exact decimal text on the wire."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, localcontext

ZERO = Decimal(0)
_SIX_PLACES = Decimal("0.000001")


def decimal_text(value: Decimal) -> str:
    """Canonical plain text: no exponent, no trailing fractional zeros, "0" for any zero.

    The same sum reads back from PostgreSQL NUMERIC and from SQLite text with different scales; the
    canonical form makes both backends answer byte for byte the same."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def average_per_unit(total: Decimal, quantity: Decimal) -> str:
    """total / quantity rounded half-even to 6 decimal places; "0" when nothing was delivered."""
    if quantity == 0:
        return "0"
    with localcontext() as context:
        context.prec = 80  # exact enough for any ledger total; quantize must not overflow the context
        return format((total / quantity).quantize(_SIX_PLACES, rounding=ROUND_HALF_EVEN), "f")
