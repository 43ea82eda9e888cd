"""Realtime: the GA session object and a WebSocket conversation good enough to drive an interview.

Supported client events: ``session.update``, ``conversation.item.create`` (text or base64 audio content),
``input_audio_buffer.append`` / ``.commit`` / ``.clear`` and ``response.create``.  There is no voice activity
detection: audio becomes a user item only on ``commit``, and a response starts only on ``response.create``.
Anything else gets an ``error`` event and the session carries on, as the real server does.

Each ``response.create`` is answered with the GA event sequence (``response.created``, output item and
content part events, transcript/text deltas, ``conversation.item.added``/``.done``) and ends with
``response.done`` whose ``usage`` is computed like billing: the whole conversation (instructions + every
item so far) is the input, the part that repeats the previous turn's input is cached
(see :mod:`tools.openai_sim.tokens`), and the spoken reply costs text + audio output tokens.  Audio payloads
are token-accounted, not byte-exact: one short silent ``response.output_audio.delta`` stands for the reply.
Every ``response.done`` is also appended to the served-usage record.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import time
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from .prices import served_model
from .state import DEFAULT_PROJECT, SimState, UsageRecord
from .tokens import (
    AUDIO_OUT_PER_TEXT_TOKEN,
    Segment,
    audio_segment,
    audio_tokens_for_bytes,
    count_kinds,
    header_segment,
    realtime_cached,
    short_hash,
    split_cached,
    text_segment,
    text_tokens,
)

DEFAULT_MODEL = "gpt-realtime"
DEFAULT_INSTRUCTIONS = "You are a helpful, concise voice assistant."
SILENCE_100MS = base64.b64encode(bytes(4800)).decode()  # 100 ms of pcm16 at 24 kHz

INTERVIEWER_LINES = (
    "Thanks for joining today. Could you start by telling me about your current role?",
    "What was the most difficult technical problem you solved in the last year, and how did you approach it?",
    "How do you make sure a service you own keeps working when its dependencies fail?",
    "Tell me about a time you had to change a decision after new information arrived.",
    "What would you want to learn in your first three months here?",
    "Thank you, that is all from my side. Do you have any questions for us?",
)


def session_object(session_id: str, requested: dict[str, Any] | None) -> dict[str, Any]:
    """A GA ``realtime.session`` with the defaults of the spec's example, overlaid with ``requested``.

    The spec's example sends ``null`` for ``audio.input.transcription``, ``audio.input.noise_reduction`` and
    ``include``, which its own schema does not allow; the simulator leaves those fields out instead (the SDK
    reads absent and null alike), so its payloads validate against the schema.
    """
    session: dict[str, Any] = {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": DEFAULT_MODEL,
        "output_modalities": ["audio"],
        "instructions": DEFAULT_INSTRUCTIONS,
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "expires_at": 0,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "turn_detection": None,
            },
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy", "speed": 1.0},
        },
    }
    return merge_session(session, requested or {})


def merge_session(session: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(session)
    for key, value in update.items():
        if key in ("object", "id"):
            continue
        if key == "audio" and isinstance(value, dict):
            for direction in ("input", "output"):
                if isinstance(value.get(direction), dict):
                    merged["audio"].setdefault(direction, {}).update(value[direction])
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class RealtimeConversation:
    """One WebSocket session's conversation and accounting.  Lives on the event loop; no locking needed."""

    def __init__(
        self, state: SimState, websocket: WebSocket, session: dict[str, Any], project: str, key_id: str
    ):
        self.state = state
        self.ws = websocket
        self.session = session
        self.project = project
        self.key_id = key_id
        self.conversation_id = state.new_id("conv_")
        self.items: list[dict[str, Any]] = []
        self.segments: dict[str, list[Segment]] = {}  # item id -> its token segments
        self.audio_buffer = bytearray()
        self.previous_input: list[Segment] | None = None
        self.responses = 0

    async def send(self, event_type: str, **fields: Any) -> None:
        await self.ws.send_text(
            json.dumps({"type": event_type, "event_id": self.state.new_id("event_"), **fields})
        )

    async def error(
        self, message: str, code: str, client_event_id: str | None, param: str | None = None
    ) -> None:
        await self.send(
            "error",
            error={
                "type": "invalid_request_error",
                "code": code,
                "message": message,
                "param": param,
                "event_id": client_event_id,
            },
        )

    async def run(self) -> None:
        await self.send("session.created", session=self.session)
        while True:
            try:
                raw = await self.ws.receive_text()
            except WebSocketDisconnect:
                return
            try:
                event = json.loads(raw)
                if not isinstance(event, dict):
                    raise ValueError
            except ValueError:
                await self.error("The event is not a JSON object.", "invalid_json", None)
                continue
            handler = getattr(self, "on_" + str(event.get("type", "")).replace(".", "_"), None)
            if handler is None:
                await self.error(
                    f"Unsupported event type {event.get('type')!r}.", "unknown_event", event.get("event_id")
                )
                continue
            await handler(event)

    # -- client events -------------------------------------------------------------------------------------
    async def on_session_update(self, event: dict[str, Any]) -> None:
        update = event.get("session")
        if not isinstance(update, dict) or update.get("type") != "realtime":
            await self.error(
                "Missing required parameter: 'session.type' (must be 'realtime').",
                "missing_required_parameter",
                event.get("event_id"),
                "session.type",
            )
            return
        if "model" in update and update["model"] != self.session["model"]:
            await self.error(
                "The session model cannot be changed.",
                "invalid_value",
                event.get("event_id"),
                "session.model",
            )
            return
        self.session = merge_session(self.session, update)
        await self.send("session.updated", session=self.session)

    async def on_conversation_item_create(self, event: dict[str, Any]) -> None:
        item = event.get("item")
        if (
            not isinstance(item, dict)
            or item.get("type") != "message"
            or not isinstance(item.get("content"), list)
        ):
            await self.error(
                "Only message items with a content list are simulated.",
                "invalid_value",
                event.get("event_id"),
                "item",
            )
            return
        segments = [header_segment(str(item.get("role", "user")))]
        for part in item["content"]:
            if part.get("type") == "input_audio":
                try:
                    audio = base64.b64decode(part.get("audio") or "", validate=True)
                except (binascii.Error, ValueError):
                    await self.error(
                        "input_audio.audio is not valid base64.",
                        "invalid_value",
                        event.get("event_id"),
                        "item.content",
                    )
                    return
                segments.append(
                    audio_segment(self._audio_tokens(len(audio)), short_hash(part.get("audio") or ""))
                )
            else:
                segments.append(text_segment(str(part.get("text") or part.get("transcript") or "")))
        await self._add_item({**item, "id": item.get("id") or self.state.new_id("item_")}, segments)

    async def on_input_audio_buffer_append(self, event: dict[str, Any]) -> None:
        try:
            self.audio_buffer += base64.b64decode(event.get("audio") or "", validate=True)
        except (binascii.Error, ValueError):
            await self.error("audio is not valid base64.", "invalid_value", event.get("event_id"), "audio")

    async def on_input_audio_buffer_clear(self, event: dict[str, Any]) -> None:
        self.audio_buffer.clear()
        await self.send("input_audio_buffer.cleared")

    async def on_input_audio_buffer_commit(self, event: dict[str, Any]) -> None:
        if not self.audio_buffer:
            await self.error(
                "Error committing input audio buffer: the buffer is empty.",
                "input_audio_buffer_commit_empty",
                event.get("event_id"),
            )
            return
        audio = bytes(self.audio_buffer)
        self.audio_buffer.clear()
        item_id = self.state.new_id("item_")
        previous = self.items[-1]["id"] if self.items else None
        await self.send("input_audio_buffer.committed", item_id=item_id, previous_item_id=previous)
        item = {
            "id": item_id,
            "type": "message",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        tokens = self._audio_tokens(len(audio))
        await self._add_item(item, [header_segment("user"), audio_segment(tokens, short_hash(audio.hex()))])

    async def on_response_create(self, event: dict[str, Any]) -> None:
        options = event.get("response") or {}
        modalities = options.get("output_modalities") or self.session["output_modalities"]
        instructions = options.get("instructions") or self.session.get("instructions") or ""
        response_id = self.state.new_id("resp_")
        item_id = self.state.new_id("item_")
        line = INTERVIEWER_LINES[self.responses % len(INTERVIEWER_LINES)]
        self.responses += 1
        audio = "audio" in modalities

        input_segments = [header_segment("system"), text_segment(instructions)]
        for item in self.items:
            input_segments += self.segments[item["id"]]
        input_segments.append(header_segment("assistant"))
        cached = realtime_cached(self.previous_input, input_segments)
        self.previous_input = input_segments
        text_in, audio_in = count_kinds(input_segments)
        cached_text, cached_audio = split_cached(input_segments, cached)
        out_text = text_tokens(line)
        out_audio = out_text * AUDIO_OUT_PER_TEXT_TOKEN if audio else 0
        usage = {
            "total_tokens": text_in + audio_in + out_text + out_audio,
            "input_tokens": text_in + audio_in,
            "output_tokens": out_text + out_audio,
            "input_token_details": {
                "text_tokens": text_in,
                "audio_tokens": audio_in,
                "image_tokens": 0,
                "cached_tokens": cached,
                "cached_tokens_details": {
                    "text_tokens": cached_text,
                    "audio_tokens": cached_audio,
                    "image_tokens": 0,
                },
            },
            "output_token_details": {"text_tokens": out_text, "audio_tokens": out_audio},
        }

        def response(
            status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None
        ) -> dict[str, Any]:
            # ``status_details`` (null in the spec's example, which its schema forbids) is left out, as is
            # ``usage`` until the response is done.
            body = {
                "object": "realtime.response",
                "id": response_id,
                "status": status,
                "output": output,
                "conversation_id": self.conversation_id,
                "output_modalities": modalities,
                "max_output_tokens": options.get("max_output_tokens", self.session["max_output_tokens"]),
                "audio": {
                    "output": {
                        "format": self.session["audio"]["output"]["format"],
                        "voice": self.session["audio"]["output"]["voice"],
                    }
                },
                "metadata": options.get("metadata"),
            }
            return {**body, "usage": usage} if usage is not None else body

        part = (
            {"type": "output_audio", "transcript": line} if audio else {"type": "output_text", "text": line}
        )
        event_part = {"type": "audio", "transcript": ""} if audio else {"type": "text", "text": ""}
        done_part = {"type": "audio", "transcript": line} if audio else {"type": "text", "text": line}
        pending = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        final = {**pending, "status": "completed", "content": [part]}
        where = {"response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0}
        previous = self.items[-1]["id"] if self.items else None

        await self.send("response.created", response=response("in_progress", [], None))
        await self.send("response.output_item.added", response_id=response_id, output_index=0, item=pending)
        await self.send("conversation.item.added", previous_item_id=previous, item=pending)
        await self.send("response.content_part.added", **where, part=event_part)
        if audio:
            await self.send("response.output_audio.delta", **where, delta=SILENCE_100MS)
            await self.send("response.output_audio_transcript.delta", **where, delta=line)
            await self.send("response.output_audio.done", **where)
            await self.send("response.output_audio_transcript.done", **where, transcript=line)
        else:
            await self.send("response.output_text.delta", **where, delta=line)
            await self.send("response.output_text.done", **where, text=line)
        await self.send("response.content_part.done", **where, part=done_part)
        await self.send("response.output_item.done", response_id=response_id, output_index=0, item=final)

        # The reply joins the conversation: next turn re-sends it (as audio if it was spoken).
        self.items.append(final)
        reply = audio_segment(out_audio, "reply:" + item_id) if audio else text_segment(line)
        self.segments[item_id] = [header_segment("assistant"), reply]
        await self.send("conversation.item.done", previous_item_id=previous, item=final)
        self._record(cached_text, cached_audio, text_in, audio_in, out_text, out_audio)
        await self.send("response.done", response=response("completed", [final], usage))

    # -- helpers -------------------------------------------------------------------------------------------
    def _audio_tokens(self, n_bytes: int) -> int:
        audio_format = (self.session["audio"].get("input") or {}).get("format") or {}
        return audio_tokens_for_bytes(n_bytes, audio_format.get("type", "audio/pcm"))

    async def _add_item(self, item: dict[str, Any], segments: list[Segment]) -> None:
        previous = self.items[-1]["id"] if self.items else None
        item = {**item, "object": "realtime.item", "status": "completed"}
        self.items.append(item)
        self.segments[item["id"]] = segments
        await self.send("conversation.item.added", previous_item_id=previous, item=item)
        await self.send("conversation.item.done", previous_item_id=previous, item=item)

    def _record(
        self, cached_text: int, cached_audio: int, text_in: int, audio_in: int, out_text: int, out_audio: int
    ) -> None:
        self.state.add_record(
            UsageRecord(
                id=self.state.new_id("rec_"),
                time=self.state.now(),
                served_at=time.time(),
                source="realtime",
                model=served_model(self.session["model"]),
                project_id=self.project or DEFAULT_PROJECT,
                api_key_id=self.key_id,
                user_id=None,
                input_text_tokens=text_in - cached_text,
                input_cached_text_tokens=cached_text,
                input_audio_tokens=audio_in - cached_audio,
                input_cached_audio_tokens=cached_audio,
                output_text_tokens=out_text,
                output_audio_tokens=out_audio,
            )
        )
