"""OpenAI's organization usage and costs APIs, through the official SDK, made safe to call from a busy
tracker: every call has a timeout, a 429's Retry-After is obeyed, a circuit breaker stops hammering a
failing API, and concurrent lookups share calls.

Economy: lookups are served per aligned UTC hour ("block") of one-minute buckets, grouped by model and
project, with no model or project filter on the wire: one answer serves every operation, model and project
of that hour. An operation can use an answer fetched after it completed (plus the settle delay); answers
live `cache_seconds`; at most one call per block is in flight, and a new one starts no sooner than
`min_interval_seconds` after the previous, so a burst of N lookups costs one call and a steady stream
costs at most 60 / min_interval_seconds calls a minute per hour-block. Waiters of a failed call share its
failure instead of each retrying.

Models are matched by price family on our side rather than with the API's `models` filter, because the
API reports dated snapshots ("gpt-4o-2024-08-06") while operations may name the alias ("gpt-4o").
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import openai

from services.usage_tracker import metrics
from services.usage_tracker.domain.attribution import ReportedUsage, Window
from services.usage_tracker.domain.pricing import TokenClasses

UTC = dt.UTC
HOUR = dt.timedelta(hours=1)


class UsageApiError(Exception):
    """The API could not answer; str() is the reason recorded on a fallback record."""


@dataclass(frozen=True)
class UsageApiSettings:
    base_url: str
    admin_key: str
    timeout_seconds: float = 10.0
    cache_seconds: float = 5.0
    min_interval_seconds: float = 15.0
    settle_seconds: float = 0.0
    breaker_failures: int = 3
    breaker_cooldown_seconds: float = 30.0
    max_retry_after_seconds: float = 300.0


class CircuitBreaker:
    """Closed until `failures` consecutive failures; then open for `cooldown` seconds; then half-open,
    letting one trial call through (success closes it, failure opens it again)."""

    def __init__(self, failures: int, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._threshold = failures
        self._cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            return "half_open" if self._clock() - self._opened_at >= self._cooldown else "open"

    def allow(self) -> bool:
        with self._lock:
            if self._opened_at is None:
                return True
            if self._clock() - self._opened_at < self._cooldown or self._trial_running:
                return False
            self._trial_running = True
            return True

    def success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial_running = False
        metrics.BREAKER_OPEN.set(0)

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            self._trial_running = False
            if self._opened_at is not None or self._failures >= self._threshold:
                self._opened_at = self._clock()
                metrics.BREAKER_OPEN.set(1)


def _classes(result) -> TokenClasses:
    """One usage result as disjoint classes. Only the 2024 fields are relied on (newer ones may be
    absent); the API's input_audio_tokens is uncached audio, image and cache-write input price as text."""
    cached = result.input_cached_tokens or 0
    cached_audio = getattr(result, "input_cached_audio_tokens", None) or 0
    audio = result.input_audio_tokens or 0
    output_audio = result.output_audio_tokens or 0
    tokens = TokenClasses(
        text_input=result.input_tokens - cached - audio,
        cached_text_input=cached - cached_audio,
        audio_input=audio,
        cached_audio_input=cached_audio,
        text_output=result.output_tokens - output_audio,
        audio_output=output_audio,
    )
    if any(getattr(tokens, name) < 0 for name in TokenClasses.names()):
        raise ValueError("usage result whose subsets exceed their totals")
    return tokens


