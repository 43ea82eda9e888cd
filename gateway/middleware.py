"""Request ids and access logs for every HTTP request (pure ASGI, so the id is visible to the endpoint,
to sync routes in the thread pool and to streamed bodies, and rides on to gRPC as x-request-id)."""

from __future__ import annotations

import json
import logging
import re
import time

from services.common import logs

log = logging.getLogger("hiremeter.gateway")
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestIdMiddleware:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = ""
        for key, value in scope.get("headers", ()):
            if key == b"x-request-id":
                incoming = value.decode("latin-1")
        request_id = incoming if _VALID_ID.match(incoming) else logs.new_request_id()
        token = logs.set_request_id(request_id)
        started = time.perf_counter()
        state = {"status": 0}

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error", extra={"path": scope.get("path")})
            if state["status"]:
                raise
            body = json.dumps(
                {"error": {"code": "INTERNAL", "message": "internal error", "request_id": request_id}}
            ).encode()
            state["status"] = 500
            await send_with_id(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send_with_id({"type": "http.response.body", "body": body})
        finally:
            log.info(
                "http",
                extra={
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": state["status"],
                    "ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            logs.reset_request_id(token)
