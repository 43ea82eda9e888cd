"""The gateway's JSON errors: {"error": {"code", "message", "request_id"}}, for every failure.

gRPC statuses map to HTTP through services.common.errors.http_status_for (google/rpc/code.proto). Messages
of domain errors (INVALID_ARGUMENT, NOT_FOUND, ...) are passed on, since they name the field; transport
and internal failures get a generic message so no internal address or stack detail reaches a client.
"""

from __future__ import annotations

import logging

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.common import logs
from services.common.errors import http_status_for

log = logging.getLogger("hiremeter.gateway")

_GENERIC = {
    grpc.StatusCode.UNAVAILABLE: "the service is unavailable; try again shortly",
    grpc.StatusCode.DEADLINE_EXCEEDED: "the service did not answer in time",
    grpc.StatusCode.INTERNAL: "internal error",
    grpc.StatusCode.UNKNOWN: "internal error",
    grpc.StatusCode.DATA_LOSS: "internal error",
    grpc.StatusCode.UNAUTHENTICATED: "the gateway could not authenticate to the service",
}
_HTTP_CODES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def unauthenticated(message: str) -> ApiError:
    return ApiError(401, "UNAUTHENTICATED", message, {"WWW-Authenticate": 'Bearer realm="hiremeter"'})


def forbidden(message: str) -> ApiError:
    return ApiError(403, "PERMISSION_DENIED", message)


def invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", message)


def from_rpc_error(error: grpc.RpcError, rename: dict[str, str] | None = None) -> ApiError:
    """An ApiError for a failed call; `rename` turns gRPC field names into the HTTP parameters' names."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    if code in _GENERIC:
        # A service token rejected by a backend is the gateway's misconfiguration, not the caller's fault.
        status = 500 if code == grpc.StatusCode.UNAUTHENTICATED else http_status_for(code)
        log.warning("backend call failed", extra={"grpc_code": code.name, "details": error.details()})
        return ApiError(status, code.name, _GENERIC[code])
    message = error.details() or code.name.lower()
    for grpc_name, http_name in (rename or {}).items():
        if message.startswith(grpc_name):
            message = http_name + message[len(grpc_name) :]
            break
    headers = {}
    for key, value in error.trailing_metadata() or ():
        if key == "retry-after":
            headers["Retry-After"] = value
    return ApiError(http_status_for(code), code.name, message, headers)


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "request_id": logs.current_request_id()}}
    return JSONResponse(body, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, error: ApiError) -> JSONResponse:
        return error_response(error.status, error.code, error.message, error.headers)

    @app.exception_handler(grpc.RpcError)
    async def _rpc_error(_request: Request, error: grpc.RpcError) -> JSONResponse:
        api = from_rpc_error(error)
        return error_response(api.status, api.code, api.message, api.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, error: RequestValidationError) -> JSONResponse:
        # Bad input is 400 with the field named (DESIGN.md), not FastAPI's 422.
        problems = []
        for item in error.errors():
            if item.get("type") == "json_invalid":  # its loc is a byte offset, not a field
                problems.append(
                    f"body: is not valid JSON ({item.get('ctx', {}).get('error', 'decode error')})"
                )
                continue
            where = ".".join(
                str(part) for part in item["loc"] if part not in ("query", "body", "path", "header")
            )
            problems.append(f"{where or 'body'}: {item['msg']}")
        return error_response(400, "INVALID_ARGUMENT", "; ".join(problems))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(error.status_code, "UNKNOWN")
        return error_response(error.status_code, code, str(error.detail), getattr(error, "headers", None))
