"""The simulator's in-memory state: the served-usage record, faults, counters, the clock.

Every mutation and every read that must be consistent happens under one :class:`threading.Lock`: the ASGI
app runs on uvicorn's event loop while test helpers and admin calls may arrive from other threads, and the
critical sections are all short (no I/O under the lock).
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .tokens import PromptCache, short_hash

ENDPOINTS = ("chat", "usage", "costs", "client_secrets", "realtime")
FAULT_MODES = ("rate_limit", "error", "slow", "malformed", "hang", "lag")
HANG_MAX_SECONDS = 120.0
DEFAULT_PROJECT = "proj_default"

TOKEN_FIELDS = (
    "input_text_tokens",  # uncached text input
    "input_cached_text_tokens",
    "input_audio_tokens",  # uncached audio input
    "input_cached_audio_tokens",
    "output_text_tokens",
    "output_audio_tokens",
)


def api_key_id(key: str) -> str:
    """A stable, non-reversible id for a bearer key, in the shape the usage API reports (``key_...``)."""
    return "key_" + short_hash(key)


@dataclass
class UsageRecord:
    """One served (or injected) model request, with disjoint token classes.

    ``time`` is the simulated Unix second it was served at (what the usage API buckets on); ``served_at`` is
    the real wall-clock time, which the ``lag`` fault compares against so lag works even under a pinned clock.
    """

    id: str
    time: int
    served_at: float
    source: str  # "chat", "realtime" or "injected"
    model: str
    project_id: str
    api_key_id: str
    user_id: str | None
    batch: bool = False
    service_tier: str = "default"
    input_text_tokens: int = 0
    input_cached_text_tokens: int = 0
    input_audio_tokens: int = 0
    input_cached_audio_tokens: int = 0
    output_text_tokens: int = 0
    output_audio_tokens: int = 0
    num_model_requests: int = 1

    @property
    def input_cached_tokens(self) -> int:
        return self.input_cached_text_tokens + self.input_cached_audio_tokens

    @property
    def input_uncached_tokens(self) -> int:
        return self.input_text_tokens + self.input_audio_tokens

    @property
    def input_tokens(self) -> int:
        return self.input_cached_tokens + self.input_uncached_tokens

    @property
    def output_tokens(self) -> int:
        return self.output_text_tokens + self.output_audio_tokens

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body.update(
            input_tokens=self.input_tokens,
            input_cached_tokens=self.input_cached_tokens,
            input_uncached_tokens=self.input_uncached_tokens,
            output_tokens=self.output_tokens,
        )
        return body


@dataclass
class Fault:
    mode: str
    params: dict[str, float] = field(default_factory=dict)
    remaining: int | None = None  # requests left before it clears itself; None = until cleared

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "params": self.params, "remaining": self.remaining}


def parse_fault(endpoint: str, mode: str, params: dict[str, Any], count: Any = None) -> Fault:
    """Validate a fault definition (from the admin API or a ``--fault`` flag)."""
    if endpoint not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}; expected one of {', '.join(ENDPOINTS)}")
    if mode == "lag" and endpoint not in ("usage", "costs"):
        raise ValueError("lag applies to the usage and costs endpoints only")
    if mode not in FAULT_MODES:
        raise ValueError(f"unknown fault mode {mode!r}; expected one of {', '.join(FAULT_MODES)}")
    allowed = {
        "rate_limit": {"retry_after"},
        "error": {"status"},
        "slow": {"seconds"},
        "malformed": set(),
        "hang": {"seconds"},
        "lag": {"seconds"},
    }[mode]
    unknown = set(params) - allowed
    if unknown:
        raise ValueError(
            f"fault {mode!r} takes no parameter(s) {sorted(unknown)}; allowed: {sorted(allowed)}"
        )
    try:
        values = {name: float(value) for name, value in params.items()}
    except (TypeError, ValueError):
        raise ValueError(f"fault {mode!r} parameters must be numbers") from None
    if any(v < 0 for v in values.values()):
        raise ValueError("fault parameters must not be negative")
    if mode == "error" and not 500 <= values.get("status", 500) <= 599:
        raise ValueError("error.status must be a 5xx status")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
        raise ValueError("count must be a positive integer")
    return Fault(mode, values, int(count) if count is not None else None)


def parse_fault_flag(flag: str) -> tuple[str, Fault]:
    """``usage=rate_limit:retry_after=2,count=3`` -> ("usage", Fault(...))."""
    endpoint, _, spec = flag.partition("=")
    if endpoint not in ENDPOINTS or not spec:
        raise ValueError(f"--fault wants ENDPOINT=MODE[:k=v,...] with ENDPOINT one of {', '.join(ENDPOINTS)}")
    mode, _, raw = spec.partition(":")
    params = dict(pair.split("=", 1) for pair in raw.split(",") if pair) if raw else {}
    count = params.pop("count", None)
    if count is not None and not count.isdigit():
        raise ValueError(f"--fault count must be a positive integer, got {count!r}")
    return endpoint, parse_fault(endpoint, mode, params, int(count) if count is not None else None)


class SimState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._ids = itertools.count(1)
        self.records: list[UsageRecord] = []
        self.faults: dict[str, Fault] = {}
        self.fault_generation = 0  # bumped on every fault change, so a hang can end early
        self.requests: dict[str, int] = dict.fromkeys(ENDPOINTS, 0)
        self.faults_applied: dict[str, int] = dict.fromkeys(ENDPOINTS, 0)
        self.prompt_cache = PromptCache()
        self.client_secrets: dict[str, dict[str, Any]] = {}
        self.pinned_now: int | None = None

    # -- clock -------------------------------------------------------------------------------------------
    def now(self) -> int:
        pinned = self.pinned_now
        return pinned if pinned is not None else int(time.time())

    def set_clock(self, now: int | None) -> None:
        with self.lock:
            self.pinned_now = now

    # -- ids ---------------------------------------------------------------------------------------------
    def new_id(self, prefix: str, length: int = 24) -> str:
        """Deterministic ids: a hash of a counter that restarts at reset."""
        with self.lock:
            n = next(self._ids)
        return f"{prefix}{short_hash(prefix, str(n), length=length)}"

    # -- usage record ------------------------------------------------------------------------------------
    def add_record(self, record: UsageRecord) -> None:
        with self.lock:
            self.records.append(record)

    def snapshot(self, lag_seconds: float = 0.0) -> list[UsageRecord]:
        """Records visible to the usage/costs APIs: with a lag, only those served long enough ago."""
        cutoff = time.time() - lag_seconds
        with self.lock:
            return [r for r in self.records if not lag_seconds or r.served_at <= cutoff]

    # -- faults and counters -----------------------------------------------------------------------------
    def count_request(self, endpoint: str) -> None:
        with self.lock:
            self.requests[endpoint] += 1

    def set_fault(self, endpoint: str, fault: Fault) -> None:
        with self.lock:
            self.faults[endpoint] = fault
            self.fault_generation += 1

    def clear_faults(self, endpoint: str | None = None) -> None:
        with self.lock:
            if endpoint is None:
                self.faults.clear()
            else:
                self.faults.pop(endpoint, None)
            self.fault_generation += 1

    def take_fault(self, endpoint: str) -> Fault | None:
        """The fault to apply to this request (consuming one of its ``count``), or ``None``."""
        with self.lock:
            fault = self.faults.get(endpoint)
            if fault is None:
                return None
            self.faults_applied[endpoint] += 1
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    del self.faults[endpoint]
                    self.fault_generation += 1
            return fault

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": dict(self.requests),
                "faults_applied": dict(self.faults_applied),
                "faults": {name: fault.to_json() for name, fault in self.faults.items()},
                "records": len(self.records),
                "clock": self.pinned_now,
            }

    def reset(self) -> None:
        """Forget everything: usage, faults, counters, caches, secrets, the pinned clock."""
        with self.lock:
            self._ids = itertools.count(1)
            self.records.clear()
            self.faults.clear()
            self.fault_generation += 1
            self.requests = dict.fromkeys(ENDPOINTS, 0)
            self.faults_applied = dict.fromkeys(ENDPOINTS, 0)
            self.prompt_cache = PromptCache()
            self.client_secrets.clear()
            self.pinned_now = None
