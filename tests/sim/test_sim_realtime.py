"""Realtime through the SDK: client secrets, and an interview driven turn by turn over the WebSocket whose
``response.done`` usage adds up to what the usage API then reports."""

from __future__ import annotations

import base64
import time

import openai
import pytest

pytestmark = pytest.mark.anyio

SERVED_REALTIME = "gpt-realtime-2025-08-28"
ANSWER_AUDIO = base64.b64encode(bytes(48_000)).decode()  # one second of pcm16 at 24 kHz = 10 audio tokens


async def _until(conn, event_type: str, limit: int = 50):
    """Events up to and including the first ``event_type`` (bounded: a missing event fails, not hangs)."""
    seen = []
    for _ in range(limit):
        event = await conn.recv()
        seen.append(event)
        if event.type == event_type:
            return seen
    raise AssertionError(f"no {event_type} within {limit} events: {[e.type for e in seen]}")


async def test_interview_turn_by_turn(sim, spec_validate):
    client = openai.AsyncOpenAI(
        base_url=sim.base_url, api_key=sim.api_key, admin_api_key=sim.admin_key, max_retries=0, timeout=10
    )
    async with client:
        usages = []
        async with client.realtime.connect(model="gpt-realtime") as conn:
            (created,) = await _until(conn, "session.created")
            assert created.session.model == "gpt-realtime"
            await conn.session.update(
                session={
                    "type": "realtime",
                    "instructions": "You interview backend engineers. " * 8,
                    "output_modalities": ["audio"],
                }
            )
            await _until(conn, "session.updated")
            for turn in range(4):
                if turn % 2:
                    await conn.input_audio_buffer.append(audio=ANSWER_AUDIO)
                    await conn.input_audio_buffer.commit()
                    await _until(conn, "input_audio_buffer.committed")
                else:
                    await conn.conversation.item.create(
                        item={
                            "type": "message",
                            "role": "user",
                            "content": [
                                {
                                    "type": "input_text",
                                    "text": f"Answer {turn}: I built a billing pipeline with outboxes.",
                                }
                            ],
                        }
                    )
                await _until(conn, "conversation.item.done")
                await conn.response.create()
                events = await _until(conn, "response.done")
                assert events[0].type == "response.created"
                done = events[-1]
                spec_validate("RealtimeServerEventResponseDone", done.to_dict())
                usages.append(done.response.usage)

        inputs = [u.input_tokens for u in usages]
        assert inputs == sorted(inputs) and len(set(inputs)) == 4  # each turn re-sends a longer conversation
        assert usages[0].input_token_details.cached_tokens == 0
        assert all(u.input_token_details.cached_tokens > 0 for u in usages[1:])
        for u in usages:
            details = u.input_token_details
            assert u.input_tokens == details.text_tokens + details.audio_tokens + details.image_tokens
            assert (
                details.cached_tokens
                == details.cached_tokens_details.text_tokens + details.cached_tokens_details.audio_tokens
            )
            assert details.cached_tokens <= u.input_tokens and details.cached_tokens % 64 == 0
            assert u.output_tokens == u.output_token_details.text_tokens + u.output_token_details.audio_tokens
            assert (
                u.output_token_details.audio_tokens > 0 and u.total_tokens == u.input_tokens + u.output_tokens
            )
        assert usages[1].input_token_details.audio_tokens > usages[0].input_token_details.audio_tokens

        page = await client.admin.organization.usage.completions(
            start_time=int(time.time()) - 3600,
            bucket_width="1h",
            group_by=["model"],
            models=[SERVED_REALTIME],
        )
        (result,) = [r for bucket in page.data for r in bucket.results]
        assert result.model == SERVED_REALTIME and result.num_model_requests == 4
        assert result.input_tokens == sum(u.input_tokens for u in usages)
        assert result.input_cached_tokens == sum(u.input_token_details.cached_tokens for u in usages)
        assert result.input_audio_tokens + result.input_cached_audio_tokens == sum(
            u.input_token_details.audio_tokens for u in usages
        )
        assert result.input_cached_audio_tokens == sum(
            u.input_token_details.cached_tokens_details.audio_tokens for u in usages
        )
        assert result.output_text_tokens == sum(u.output_token_details.text_tokens for u in usages)
        assert result.output_audio_tokens == sum(u.output_token_details.audio_tokens for u in usages)
        costs = await client.admin.organization.usage.costs(
            start_time=int(time.time()) - 86400, group_by=["line_item"]
        )
        items = {r.line_item for bucket in costs.data for r in bucket.results}
        assert {f"{SERVED_REALTIME}, audio output", f"{SERVED_REALTIME}, cached input"} <= items


async def test_client_secret_authenticates_a_session(sim):
    server = openai.AsyncOpenAI(base_url=sim.base_url, api_key=sim.api_key, max_retries=0, timeout=10)
    async with server:
        secret = await server.realtime.client_secrets.create(
            expires_after={"anchor": "created_at", "seconds": 60},
            session={"type": "realtime", "model": "gpt-realtime", "output_modalities": ["text"]},
        )
        assert secret.value.startswith("ek_") and secret.session.type == "realtime"
        browser = openai.AsyncOpenAI(base_url=sim.base_url, api_key=secret.value, max_retries=0, timeout=10)
        async with browser, browser.realtime.connect(model="gpt-realtime") as conn:
            (created,) = await _until(conn, "session.created")
            assert created.session.output_modalities == ["text"]
            await conn.response.create()
            done = (await _until(conn, "response.done"))[-1]
            assert done.response.usage.output_token_details.audio_tokens == 0
        (record,) = sim.requests()
        assert record["source"] == "realtime" and record["model"] == SERVED_REALTIME
        for seconds in (9, 7201):
            with pytest.raises(openai.BadRequestError):
                await server.realtime.client_secrets.create(
                    expires_after={"anchor": "created_at", "seconds": seconds}
                )
