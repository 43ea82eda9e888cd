"""List prices of the models the simulator serves, and exact cost arithmetic.

The table is data (copied from ``shared/reference/pricing-and-peers.md``, USD per 1M tokens), not logic:
a price change is a one-line edit here.  Amounts are :class:`~decimal.Decimal` end to end; only the costs
API's JSON ``amount.value`` turns them into a float, because the spec types it as ``number``.

Models resolve like the product's price book must: exact match first, then the longest known prefix, so a
dated snapshot (``gpt-4o-2024-08-06``) prices as its family while ``gpt-4o-mini`` never falls through to
``gpt-4o``: it has an entry of its own, which is the longer prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

PER_TOKEN = Decimal(1_000_000)


@dataclass(frozen=True)
class ModelPrice:
    """USD per 1M tokens for each disjoint token class; ``None`` where the model has no such class."""

    text_in: Decimal
    cached_text_in: Decimal
    text_out: Decimal
    audio_in: Decimal | None = None
    cached_audio_in: Decimal | None = None
    audio_out: Decimal | None = None


def _p(*values: str | None) -> ModelPrice:
    return ModelPrice(*(Decimal(v) if v is not None else None for v in values))


PRICES: dict[str, ModelPrice] = {
    "gpt-4o": _p("2.50", "1.25", "10.00"),
    "gpt-4o-mini": _p("0.15", "0.075", "0.60"),
    "gpt-4o-realtime-preview": _p("5.00", "2.50", "20.00", "40.00", "2.50", "80.00"),
    "gpt-4o-mini-realtime-preview": _p("0.60", "0.30", "2.40", "10.00", "0.30", "20.00"),
    "gpt-realtime": _p("4.00", "0.40", "16.00", "32.00", "0.40", "64.00"),
}

# What an alias is served as.  The real API answers with the dated snapshot in the response's ``model``
# field and in the usage API; the simulator does the same so callers learn to key on the served name.
SNAPSHOTS: dict[str, str] = {
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o-realtime-preview": "gpt-4o-realtime-preview-2024-12-17",
    "gpt-4o-mini-realtime-preview": "gpt-4o-mini-realtime-preview-2024-12-17",
    "gpt-realtime": "gpt-realtime-2025-08-28",
}

REALTIME_FAMILIES = frozenset({"gpt-realtime", "gpt-4o-realtime-preview", "gpt-4o-mini-realtime-preview"})

# (token-class attribute of a usage record, line-item suffix, price attribute), in the costs API's order.
LINE_ITEMS: tuple[tuple[str, str, str], ...] = (
    ("input_text_tokens", "input", "text_in"),
    ("input_cached_text_tokens", "cached input", "cached_text_in"),
    ("output_text_tokens", "output", "text_out"),
    ("input_audio_tokens", "audio input", "audio_in"),
    ("input_cached_audio_tokens", "cached audio input", "cached_audio_in"),
    ("output_audio_tokens", "audio output", "audio_out"),
)


def resolve_family(model: str) -> str | None:
    """The price-table key for ``model``: exact, else the longest known prefix, else ``None``."""
    if model in PRICES:
        return model
    matches = [family for family in PRICES if model.startswith(family + "-")]
    return max(matches, key=len) if matches else None


def price_for(model: str) -> ModelPrice | None:
    family = resolve_family(model)
    return PRICES[family] if family else None


def served_model(requested: str) -> str:
    """The name a request for ``requested`` is served (and recorded) as."""
    return SNAPSHOTS.get(requested, requested)


def is_realtime(model: str) -> bool:
    return resolve_family(model) in REALTIME_FAMILIES


def line_item_costs(model: str, tokens: dict[str, int]) -> list[tuple[str, int, Decimal]]:
    """``(line_item, quantity, amount)`` for every non-zero token class of one usage record.

    Raises ``KeyError`` for an unpriced model or a token class the model has no price for: the simulator
    refuses such usage at the door, so reaching this with one is a bug, not a $0 line.
    """
    price = price_for(model)
    if price is None:
        raise KeyError(f"no price for model {model!r}")
    items = []
    for attr, suffix, price_attr in LINE_ITEMS:
        quantity = tokens.get(attr, 0)
        if not quantity:
            continue
        per_million = getattr(price, price_attr)
        if per_million is None:
            raise KeyError(f"model {model!r} has no {suffix!r} price")
        items.append((f"{model}, {suffix}", quantity, per_million * quantity / PER_TOKEN))
    return items
