"""Drives a Realtime interview turn by turn with the official SDK, as the browser does with the ephemeral
key: text and audio answers, one response.create per turn. Returns the usage of every response.done.

Used by `make demo` and by the tests; it talks to whatever `base_url` names (the simulator in both).
"""

from __future__ import annotations

import asyncio
import base64

import openai

ANSWER_AUDIO = base64.b64encode(bytes(48_000)).decode()  # one second of silent pcm16 at 24 kHz


async def _until(conn, event_type: str, limit: int = 60):
    for _ in range(limit):
        event = await asyncio.wait_for(conn.recv(), timeout=10)
        if event.type == event_type:
            return event
    raise RuntimeError(f"no {event_type} within {limit} events")


async def _drive(base_url: str, key: str, turns: int, model: str) -> list:
    client = openai.AsyncOpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=10)
    usages = []
    async with client, client.realtime.connect(model=model) as conn:
        await _until(conn, "session.created")
        for turn in range(turns):
            if turn % 2:
                await conn.input_audio_buffer.append(audio=ANSWER_AUDIO)
                await conn.input_audio_buffer.commit()
            else:
                await conn.conversation.item.create(
                    item={
                        "type": "message",
                        "role": "user",
                        "content": [
                            {"type": "input_text", "text": f"Answer {turn}: I built an outbox relay."}
                        ],
                    }
                )
            await _until(conn, "conversation.item.done")
            await conn.response.create()
            done = await _until(conn, "response.done")
            usages.append(done.response.usage)
    return usages


def drive_interview(base_url: str, key: str, turns: int = 3, model: str = "gpt-realtime") -> list:
    """The SDK's usage objects of every response.done, in order."""
    return asyncio.run(_drive(base_url, key, turns, model))