class OpenAIUsageApi:
    """Plain calls through the SDK (no retries of its own), parsed into domain values."""

    def __init__(self, settings: UsageApiSettings) -> None:
        self._client = openai.OpenAI(
            admin_api_key=settings.admin_key,
            api_key="unused-usage-api-needs-the-admin-key",
            base_url=settings.base_url,
            timeout=settings.timeout_seconds,
            max_retries=0,  # retries are this module's decision (breaker, Retry-After), not the SDK's
        )

    def usage(self, start: dt.datetime, end: dt.datetime, width: str) -> list[ReportedUsage]:
        """Usage grouped by model and project in `width` buckets ("1m" or "1h"), every page."""
        limit = {"1m": 1440, "1h": 168}[width]
        results: list[ReportedUsage] = []
        page = None
        while True:
            response = self._call(
                "usage",
                self._client.admin.organization.usage.completions,
                start_time=int(start.timestamp()),
                end_time=int(end.timestamp()),
                bucket_width=width,
                group_by=["model", "project_id"],
                limit=limit,
                **({"page": page} if page else {}),
            )
            try:
                for bucket in response.data:
                    minute = dt.datetime.fromtimestamp(bucket.start_time, UTC)
                    for result in bucket.results:
                        results.append(
                            ReportedUsage(
                                minute, result.model or "", result.project_id or "", _classes(result)
                            )
                        )
            except (AttributeError, TypeError, ValueError) as error:
                raise UsageApiError(f"usage API answer malformed: {error}") from None
            if not response.has_more or not response.next_page:
                return results
            page = response.next_page

    def costs(self, start: dt.datetime, end: dt.datetime) -> list[tuple[str, str, Decimal]]:
        """(project_id, line_item, USD) per day bucket; the float amount becomes a Decimal via str()."""
        rows: list[tuple[str, str, Decimal]] = []
        page = None
        while True:
            response = self._call(
                "costs",
                self._client.admin.organization.usage.costs,
                start_time=int(start.timestamp()),
                end_time=int(end.timestamp()),
                bucket_width="1d",
                group_by=["project_id", "line_item"],
                limit=180,
                **({"page": page} if page else {}),
            )
            try:
                for bucket in response.data:
                    for result in bucket.results:
                        # The API types the amount as a JSON number; str() keeps the digits it sent.
                        amount = Decimal(str(result.amount.value))
                        rows.append((result.project_id or "", result.line_item or "", amount))
            except (AttributeError, TypeError, ArithmeticError) as error:
                raise UsageApiError(f"costs API answer malformed: {error}") from None
            if not response.has_more or not response.next_page:
                return rows
            page = response.next_page

    @staticmethod
    def _call(endpoint: str, method, **params):
        started = time.perf_counter()
        try:
            response = method(**params)
        except openai.RateLimitError as error:
            metrics.USAGE_API_CALLS.labels(endpoint, "rate_limited").inc()
            raise RateLimited(_retry_after(error.response)) from None
        except openai.APITimeoutError:
            metrics.USAGE_API_CALLS.labels(endpoint, "timeout").inc()
            raise UsageApiError(f"{endpoint} API timed out") from None
        except openai.APIStatusError as error:
            metrics.USAGE_API_CALLS.labels(endpoint, "error").inc()
            raise UsageApiError(f"{endpoint} API answered HTTP {error.status_code}") from None
        except openai.APIError as error:
            metrics.USAGE_API_CALLS.labels(endpoint, "error").inc()
            raise UsageApiError(f"{endpoint} API unreachable: {type(error).__name__}") from None
        except ValueError:  # the SDK hands undecodable JSON through as a ValueError
            metrics.USAGE_API_CALLS.labels(endpoint, "malformed").inc()
            raise UsageApiError(f"{endpoint} API answer malformed") from None
        finally:
            metrics.USAGE_API_SECONDS.labels(endpoint).observe(time.perf_counter() - started)
        metrics.USAGE_API_CALLS.labels(endpoint, "ok").inc()
        return response


class RateLimited(UsageApiError):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"usage API rate limited (Retry-After {retry_after:g}s)")
        self.retry_after = retry_after


def _retry_after(response) -> float:
    """Seconds to wait: retry-after-ms when given, else Retry-After seconds, else 1."""
    headers = response.headers if response is not None else {}
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw:
            try:
                return max(0.0, float(raw) / scale)
            except ValueError:
                continue
    return 1.0


@dataclass
class _Block:
    """One UTC hour of one-minute usage: the last answer and the call in flight."""

    answer: list[ReportedUsage] | None = None
    answer_started: float = 0.0  # wall time the answering call started: it holds usage up to then
    in_flight: bool = False
    in_flight_started: float = 0.0
    last_started: float = 0.0
    flights: int = 0
    failure: tuple[int, UsageApiError] | None = None
    failure_at: float = 0.0
    waiters: int = 0


