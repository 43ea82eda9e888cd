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
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

import grpc
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
            max_retries=settings.max_retries,
        )

    def close(self) -> None:
        self._client.close()

    def _timeout(self, remaining: float | None) -> float:
        timeout = self.settings.timeout_seconds
        if remaining is not None:
            timeout = max(0.5, min(timeout, remaining - 0.2))
        return timeout

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
        try:
            response = self._client.chat.completions.create(
                model=model,
                messages=messages,
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": schema_name, "schema": schema, "strict": True},
                },
                temperature=0.2,
                timeout=self._timeout(remaining),
            )
        except (openai.OpenAIError, ValueError) as error:
            raise translate(error, what) from error
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
            raise Unavailable(f"OpenAI returned a malformed response for {what}") from error

    def create_client_secret(
        self, *, model: str, instructions: str, ttl_seconds: int, remaining: float | None = None
    ) -> ClientSecret:
        what = "the interview session"
        try:
            secret = self._client.realtime.client_secrets.create(
                expires_after={"anchor": "created_at", "seconds": ttl_seconds},
                session={"type": "realtime", "model": model, "instructions": instructions},
                timeout=self._timeout(remaining),
            )
        except (openai.OpenAIError, ValueError) as error:
            raise translate(error, what) from error
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
