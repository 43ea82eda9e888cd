"""OpenAI through the official SDK: Structured Outputs chat completions and Realtime client secrets.

Every call has a timeout (the configured one, shortened to the caller's remaining gRPC deadline), and every
SDK error becomes a domain error with a clear status:

    RateLimitError (429)               -> RESOURCE_EXHAUSTED, retry_after_seconds from Retry-After
    APITimeoutError                    -> DEADLINE_EXCEEDED
    APIConnectionError, 5xx, malformed -> UNAVAILABLE
    BadRequestError (400, 422)         -> INVALID_ARGUMENT (the request derives from the caller's input)
    other statuses (401, 403, 404...)  -> INTERNAL via UpstreamError: our configuration is wrong

A refusal or a reply that is not what the schema promised is not an SDK error: the completion is returned
with its usage, so the caller can meter the spent tokens before failing.

Retries are ours, not the SDK's (its max_retries is 0): the same statuses are retried (408, 409, 429, 5xx,
timeouts, connection errors) with the SDK's backoff (0.5 s doubling, capped at MAX_RETRY_DELAY, Retry-After
honoured up to that cap), never past the caller's deadline. Doing it here lets every error say whether the call
MAY HAVE SPENT TOKENS across all its attempts (`may_have_spent`): a request OpenAI never received (connection
refused, connect timeout) or refused before doing any work (any 4xx, including 429) spent nothing; a timeout
after the request was sent, a lost reply, a 5xx or a malformed 200 may have. The service bills the former never
and the latter always (see service.py).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import httpx2
import openai

from services.common.errors import (
    DeadlineExceeded,
    DomainError,
    InvalidArgument,
    ResourceExhausted,
    Unavailable,
)
from services.recruiting.domain.usage import TokenCounts, from_chat_usage

log = logging.getLogger("hiremeter.recruiting.openai")

T = TypeVar("T")

INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
RETRY_STATUSES = {408, 409, 429}
_NEVER_SENT = (httpx2.ConnectError, httpx2.ConnectTimeout)


class UpstreamError(DomainError):
    """OpenAI refused us for a reason the caller cannot fix (credentials, permissions, unknown model)."""

    code = grpc.StatusCode.INTERNAL


@dataclass(frozen=True)
class OpenAISettings:
    api_key: str
    base_url: str
    project_id: str
    timeout_seconds: float
    max_retries: int
    resume_model: str
    questions_model: str
    realtime_model: str


@dataclass(frozen=True)
class Completion:
    """What a Structured Outputs call returned: the content or the refusal, the served model and the usage."""

    content: str | None
    refusal: str | None
    finish_reason: str | None
    model: str
    usage: TokenCounts | None
    started_at: dt.datetime
    completed_at: dt.datetime


@dataclass(frozen=True)
class ClientSecret:
    value: str
    expires_at: dt.datetime
    session_id: str
    model: str


def may_have_spent(error: BaseException) -> bool:
    """Whether the OpenAI call that ended in `error` may have consumed tokens (True when unsure). Set on the
    domain errors this module raises; anything else (a bug) is assumed to have spent."""
    return getattr(error, "openai_may_have_spent", True)


def _attempt_may_have_spent(error: Exception) -> bool:
    """One failed attempt: could OpenAI have done (and billed) work for it?"""
    if isinstance(error, openai.APIConnectionError):  # includes APITimeoutError
        cause = error.__cause__
        return not isinstance(cause, _NEVER_SENT)  # never connected: nothing was sent
    if isinstance(error, openai.APIStatusError):
        return error.status_code >= 500  # a 4xx (429 included) is refused before any work
    return True  # a malformed 200 and the unexpected: assume the tokens were spent


def _retry_delay(error: Exception, attempt: int) -> float | None:
    """Seconds before the next attempt, or None when `error` is not worth retrying."""
    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        if status not in RETRY_STATUSES and status < 500:
            return None
        retry_after = _retry_after(error)
        if retry_after is not None:
            return retry_after if 0 <= retry_after <= MAX_RETRY_DELAY else None
    elif not isinstance(error, openai.APIConnectionError):
        return None  # malformed replies are not retried (the tokens are spent already)
    return min(INITIAL_RETRY_DELAY * 2**attempt, MAX_RETRY_DELAY) * (1 - 0.25 * random.random())


def _retry_after(error: openai.APIStatusError) -> float | None:
    headers = error.response.headers if error.response is not None else {}
    milliseconds = headers.get("retry-after-ms")
    try:
        if milliseconds:
            return float(milliseconds) / 1000
        seconds = headers.get("retry-after")
        return float(seconds) if seconds else None
    except ValueError:
        return None


def translate(error: Exception, what: str) -> DomainError:
    """The domain error for an SDK exception (see the module docstring)."""
    if isinstance(error, openai.RateLimitError):
        return ResourceExhausted(
            f"OpenAI rate limit reached during {what}; retry later",
            retry_after_seconds=_retry_after(error) or 1.0,
        )
    if isinstance(error, openai.APITimeoutError):
        return DeadlineExceeded(f"OpenAI did not answer {what} in time")
    if isinstance(error, openai.APIConnectionError):
        return Unavailable(f"OpenAI is unreachable for {what}")
    if isinstance(error, openai.InternalServerError):
        return Unavailable(f"OpenAI failed {what} (status {error.status_code}); retry later")
    if isinstance(error, openai.BadRequestError | openai.UnprocessableEntityError):
        message = getattr(error, "message", "") or str(error)
        return InvalidArgument(f"OpenAI rejected {what}: {message[:300]}")
    if isinstance(error, openai.APIStatusError):
        log.error("OpenAI refused %s with status %s: %s", what, error.status_code, error)
        return UpstreamError(f"OpenAI refused {what} (status {error.status_code})")
    if isinstance(error, openai.APIResponseValidationError | ValueError):
        return Unavailable(f"OpenAI returned a malformed response for {what}")
    return Unavailable(f"OpenAI call for {what} failed")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class OpenAIClient:
    def __init__(self, settings: OpenAISettings) -> None:
        self.settings = settings
        self._client = openai.OpenAI(
            api_key=settings.api_key,
            base_url=settings.base_url,
            project=settings.project_id or None,
            timeout=settings.timeout_seconds,
            max_retries=0,  # ours: see _call
        )

    def close(self) -> None:
        self._client.close()

    def max_call_seconds(self) -> float:
        """The longest one call can take: every attempt timing out, every backoff at its cap."""
        retries = self.settings.max_retries
        return self.settings.timeout_seconds * (retries + 1) + MAX_RETRY_DELAY * retries

    def _timeout(self, remaining: float | None) -> float:
        timeout = self.settings.timeout_seconds
        if remaining is not None:
            timeout = max(0.5, min(timeout, remaining - 0.2))
        return timeout

    def _call(self, what: str, remaining: float | None, send: Callable[[float], T]) -> T:
        """send(timeout) with retries; a failure is raised as a domain error carrying may_have_spent."""
        deadline = time.monotonic() + remaining if remaining is not None else None
        spent = False
        attempt = 0
        while True:
            left = deadline - time.monotonic() if deadline is not None else None
            try:
                return send(self._timeout(left))
            except (openai.OpenAIError, ValueError) as error:
                spent = spent or _attempt_may_have_spent(error)
                delay = _retry_delay(error, attempt)
                left = deadline - time.monotonic() if deadline is not None else None
                if (
                    delay is None
                    or attempt >= self.settings.max_retries
                    or (left is not None and left - delay < 1.0)
                ):
                    domain = translate(error, what)
                    domain.openai_may_have_spent = spent
                    raise domain from error
                log.info("retrying OpenAI call for %s in %.2f s: %s", what, delay, type(error).__name__)
                time.sleep(delay)
                attempt += 1

    def _malformed(self, what: str) -> Unavailable:
        error = Unavailable(f"OpenAI returned a malformed response for {what}")
        error.openai_may_have_spent = True  # a 200 was served: its tokens are spent
        return error

    def structured(
        self,
        *,
        what: str,
        model: str,
        messages: list[dict[str, str]],
        schema_name: str,
        schema: dict[str, Any],
        remaining: float | None = None,
    ) -> Completion:
        started = _utcnow()
        response = self._call(
            what,
            remaining,
            lambda timeout: self._client.chat.completions.create(
                model=model,
                messages=messages,
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": schema_name, "schema": schema, "strict": True},
                },
                temperature=0.2,
                timeout=timeout,
            ),
        )
        completed = _utcnow()
        try:
            choice = response.choices[0]
            message = choice.message
            return Completion(
                content=message.content,
                refusal=getattr(message, "refusal", None),
                finish_reason=choice.finish_reason,
                model=response.model or model,
                usage=from_chat_usage(response.usage) if response.usage is not None else None,
                started_at=started,
                completed_at=completed,
            )
        except (AttributeError, IndexError, TypeError) as error:
            raise self._malformed(what) from error

    def create_client_secret(
        self, *, model: str, instructions: str, ttl_seconds: int, remaining: float | None = None
    ) -> ClientSecret:
        what = "the interview session"
        secret = self._call(
            what,
            remaining,
            lambda timeout: self._client.realtime.client_secrets.create(
                expires_after={"anchor": "created_at", "seconds": ttl_seconds},
                session={"type": "realtime", "model": model, "instructions": instructions},
                timeout=timeout,
            ),
        )
        session = secret.session
        session_id = getattr(session, "id", None) or ""
        if not secret.value or not session_id:
            raise Unavailable(f"OpenAI returned a malformed response for {what}")
        return ClientSecret(
            value=secret.value,
            expires_at=dt.datetime.fromtimestamp(secret.expires_at, dt.UTC),
            session_id=session_id,
            model=getattr(session, "model", None) or model,
        )