class UsageWindows:
    """Coalesced, cached, guarded lookups of one-minute usage for operation windows."""

    def __init__(
        self,
        api: OpenAIUsageApi,
        settings: UsageApiSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._api = api
        self._settings = settings
        self._clock = clock
        self._breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown_seconds)
        self._blocked_until = 0.0
        self._blocks: dict[dt.datetime, _Block] = {}
        self._condition = threading.Condition()

    def lookup(self, window: Window, completed_at: dt.datetime, timeout: float) -> list[ReportedUsage]:
        """The window's usage from answers fetched after `completed_at` (+ settle), or UsageApiError."""
        fresh_after = completed_at.timestamp() + self._settings.settle_seconds
        deadline = self._clock() + timeout
        if fresh_after > deadline:
            # Waiting could not help: answer at once and leave the operation to reconciliation.
            raise UsageApiError("usage for the window is not settled yet (USAGE_API_SETTLE_SECONDS)")
        results: list[ReportedUsage] = []
        block = window.start.replace(minute=0)
        while block < window.end:
            answer = self._block(block, fresh_after, deadline)
            results.extend(r for r in answer if window.start <= r.minute < window.end)
            block += HOUR
        return results

    def _block(self, start: dt.datetime, fresh_after: float, deadline: float) -> list[ReportedUsage]:
        with self._condition:
            self._prune()
            block = self._blocks.setdefault(start, _Block())
            while True:
                now = self._clock()
                if (
                    block.answer is not None
                    and block.answer_started >= fresh_after
                    and now - block.answer_started <= self._settings.cache_seconds
                ):
                    return block.answer
                if (
                    block.failure is not None
                    and not block.in_flight
                    and now - block.failure_at < self._settings.min_interval_seconds
                ):
                    # No new call would be allowed yet anyway: share the recent failure instead of waiting.
                    raise block.failure[1]
                if now >= deadline:
                    raise UsageApiError("usage API lookup timed out waiting for a shared call")
                if block.in_flight:
                    awaited = block.flights
                    self._wait(block, deadline - now)
                    if (
                        not block.in_flight
                        and block.failure is not None
                        and block.failure[0] == awaited
                        and block.in_flight_started >= fresh_after
                    ):
                        raise block.failure[1]
                    continue
                if now < fresh_after:
                    # Usage for the operation cannot be in the API before it completed (plus settling).
                    self._wait(block, min(fresh_after, deadline) - now)
                    continue
                wait = block.last_started + self._settings.min_interval_seconds - now
                if wait > 0:
                    self._wait(block, min(wait, deadline - now))
                    continue
                refusal = self._refusal(now)
                if refusal is not None:
                    metrics.USAGE_API_REFUSED.labels(refusal[0]).inc()
                    raise UsageApiError(refusal[1])
                block.in_flight = True
                block.in_flight_started = now
                block.last_started = now
                block.flights += 1
                flight = block.flights
                break
        end = min(start + HOUR, dt.datetime.fromtimestamp(int(now) + 1, UTC))
        try:
            answer = self._api.usage(start, end, "1m")
        except UsageApiError as error:
            with self._condition:
                if isinstance(error, RateLimited):
                    wait = min(error.retry_after, self._settings.max_retry_after_seconds)
                    self._blocked_until = max(self._blocked_until, self._clock() + wait)
                else:
                    self._breaker.failure()
                block.in_flight = False
                block.failure = (flight, error)
                block.failure_at = self._clock()
                self._condition.notify_all()
            raise
        with self._condition:
            self._breaker.success()
            block.in_flight = False
            block.failure = None
            block.answer = answer
            block.answer_started = now
            self._condition.notify_all()
        return answer

    def _wait(self, block: _Block, seconds: float) -> None:
        """Waits on the shared condition, counted as a waiter so that pruning keeps the block."""
        block.waiters += 1
        try:
            self._condition.wait(seconds)
        finally:
            block.waiters -= 1

    def _refusal(self, now: float) -> tuple[str, str] | None:
        if now < self._blocked_until:
            return (
                "retry_after",
                f"usage API rate limited for {self._blocked_until - now:.1f}s more (Retry-After)",
            )
        if not self._breaker.allow():
            return "breaker_open", "usage API circuit breaker open after repeated failures"
        return None

    def _prune(self) -> None:
        """Forget idle blocks whose answers expired, so memory stays bounded by the active hours."""
        horizon = self._clock() - max(self._settings.cache_seconds, self._settings.min_interval_seconds) * 2
        for key in [
            k
            for k, b in self._blocks.items()
            if not b.in_flight and not b.waiters and b.last_started < horizon
        ]:
            del self._blocks[key]
