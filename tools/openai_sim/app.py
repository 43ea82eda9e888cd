"""The simulator's ASGI application (Starlette): OpenAI-compatible routes plus the ``/_sim/`` admin API.

Authentication, as on the real API:

* model endpoints (chat, client secrets, realtime) want ``Authorization: Bearer sk-...`` (a realtime socket
  also accepts an ``ek_...`` client secret); an admin key is refused there;
* the usage and costs endpoints want an admin key (``sk-admin-...``): none -> 401, any other key -> 403;
* ``/_sim/*`` needs no key: it is the test harness's back door, never exposed beyond loopback.

Attribution of served usage: the project is the ``OpenAI-Project`` header (else ``proj_default``), the API key
id is ``key_`` + a short SHA-256 of the bearer key, the user is the chat request's ``user`` (or
``safety_identifier``), ``batch`` is false and ``service_tier`` is ``"default"``.  The model is recorded, and
returned in responses, *as served*: aliases become their dated snapshot (``gpt-4o`` -> ``gpt-4o-2024-08-06``),
so the usage API's ``models`` filter takes the snapshot name, exactly the ``model`` field of the response.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from . import generate
from .prices import is_realtime, line_item_costs, price_for, served_model
from .realtime import DEFAULT_MODEL, RealtimeConversation, session_object
from .state import (
    DEFAULT_PROJECT,
    ENDPOINTS,
    HANG_MAX_SECONDS,
    TOKEN_FIELDS,
    Fault,
    SimState,
    UsageRecord,
    api_key_id,
    parse_fault,
)
from .tokens import chat_prompt_segments, text_tokens, total_tokens
from .usage_api import QueryError, costs_page, parse_query, usage_page

STREAM_PIECE_CHARS = 24
MALFORMED_BODY = '{"object": "page", "data": [{"object": "bucket", "start_time": 17'
SECRET_TTL_RANGE = (10, 7200)


def openai_error(
    status: int,
    message: str,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def bearer(headers: Any) -> str | None:
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def create_app(state: SimState | None = None) -> Starlette:
    """Build the app around ``state`` (a fresh one by default); ``app.state.sim`` exposes it."""
    sim = state or SimState()

    # -- auth ----------------------------------------------------------------------------------------------
    def model_key_problem(key: str | None) -> JSONResponse | None:
        if key is None:
            return openai_error(
                401,
                "You didn't provide an API key. Provide it in the Authorization header "
                "(Authorization: Bearer YOUR_KEY).",
                code="missing_api_key",
            )
        if key.startswith("sk-admin-"):
            return openai_error(
                403, "Admin API keys cannot be used for model requests.", code="invalid_api_key"
            )
        return None

    def admin_key_problem(key: str | None) -> JSONResponse | None:
        if key is None:
            return openai_error(
                401,
                "You didn't provide an API key. The usage and costs APIs need an admin key "
                "(Authorization: Bearer sk-admin-...).",
                code="missing_api_key",
            )
        if not key.startswith("sk-admin-"):
            return openai_error(
                403,
                "You have insufficient permissions for this operation. Missing scopes: api.usage.read.",
                code="insufficient_permissions",
            )
        return None

    # -- faults --------------------------------------------------------------------------------------------
    async def hang(seconds: float, request: Request | None) -> None:
        """Sleep up to ``seconds`` (capped), ending early if the client goes away or faults change."""
        generation = sim.fault_generation
        deadline = time.monotonic() + min(seconds, HANG_MAX_SECONDS)
        while time.monotonic() < deadline and sim.fault_generation == generation:
            if request is not None and await request.is_disconnected():
                return
            await asyncio.sleep(0.05)

    async def apply_fault(endpoint: str, request: Request | None) -> tuple[Response | None, float]:
        """A response replacing the normal one, or ``None``; and the lag (seconds) to apply."""
        fault = sim.take_fault(endpoint)
        return await fault_response(fault, request) if fault is not None else (None, 0.0)

    async def fault_response(fault: Fault, request: Request | None) -> tuple[Response | None, float]:
        params = fault.params
        if fault.mode == "rate_limit":
            retry_after = params.get("retry_after", 1.0)
            headers = {"Retry-After": str(max(1, math.ceil(retry_after)))}
            if retry_after != int(retry_after):
                # The SDK prefers this header, so sub-second waits keep tests fast.
                headers["retry-after-ms"] = str(int(retry_after * 1000))
            return openai_error(
                429,
                "Rate limit reached (simulated). Please try again later.",
                type_="requests",
                code="rate_limit_exceeded",
                headers=headers,
            ), 0.0
        if fault.mode == "error":
            return openai_error(
                int(params.get("status", 500)),
                "The server had an error while processing your request (simulated).",
                type_="server_error",
            ), 0.0
        if fault.mode == "slow":
            await asyncio.sleep(params.get("seconds", 1.0))
            return None, 0.0
        if fault.mode == "malformed":
            return Response(MALFORMED_BODY, media_type="application/json"), 0.0
        if fault.mode == "hang":
            await hang(params.get("seconds", HANG_MAX_SECONDS), request)
            return openai_error(504, "Gateway timeout (simulated hang).", type_="server_error"), 0.0
        return None, params.get("seconds", 1.0)  # lag

    async def json_body(request: Request) -> dict[str, Any] | JSONResponse:
        raw = await request.body()
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            return openai_error(400, "We could not parse the JSON body of your request.")
        return (
            body if isinstance(body, dict) else openai_error(400, "The request body must be a JSON object.")
        )

    # -- chat completions ----------------------------------------------------------------------------------
    async def chat_completions(request: Request) -> Response:
        sim.count_request("chat")
        key = bearer(request.headers)
        if problem := model_key_problem(key):
            return problem
        faulted, _ = await apply_fault("chat", request)
        if faulted is not None:
            return faulted
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        model, messages = body.get("model"), body.get("messages")
        if not isinstance(model, str) or not model:
            return openai_error(400, "Missing required parameter: 'model'.", param="model")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            return openai_error(
                400, "'messages' must be a non-empty array of message objects.", param="messages"
            )
        if price_for(model) is None or is_realtime(model):
            return openai_error(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                param="model",
                code="model_not_found",
            )
        response_format = body.get("response_format") or {"type": "text"}
        n = body.get("n") or 1
        if not isinstance(n, int) or not 1 <= n <= 8:
            return openai_error(400, "'n' must be an integer between 1 and 8.", param="n")
        served = served_model(model)

        refusal = content = None
        if generate.wants_refusal(messages):
            refusal = generate.REFUSAL_TEXT
        elif response_format.get("type") == "json_schema":
            schema = (response_format.get("json_schema") or {}).get("schema")
            if not isinstance(schema, dict):
                return openai_error(
                    400,
                    "Missing required parameter: 'response_format.json_schema.schema'.",
                    param="response_format.json_schema.schema",
                )
            content = generate.schema_reply(schema, messages)
        elif response_format.get("type") == "json_object":
            content = generate.json_object_reply(served, messages)
        elif response_format.get("type") == "text":
            content = generate.text_reply(served, messages)
        else:
            return openai_error(
                400,
                f"Invalid value for 'response_format.type': {response_format.get('type')!r}.",
                param="response_format.type",
            )

        finish_reason = "stop"
        output_tokens = text_tokens(content if content is not None else refusal)
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(limit, int) and limit > 0 and content is not None and output_tokens > limit:
            content, output_tokens, finish_reason = content[: limit * 4], limit, "length"

        segments = chat_prompt_segments(messages, response_format)
        prompt_tokens = total_tokens(segments)
        with sim.lock:
            cached = sim.prompt_cache.lookup_and_store(served, segments)
        completion_tokens = output_tokens * n
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        now = sim.now()
        user = body.get("user") or body.get("safety_identifier")
        sim.add_record(
            UsageRecord(
                id=sim.new_id("rec_"),
                time=now,
                served_at=time.time(),
                source="chat",
                model=served,
                project_id=request.headers.get("openai-project") or DEFAULT_PROJECT,
                api_key_id=api_key_id(key),
                user_id=user if isinstance(user, str) else None,
                input_text_tokens=prompt_tokens - cached,
                input_cached_text_tokens=cached,
                output_text_tokens=completion_tokens,
            )
        )
        completion_id = sim.new_id("chatcmpl-")
        common = {
            "id": completion_id,
            "created": now,
            "model": served,
            "service_tier": "default",
            "system_fingerprint": "fp_sim",
        }
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            chunks = _stream_chunks(
                common, n, content, refusal, finish_reason, usage if include_usage else None
            )
            return StreamingResponse(chunks, media_type="text/event-stream")
        message = {"role": "assistant", "content": content, "refusal": refusal, "annotations": []}
        choices = [
            {"index": i, "message": message, "logprobs": None, "finish_reason": finish_reason}
            for i in range(n)
        ]
        return JSONResponse({**common, "object": "chat.completion", "choices": choices, "usage": usage})

    # -- organization usage and costs ----------------------------------------------------------------------
    async def usage_api(request: Request, endpoint: str) -> Response:
        sim.count_request(endpoint)
        if problem := admin_key_problem(bearer(request.headers)):
            return problem
        faulted, lag = await apply_fault(endpoint, request)
        if faulted is not None:
            return faulted
        try:
            query = parse_query(request.query_params, costs=endpoint == "costs")
        except QueryError as exc:
            return openai_error(400, str(exc), param=exc.param, code="invalid_value")
        render = costs_page if endpoint == "costs" else usage_page
        return JSONResponse(render(query, sim.snapshot(lag), sim.now()))

    async def usage_completions(request: Request) -> Response:
        return await usage_api(request, "usage")

    async def costs(request: Request) -> Response:
        return await usage_api(request, "costs")

    # -- realtime ------------------------------------------------------------------------------------------
    async def client_secrets(request: Request) -> Response:
        sim.count_request("client_secrets")
        key = bearer(request.headers)
        if problem := model_key_problem(key):
            return problem
        if key.startswith("ek_"):
            return openai_error(403, "Client secrets cannot create client secrets.", code="invalid_api_key")
        faulted, _ = await apply_fault("client_secrets", request)
        if faulted is not None:
            return faulted
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        expires_after = body.get("expires_after") or {}
        if expires_after.get("anchor", "created_at") != "created_at":
            return openai_error(
                400,
                "Invalid value for 'expires_after.anchor': only 'created_at' is supported.",
                param="expires_after.anchor",
            )
        seconds = expires_after.get("seconds", 600)
        low, high = SECRET_TTL_RANGE
        if not isinstance(seconds, int) or isinstance(seconds, bool) or not low <= seconds <= high:
            return openai_error(
                400,
                f"Invalid value for 'expires_after.seconds': must be an integer between {low} and {high}.",
                param="expires_after.seconds",
            )
        requested = body.get("session") or {"type": "realtime"}
        if requested.get("type") != "realtime":
            return openai_error(
                400, "The simulator supports only session.type 'realtime'.", param="session.type"
            )
        model = requested.get("model", DEFAULT_MODEL)
        if not isinstance(model, str) or not is_realtime(model):
            return openai_error(
                400,
                f"Invalid value for 'session.model': {model!r} is not a realtime model.",
                param="session.model",
            )
        session = session_object(sim.new_id("sess_"), {**requested, "model": model})
        value = "ek_" + sim.new_id("", length=32)
        expires_at = sim.now() + seconds
        with sim.lock:
            sim.client_secrets[value] = {
                "expires_at": expires_at,
                "session": session,
                "api_key_id": api_key_id(key),
                "project_id": request.headers.get("openai-project") or DEFAULT_PROJECT,
            }
        return JSONResponse({"value": value, "expires_at": expires_at, "session": session})

    async def realtime(websocket: WebSocket) -> None:
        sim.count_request("realtime")

        async def deny(response: JSONResponse) -> None:
            await websocket.send_denial_response(response)

        key = bearer(websocket.headers)
        if problem := model_key_problem(key):
            return await deny(problem)
        project = websocket.headers.get("openai-project") or DEFAULT_PROJECT
        key_id, requested = api_key_id(key), {}
        if key.startswith("ek_"):
            with sim.lock:
                secret = sim.client_secrets.get(key)
            if secret is None or secret["expires_at"] <= sim.now():
                return await deny(
                    openai_error(401, "The client secret is unknown or has expired.", code="invalid_api_key")
                )
            key_id, project, requested = secret["api_key_id"], secret["project_id"], secret["session"]
        model = websocket.query_params.get("model") or requested.get("model") or DEFAULT_MODEL
        if not is_realtime(model):
            return await deny(
                openai_error(
                    400,
                    f"Invalid model {model!r}: not a realtime model.",
                    param="model",
                    code="model_not_found",
                )
            )
        fault = sim.take_fault("realtime")
        if fault is not None:
            if fault.mode == "slow":
                await asyncio.sleep(fault.params.get("seconds", 1.0))
            elif fault.mode == "hang":
                await hang(fault.params.get("seconds", HANG_MAX_SECONDS), None)
                return await deny(
                    openai_error(504, "Gateway timeout (simulated hang).", type_="server_error")
                )
            elif fault.mode == "malformed":
                await websocket.accept()
                await websocket.send_text(MALFORMED_BODY)
                return await websocket.close()
            else:
                # rate_limit and error: the HTTP fault response becomes the handshake's denial.
                response, _ = await fault_response(fault, None)
                return await deny(response)
        await websocket.accept()
        session = session_object(sim.new_id("sess_"), {**requested, "model": model})
        await RealtimeConversation(sim, websocket, session, project, key_id).run()

    # -- admin ---------------------------------------------------------------------------------------------
    async def put_fault(request: Request) -> Response:
        endpoint = request.path_params["endpoint"]
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        params = {k: v for k, v in body.items() if k not in ("mode", "count")}
        try:
            fault = parse_fault(endpoint, str(body.get("mode")), params, body.get("count"))
        except ValueError as exc:
            return openai_error(400, str(exc), param="mode")
        sim.set_fault(endpoint, fault)
        return JSONResponse({"endpoint": endpoint, "fault": fault.to_json()})

    async def delete_fault(request: Request) -> Response:
        endpoint = request.path_params.get("endpoint")
        if endpoint is not None and endpoint not in ENDPOINTS:
            return openai_error(404, f"Unknown endpoint {endpoint!r}.", param="endpoint")
        sim.clear_faults(endpoint)
        return JSONResponse(sim.stats()["faults"])

    async def get_faults(request: Request) -> Response:
        return JSONResponse(sim.stats()["faults"])

    async def stats(request: Request) -> Response:
        return JSONResponse(sim.stats())

    async def served_requests(request: Request) -> Response:
        return JSONResponse({"data": [record.to_json() for record in sim.snapshot()]})

    async def inject_usage(request: Request) -> Response:
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        try:
            record = _injected_record(sim, body)
        except ValueError as exc:
            return openai_error(400, str(exc))
        sim.add_record(record)
        return JSONResponse(record.to_json(), status_code=201)

    async def reset(request: Request) -> Response:
        sim.reset()
        return JSONResponse({"status": "reset"})

    async def clock(request: Request) -> Response:
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        now = body.get("now")
        if now is not None and (not isinstance(now, int) or isinstance(now, bool) or now < 0):
            return openai_error(
                400, "'now' must be a Unix time in whole seconds, or null for the real clock.", param="now"
            )
        sim.set_clock(now)
        return JSONResponse({"now": sim.now(), "pinned": now is not None})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/organization/usage/completions", usage_completions, methods=["GET"]),
            Route("/v1/organization/costs", costs, methods=["GET"]),
            Route("/v1/realtime/client_secrets", client_secrets, methods=["POST"]),
            WebSocketRoute("/v1/realtime", realtime),
            Route("/_sim/health", health, methods=["GET"]),
            Route("/_sim/faults", get_faults, methods=["GET"]),
            Route("/_sim/faults", delete_fault, methods=["DELETE"]),
            Route("/_sim/faults/{endpoint}", put_fault, methods=["PUT"]),
            Route("/_sim/faults/{endpoint}", delete_fault, methods=["DELETE"]),
            Route("/_sim/stats", stats, methods=["GET"]),
            Route("/_sim/requests", served_requests, methods=["GET"]),
            Route("/_sim/usage", inject_usage, methods=["POST"]),
            Route("/_sim/reset", reset, methods=["POST"]),
            Route("/_sim/clock", clock, methods=["PUT"]),
        ]
    )
    app.state.sim = sim
    return app


INJECT_FIELDS = {
    "time",
    "model",
    "project_id",
    "api_key_id",
    "user_id",
    "batch",
    "service_tier",
    "num_model_requests",
    *TOKEN_FIELDS,
}


def _injected_record(sim: SimState, body: dict[str, Any]) -> UsageRecord:
    """A usage record the simulator did not serve (another consumer of the same project, say)."""
    unknown = set(body) - INJECT_FIELDS
    if unknown:
        raise ValueError(f"unknown field(s) {sorted(unknown)}; token classes are {', '.join(TOKEN_FIELDS)}")
    model = body.get("model")
    if not isinstance(model, str) or price_for(model) is None:
        raise ValueError(f"'model' must be a priced model, got {model!r}")
    counts = {}
    for name in (*TOKEN_FIELDS, "num_model_requests"):
        value = body.get(name, 1 if name == "num_model_requests" else 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"'{name}' must be a non-negative integer")
        counts[name] = value
    try:
        line_item_costs(model, counts)
    except KeyError as exc:
        raise ValueError(str(exc.args[0])) from None
    when = body.get("time", sim.now())
    if not isinstance(when, int) or isinstance(when, bool):
        raise ValueError("'time' must be a Unix time in whole seconds")
    return UsageRecord(
        id=sim.new_id("rec_"),
        time=when,
        served_at=time.time(),
        source="injected",
        model=model,
        project_id=str(body.get("project_id") or DEFAULT_PROJECT),
        api_key_id=str(body.get("api_key_id") or "key_injected"),
        user_id=body.get("user_id"),
        batch=bool(body.get("batch", False)),
        service_tier=str(body.get("service_tier") or "default"),
        **counts,
    )


async def _stream_chunks(
    common: dict[str, Any],
    n: int,
    content: str | None,
    refusal: str | None,
    finish_reason: str,
    usage: dict[str, Any] | None,
) -> AsyncIterator[str]:
    """Server-sent events in the order the real API sends them, ending with the usage chunk and [DONE]."""
    extra = {"usage": None} if usage is not None else {}

    def chunk(choices: list[dict[str, Any]], **fields: Any) -> str:
        return (
            "data: "
            + json.dumps({**common, "object": "chat.completion.chunk", "choices": choices, **extra, **fields})
            + "\n\n"
        )

    def choice(index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}

    text, field = (content, "content") if content is not None else (refusal or "", "refusal")
    for index in range(n):
        yield chunk([choice(index, {"role": "assistant", "content": "" if field == "content" else None})])
        for start in range(0, len(text), STREAM_PIECE_CHARS):
            yield chunk([choice(index, {field: text[start : start + STREAM_PIECE_CHARS]})])
        yield chunk([choice(index, {}, finish_reason)])
    if usage is not None:
        yield chunk([], usage=usage)
    yield "data: [DONE]\n\n"
