"""Attributing usage-API tokens to an operation that arrived without usage.

The usage API reports tokens per minute bucket, model and project, not per operation. The rule, chosen so
that DESIGN.md's invariant holds by construction:

1. An operation's window is the whole minutes covering [started_time, completed_time].
2. Reported = the tokens the API reports in those minutes for models of the operation's price family
   (gpt-4o-2024-08-06 counts for gpt-4o), and for its OpenAI project when it names one.
3. Held = the tokens already held by ledger records (response_usage and usage_api records, and
   reconciliation adjustments) of the same family and project filter whose windows overlap this one.
   Counting overlapping records in full errs towards attributing less, never more.
4. The operation gets the unattributed remainder, Reported - Held, per disjoint token class. Operations
   that resolved from the same API answer with the same window share that remainder fairly: the first
   of k pending claimants takes 1/k of what is left, the next 1/(k-1) of what is then left, and so on,
   so together they take exactly the remainder and each pays for its share.
5. A remainder of zero tokens (nothing reported, or everything already held) is not priced at $0: the
   operation falls back to the flat price, flagged, for reconciliation to true up.

Held and the insert happen in one serialised transaction, so concurrent claimants never both see the
same remainder.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from services.usage_tracker.domain.pricing import TokenClasses, sum_classes

MINUTE = dt.timedelta(minutes=1)


def floor_minute(when: dt.datetime) -> dt.datetime:
    return when.replace(second=0, microsecond=0)


@dataclass(frozen=True)
class Window:
    """Whole UTC minutes, start inclusive, end exclusive."""

    start: dt.datetime
    end: dt.datetime

    @classmethod
    def covering(cls, started: dt.datetime, completed: dt.datetime) -> Window:
        return cls(floor_minute(started), floor_minute(completed) + MINUTE)


@dataclass(frozen=True)
class ReportedUsage:
    """One usage-API result: a minute bucket, the model and project it was grouped by, its tokens."""

    minute: dt.datetime
    model: str
    project_id: str
    tokens: TokenClasses


def reported_in(
    results: Iterable[ReportedUsage],
    window: Window,
    family: str,
    family_of: Callable[[str], str | None],
    project_id: str,
) -> TokenClasses:
    """Rule 2: the window's reported tokens for a price family (and project, when given)."""
    return sum_classes(
        [
            r.tokens
            for r in results
            if window.start <= r.minute < window.end
            and family_of(r.model) == family
            and (not project_id or r.project_id == project_id)
        ]
    )


def claim(reported: TokenClasses, held: TokenClasses, pending_claimants: int) -> TokenClasses:
    """Rules 3-4: this claimant's part of the unattributed remainder."""
    remainder = reported.minus(held)
    if pending_claimants <= 1:
        return remainder
    return remainder.share(pending_claimants)
