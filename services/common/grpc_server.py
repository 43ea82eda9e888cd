"""The gRPC server builder every service uses, and its interceptors.

A server built here always has gRPC health checking and reflection, and runs every call through, in order:
access log with the request id, Prometheus metrics, the internal service token, and domain-error mapping.
Health and reflection stay open without the token so probes and tooling work.
"""

from __future__ import annotations

import hmac
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import Counter, Histogram, start_http_server

from services.common import logs
from services.common.config import ServerSettings
from services.common.errors import DomainError, InvalidArgument

log = logging.getLogger("hiremeter.grpc")

OPEN_SERVICES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)

RPC_HANDLED = Counter(
    "grpc_server_handled_total", "RPCs completed", ["grpc_service", "grpc_method", "grpc_code"]
)
RPC_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "RPC handling time",
    ["grpc_service", "grpc_method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def _split_method(full_method: str) -> tuple[str, str]:
    _, service, method = full_method.split("/", 2)
    return service, method


def _wrap_handler(
    handler: grpc.RpcMethodHandler | None, wrap: Callable, *, request_deserializer: Callable | None = ...
) -> grpc.RpcMethodHandler | None:
    """Rebuilds a method handler of any kind with wrap(behavior, response_streaming) as its behavior (and,
    when given, another request deserializer: None hands the behavior raw bytes)."""
    if handler is None:
        return None
    kwargs = {
        "request_deserializer": handler.request_deserializer
        if request_deserializer is ...
        else request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(wrap(handler.unary_unary, False), **kwargs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(wrap(handler.unary_stream, True), **kwargs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(wrap(handler.stream_unary, False), **kwargs)
    return grpc.stream_stream_rpc_method_handler(wrap(handler.stream_stream, True), **kwargs)


def _around(before_after: Callable) -> Callable:
    """Turns a context manager factory cm(context) into a behavior wrapper for both response shapes."""

    def wrap(behavior: Callable, streaming: bool) -> Callable:
        if streaming:

            def streaming_behavior(request, context):
                with before_after(context):
                    yield from behavior(request, context)

            return streaming_behavior

        def unary_behavior(request, context):
            with before_after(context):
                return behavior(request, context)

        return unary_behavior

    return wrap


def _code_of(context: grpc.ServicerContext, error: BaseException | None) -> grpc.StatusCode:
    code = context.code()
    if code is not None:
        return code
    if isinstance(error, DomainError):
        return error.code
    return grpc.StatusCode.UNKNOWN if error else grpc.StatusCode.OK


class _Scope:
    """A tiny context manager built from enter/exit callables (keeps the interceptors declarative)."""

    def __init__(self, enter: Callable[[], None], exit_: Callable[[BaseException | None], None]) -> None:
        self._enter, self._exit = enter, exit_

    def __enter__(self) -> None:
        self._enter()

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._exit(exc)
        return False


class AccessLogInterceptor(grpc.ServerInterceptor):
    """Binds the caller's x-request-id (or a new one) to the call, echoes it, and logs one line per call."""

    def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        incoming = dict(handler_call_details.invocation_metadata or ()).get(logs.REQUEST_ID_HEADER, "")
        request_id = incoming if 0 < len(incoming) <= 128 and incoming.isprintable() else ""

        def scope(context):
            state: dict = {}

            def enter():
                state["token"] = logs.set_request_id(request_id or logs.new_request_id())
                state["start"] = time.perf_counter()
                context.send_initial_metadata(((logs.REQUEST_ID_HEADER, logs.current_request_id()),))

            def exit_(error):
                code = _code_of(context, error)
                log.info(
                    "rpc",
                    extra={
                        "method": method,
                        "code": code.name,
                        "ms": round((time.perf_counter() - state["start"]) * 1000, 2),
                        "peer": context.peer(),
                    },
                )
                logs.reset_request_id(state["token"])

            return _Scope(enter, exit_)

        return _wrap_handler(continuation(handler_call_details), _around(scope))


class MetricsInterceptor(grpc.ServerInterceptor):
    def intercept_service(self, continuation, handler_call_details):
        service, method = _split_method(handler_call_details.method)

        def scope(context):
            start = [0.0]

            def enter():
                start[0] = time.perf_counter()

            def exit_(error):
                RPC_SECONDS.labels(service, method).observe(time.perf_counter() - start[0])
                RPC_HANDLED.labels(service, method, _code_of(context, error).name).inc()

            return _Scope(enter, exit_)

        return _wrap_handler(continuation(handler_call_details), _around(scope))


class ServiceTokenInterceptor(grpc.ServerInterceptor):
    """Refuses calls without `authorization: Bearer <HIREMETER_SERVICE_TOKEN>`; health and reflection stay open."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler_call_details.method.startswith(OPEN_SERVICES):
            return handler
        supplied = dict(handler_call_details.invocation_metadata or ()).get("authorization", "")
        if hmac.compare_digest(supplied.encode(), self._expected):
            return handler

        def refuse(behavior, streaming):
            def refused(request, context):
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid service token")

            return refused

        return _wrap_handler(handler, refuse)


class ErrorInterceptor(grpc.ServerInterceptor):
    """Maps domain errors to their status; anything unexpected is INTERNAL with the traceback logged.

    Requests arrive as raw bytes and are parsed here, so that an undecodable message (truncated, or a string
    field that is not UTF-8) is the caller's INVALID_ARGUMENT rather than grpcio's opaque deserialization
    failure before any interceptor runs.
    """

    def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        deserialize = handler.request_deserializer or (lambda raw: raw)
        streaming_requests = bool(handler.stream_unary or handler.stream_stream)

        def parse(raw: bytes):
            try:
                return deserialize(raw)
            except Exception:  # noqa: BLE001 - DecodeError and friends: the bytes are not the message
                raise InvalidArgument(
                    "request is not a valid protobuf message (truncated, or invalid UTF-8)"
                ) from None

        def parsed(request):
            return (parse(raw) for raw in request) if streaming_requests else parse(request)

        def translate(context, error: Exception) -> None:
            if context.code() is not None:  # the handler already aborted with a status of its choosing
                raise error
            if isinstance(error, DomainError):
                if error.retry_after_seconds is not None:
                    context.set_trailing_metadata(
                        (("retry-after", str(max(1, round(error.retry_after_seconds)))),)
                    )
                context.abort(error.code, error.message)
            log.exception("unhandled error in %s", method)
            context.abort(grpc.StatusCode.INTERNAL, "internal error")

        def wrap(behavior, streaming):
            if streaming:

                def streaming_behavior(request, context):
                    try:
                        yield from behavior(parsed(request), context)
                    except Exception as error:  # noqa: BLE001 - the boundary where every error gets a status
                        translate(context, error)

                return streaming_behavior

            def unary_behavior(request, context):
                try:
                    return behavior(parsed(request), context)
                except Exception as error:  # noqa: BLE001
                    translate(context, error)

            return unary_behavior

        return _wrap_handler(handler, wrap, request_deserializer=None)


@dataclass
class GrpcService:
    """One servicer to mount: its full name (for health and reflection) and how to add it."""

    full_name: str
    add_to_server: Callable[[grpc.Server], None]


@dataclass
class RunningServer:
    server: grpc.Server
    health: health.HealthServicer
    port: int
    service_names: list[str]
    grace_seconds: float
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    _stopped: threading.Event = field(default_factory=threading.Event)

    def stop(self) -> None:
        """Graceful stop: report NOT_SERVING, let in-flight calls drain, then run the on_stop hooks."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(self.grace_seconds).wait()
        for hook in self.on_stop:
            try:
                hook()
            except Exception:  # noqa: BLE001 - one failing hook must not block the others
                log.exception("shutdown hook failed")


def build_server(
    settings: ServerSettings,
    services: Sequence[GrpcService],
    *,
    max_workers: int = 32,
    extra_interceptors: Iterable[grpc.ServerInterceptor] = (),
) -> RunningServer:
    """Builds and starts a server on settings.host:settings.port (0 picks a free port)."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        interceptors=[
            AccessLogInterceptor(),
            MetricsInterceptor(),
            ServiceTokenInterceptor(settings.service_token),
            *extra_interceptors,
            ErrorInterceptor(),
        ],
        options=[
            ("grpc.max_receive_message_length", 32 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
        ],
    )
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [service.full_name for service in services]
    for service in services:
        service.add_to_server(server)
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    if port == 0:
        raise RuntimeError(f"cannot listen on {settings.host}:{settings.port}")
    server.start()
    for name in [*names, ""]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server, health_servicer, port, names, settings.grace_seconds)


def serve_until_signal(running: RunningServer, metrics_port: int, host: str) -> None:
    """Exports metrics, then blocks until SIGTERM or SIGINT and stops gracefully."""
    if metrics_port:
        start_http_server(metrics_port, addr=host)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info(
        "serving",
        extra={"port": running.port, "services": running.service_names, "metrics_port": metrics_port},
    )
    stop.wait()
    log.info("stopping", extra={"grace_seconds": running.grace_seconds})
    running.stop()
    log.info("stopped")
