"""The OpenAI client's own retries and its verdict on each failure: could the call have spent tokens?"""

from __future__ import annotations

import httpx2
import openai
import pytest

from services.common.errors import DeadlineExceeded, InvalidArgument, ResourceExhausted, Unavailable
from services.recruiting.clients import openai_client
from services.recruiting.clients.openai_client import OpenAIClient, OpenAISettings, may_have_spent

REQUEST = httpx2.Request("POST", "http://sim.invalid/v1/chat/completions")


def status(code: int, retry_after: str | None = None) -> openai.APIStatusError:
    headers = {"retry-after": retry_after} if retry_after else {}
    response = httpx2.Response(code, request=REQUEST, headers=headers)
    cls = {400: openai.BadRequestError, 401: openai.AuthenticationError, 429: openai.RateLimitError}.get(
        code, openai.InternalServerError if code >= 500 else openai.APIStatusError
    )
    return cls(f"status {code}", response=response, body=None)


def connection(cause: Exception) -> openai.APIConnectionError:
    error = openai.APIConnectionError(request=REQUEST)
    error.__cause__ = cause
    return error


def timeout() -> openai.APITimeoutError:
    error = openai.APITimeoutError(request=REQUEST)
    error.__cause__ = httpx2.ReadTimeout("read timed out")
    return error


def client(retries: int) -> OpenAIClient:
    return OpenAIClient(OpenAISettings("sk", "http://sim.invalid/v1", "", 5, retries, "m", "m", "m"))


def run(retries: int, errors: list[Exception]):
    attempts = []

    def send(timeout):
        attempts.append(timeout)
        error = errors[len(attempts) - 1]
        if error is None:
            return "ok"
        raise error

    return client(retries)._call("resume parsing", None, send), attempts


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(openai_client.time, "sleep", lambda seconds: None)


@pytest.mark.parametrize(
    ("error", "domain", "spent"),
    [
        (status(400), InvalidArgument, False),
        (status(401), openai_client.UpstreamError, False),
        (status(429, "1"), ResourceExhausted, False),
        (connection(httpx2.ConnectError("connection refused")), Unavailable, False),
        (connection(httpx2.ConnectTimeout("connect timed out")), Unavailable, False),
        (connection(httpx2.RemoteProtocolError("peer closed the connection")), Unavailable, True),
        (timeout(), DeadlineExceeded, True),
        (status(500), Unavailable, True),
        (status(503), Unavailable, True),
        (ValueError("malformed JSON"), Unavailable, True),
    ],
)
def test_each_failure_says_whether_it_may_have_spent_tokens(error, domain, spent):
    with pytest.raises(domain) as info:
        run(0, [error])
    assert may_have_spent(info.value) is spent


def test_spend_is_judged_over_every_attempt():
    # A 503 (maybe spent) then a 429 (nothing): the call as a whole may have spent.
    with pytest.raises(ResourceExhausted) as info:
        run(1, [status(503), status(429, "1")])
    assert may_have_spent(info.value) is True
    # Refused connections only: nothing was ever sent.
    refused = connection(httpx2.ConnectError("refused"))
    with pytest.raises(Unavailable) as info:
        run(2, [refused, refused, refused])
    assert may_have_spent(info.value) is False


def test_retries_stop_at_success_and_skip_what_cannot_succeed():
    result, attempts = run(2, [status(500), timeout(), None])
    assert result == "ok" and len(attempts) == 3
    with pytest.raises(InvalidArgument):
        run(2, [status(400), None])  # a 400 is not retried
    with pytest.raises(ResourceExhausted):
        run(2, [status(429, "60"), None])  # Retry-After beyond the cap goes back to the caller


def test_max_call_seconds_bounds_every_attempt_and_backoff():
    assert client(0).max_call_seconds() == 5
    assert client(2).max_call_seconds() == 5 * 3 + openai_client.MAX_RETRY_DELAY * 2
