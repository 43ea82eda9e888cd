"""Every fault mode, seen through the SDK as the error a real outage produces."""

from __future__ import annotations

import json
import time

import openai
import pytest
import websockets

from tools.openai_sim.state import parse_fault_flag
from tools.openai_sim.testing import running_simulator

MESSAGES = [{"role": "user", "content": "hello"}]


def _usage(client):
    return client.admin.organization.usage.completions(start_time=int(time.time()) - 3600, bucket_width="1h")


def _costs(client):
    return client.admin.organization.usage.costs(start_time=int(time.time()) - 86400)


def test_rate_limit_with_retry_after(sim, client):
    sim.set_fault("chat", "rate_limit", retry_after=2)
    with pytest.raises(openai.RateLimitError) as chat_error:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert chat_error.value.response.headers["retry-after"] == "2"
    assert chat_error.value.code == "rate_limit_exceeded" and chat_error.value.type == "requests"
    sim.set_fault("usage", "rate_limit", retry_after=3)
    with pytest.raises(openai.RateLimitError) as usage_error:
        _usage(client)
    assert usage_error.value.response.headers["retry-after"] == "3"


def test_sdk_retries_honour_a_subsecond_retry_after(sim):
    sim.set_fault("costs", "rate_limit", retry_after=0.2, count=1)
    retrying = openai.OpenAI(base_url=sim.base_url, admin_api_key=sim.admin_key, max_retries=1, timeout=5)
    started = time.monotonic()
    _costs(retrying)
    assert time.monotonic() - started >= 0.2
    assert sim.stats()["requests"]["costs"] == 2 and sim.stats()["faults"] == {}


@pytest.mark.parametrize("endpoint", ["chat", "usage", "costs", "client_secrets"])
def test_server_errors(sim, client, endpoint):
    calls = {
        "chat": lambda: client.chat.completions.create(model="gpt-4o", messages=MESSAGES),
        "usage": lambda: _usage(client),
        "costs": lambda: _costs(client),
        "client_secrets": lambda: client.realtime.client_secrets.create(session={"type": "realtime"}),
    }
    sim.set_fault(endpoint, "error")
    with pytest.raises(openai.InternalServerError) as error:
        calls[endpoint]()
    assert error.value.status_code == 500
    sim.set_fault(endpoint, "error", status=503, count=1)
    with pytest.raises(openai.APIStatusError) as unavailable:
        calls[endpoint]()
    assert unavailable.value.status_code == 503
    calls[endpoint]()  # count=1 cleared the fault


def test_hang_is_a_client_timeout(sim, client):
    sim.set_fault("usage", "hang", seconds=30)
    sim.set_fault("chat", "hang")
    impatient = client.with_options(timeout=0.3, max_retries=0)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        _usage(impatient)
    with pytest.raises(openai.APITimeoutError):
        impatient.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert time.monotonic() - started < 5
    sim.clear_faults()
    assert _usage(client).object == "page"


def test_malformed_json_is_a_decode_error(sim, client):
    sim.set_fault("chat", "malformed")
    sim.set_fault("usage", "malformed")
    # The SDK does not wrap a broken 200 body: it surfaces json's own decode error.
    with pytest.raises(json.JSONDecodeError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    with pytest.raises(json.JSONDecodeError):
        _usage(client)


def test_slow_answers_succeed_after_the_delay(sim, client):
    sim.set_fault("chat", "slow", seconds=0.4)
    started = time.monotonic()
    completion = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert time.monotonic() - started >= 0.4 and completion.choices[0].message.content


def test_lag_hides_fresh_usage_from_usage_and_costs(sim, client):
    sim.set_fault("usage", "lag", seconds=1)
    sim.set_fault("costs", "lag", seconds=1)
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    served_at = time.monotonic()
    assert all(bucket.results == [] for bucket in _usage(client).data)
    assert all(bucket.results == [] for bucket in _costs(client).data)
    deadline = served_at + 5
    while time.monotonic() < deadline:
        if any(bucket.results for bucket in _usage(client).data):
            break
        time.sleep(0.1)
    assert time.monotonic() - served_at >= 1.0
    assert sum(r.num_model_requests for b in _usage(client).data for r in b.results) == 1
    assert sum(r.amount.value for b in _costs(client).data for r in b.results) > 0


def test_stats_count_requests_and_faults(sim, client):
    sim.set_fault("usage", "error", count=2)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            _usage(client)
    _usage(client)
    stats = sim.stats()
    assert stats["requests"]["usage"] == 3 and stats["faults_applied"]["usage"] == 2 and stats["faults"] == {}


def test_startup_faults_and_flag_syntax():
    endpoint, fault = parse_fault_flag("usage=rate_limit:retry_after=2,count=3")
    assert (endpoint, fault.mode, fault.params, fault.remaining) == (
        "usage",
        "rate_limit",
        {"retry_after": 2.0},
        3,
    )
    for bad in (
        "usage",
        "nowhere=error",
        "usage=explode",
        "chat=lag:seconds=1",
        "usage=slow:speed=2",
        "usage=error:count=0",
    ):
        with pytest.raises(ValueError):
            parse_fault_flag(bad)
    with running_simulator(faults=["usage=rate_limit:retry_after=2"]) as sim:
        client = openai.OpenAI(base_url=sim.base_url, admin_api_key=sim.admin_key, max_retries=0, timeout=5)
        with pytest.raises(openai.RateLimitError):
            _usage(client)


def test_admin_api_rejects_bad_faults(sim):
    for endpoint, mode, params in (("chat", "explode", {}), ("nowhere", "error", {}), ("chat", "lag", {})):
        with pytest.raises(Exception, match="400"):
            sim.set_fault(endpoint, mode, **params)


@pytest.mark.anyio
async def test_realtime_handshake_faults(sim):
    client = openai.AsyncOpenAI(base_url=sim.base_url, api_key=sim.api_key, max_retries=0)
    async with client:
        sim.set_fault("realtime", "rate_limit", retry_after=2, count=1)
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            async with client.realtime.connect(model="gpt-realtime"):
                pass
        assert refused.value.response.status_code == 429
        assert refused.value.response.headers["Retry-After"] == "2"
        sim.set_fault("realtime", "error", count=1)
        with pytest.raises(websockets.exceptions.InvalidStatus) as failed:
            async with client.realtime.connect(model="gpt-realtime"):
                pass
        assert failed.value.response.status_code == 500
