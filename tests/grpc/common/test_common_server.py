"""The server builder and its interceptors, on real gRPC servers on 127.0.0.1 (grpcio-testing runs no
interceptors, so nothing here is faked): health, reflection, the service token, error mapping, request ids,
metrics and the graceful stop."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace

import grpc
import pytest
from google.protobuf import wrappers_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import REGISTRY

from services.common import errors, logs
from services.common.grpc_client import service_channel
from services.common.grpc_server import GrpcService, RunningServer, build_server
from tests.conftest import SERVICE_TOKEN

SERVICE = "test.Probe"
StringValue = wrappers_pb2.StringValue


def _probe_service(behaviours: dict[str, Callable]) -> GrpcService:
    """A service of plain well-known messages: each method's behaviour is given by the test."""
    handlers = {}
    for name, behaviour in behaviours.items():
        make = (
            grpc.unary_stream_rpc_method_handler
            if name.startswith("Stream")
            else grpc.unary_unary_rpc_method_handler
        )
        handlers[name] = make(
            behaviour,
            request_deserializer=StringValue.FromString,
            response_serializer=lambda message: message.SerializeToString(),
        )
    generic = grpc.method_handlers_generic_handler(SERVICE, handlers)
    return GrpcService(SERVICE, lambda server: server.add_generic_rpc_handlers((generic,)))


@pytest.fixture
def start(server_settings) -> Iterator[Callable[..., RunningServer]]:
    started: list[RunningServer] = []

    def make(behaviours: dict[str, Callable], **overrides) -> RunningServer:
        running = build_server(replace(server_settings, **overrides), [_probe_service(behaviours)])
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


def _call(channel: grpc.Channel, method: str, text: str = "", **kwargs):
    return channel.unary_unary(
        f"/{SERVICE}/{method}",
        request_serializer=StringValue.SerializeToString,
        response_deserializer=StringValue.FromString,
    )(StringValue(value=text), timeout=5, **kwargs)


def _echo(request, context):
    return StringValue(value=request.value)


def test_health_and_reflection_answer_without_the_token(start):
    running = start({"Echo": _echo})
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", SERVICE):
            answer = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        names = {service.name for reply in replies for service in reply.list_services_response.service}
    assert {SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names


@pytest.mark.parametrize(
    "metadata", [(), (("authorization", "Bearer wrong"),), (("authorization", SERVICE_TOKEN),)]
)
def test_calls_without_the_service_token_are_unauthenticated(start, metadata):
    called = threading.Event()

    def echo(request, context):
        called.set()
        return _echo(request, context)

    running = start({"Echo": echo})
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        with pytest.raises(grpc.RpcError) as refused:
            _call(channel, "Echo", "hi", metadata=metadata)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert not called.is_set()


def test_the_service_token_lets_calls_through(start):
    running = start({"Echo": _echo})
    with service_channel(f"127.0.0.1:{running.port}", SERVICE_TOKEN) as channel:
        assert _call(channel, "Echo", "hello").value == "hello"


@pytest.mark.parametrize(
    ("raised", "code", "message"),
    [
        (
            errors.InvalidArgument("company_id must not be empty"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "company_id must not be empty",
        ),
        (errors.NotFound("resume r1 not found"), grpc.StatusCode.NOT_FOUND, "resume r1 not found"),
        (
            errors.AlreadyExists("operation_id op-1 exists"),
            grpc.StatusCode.ALREADY_EXISTS,
            "operation_id op-1 exists",
        ),
        (errors.FailedPrecondition("model refused"), grpc.StatusCode.FAILED_PRECONDITION, "model refused"),
        (errors.Unavailable("tracker down"), grpc.StatusCode.UNAVAILABLE, "tracker down"),
        (errors.DeadlineExceeded("openai timed out"), grpc.StatusCode.DEADLINE_EXCEEDED, "openai timed out"),
        (KeyError("secret internals"), grpc.StatusCode.INTERNAL, "internal error"),
    ],
)
def test_domain_errors_map_to_status_codes(start, raised, code, message):
    def fail(request, context):
        raise raised

    running = start({"Fail": fail})
    with service_channel(f"127.0.0.1:{running.port}", SERVICE_TOKEN) as channel:
        with pytest.raises(grpc.RpcError) as failure:
            _call(channel, "Fail")
    assert failure.value.code() == code
    assert failure.value.details() == message


def test_resource_exhausted_carries_the_retry_delay(start):
    def limited(request, context):
        raise errors.ResourceExhausted("OpenAI rate limit", retry_after_seconds=7)

    running = start({"Limited": limited})
    with service_channel(f"127.0.0.1:{running.port}", SERVICE_TOKEN) as channel:
        with pytest.raises(grpc.RpcError) as failure:
            _call(channel, "Limited")
    assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert dict(failure.value.trailing_metadata())["retry-after"] == "7"


def test_errors_inside_streaming_responses_are_mapped(start):
    def stream(request, context):
        yield StringValue(value="first")
        raise errors.InvalidArgument("page_token is not valid")

    running = start({"StreamRows": stream})
    with service_channel(f"127.0.0.1:{running.port}", SERVICE_TOKEN) as channel:
        call = channel.unary_stream(
            f"/{SERVICE}/StreamRows",
            request_serializer=StringValue.SerializeToString,
            response_deserializer=StringValue.FromString,
        )(StringValue(), timeout=5)
        received = []
        with pytest.raises(grpc.RpcError) as failure:
            for message in call:
                received.append(message.value)
    assert received == ["first"]
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_the_request_id_is_echoed_and_carried_to_the_next_service(start):
    seen_downstream: list[str] = []

    def downstream(request, context):
        seen_downstream.append(logs.current_request_id())
        return StringValue(value="ok")

    back = start({"Leaf": downstream})

    def upstream(request, context):
        with service_channel(f"127.0.0.1:{back.port}", SERVICE_TOKEN) as channel:
            return _call(channel, "Leaf")

    front = start({"Root": upstream})
    with service_channel(f"127.0.0.1:{front.port}", SERVICE_TOKEN) as channel:
        call = channel.unary_unary(
            f"/{SERVICE}/Root",
            request_serializer=StringValue.SerializeToString,
            response_deserializer=StringValue.FromString,
        )
        _, outcome = call.with_call(StringValue(), timeout=5, metadata=(("x-request-id", "req-abc-123"),))
        assert dict(outcome.initial_metadata())["x-request-id"] == "req-abc-123"
        _, fresh = call.with_call(StringValue(), timeout=5)
        generated = dict(fresh.initial_metadata())["x-request-id"]
    assert seen_downstream == ["req-abc-123", generated]
    assert len(generated) == 32


def test_metrics_count_every_call_with_its_code(start):
    def fail(request, context):
        raise errors.NotFound("nothing here")

    running = start({"Echo": _echo, "Fail": fail})

    def count(method: str, code: str) -> float:
        labels = {"grpc_service": SERVICE, "grpc_method": method, "grpc_code": code}
        return REGISTRY.get_sample_value("grpc_server_handled_total", labels) or 0.0

    before_ok, before_missing = count("Echo", "OK"), count("Fail", "NOT_FOUND")
    with service_channel(f"127.0.0.1:{running.port}", SERVICE_TOKEN) as channel:
        _call(channel, "Echo")
        _call(channel, "Echo")
        with pytest.raises(grpc.RpcError):
            _call(channel, "Fail")
    assert count("Echo", "OK") == before_ok + 2
    assert count("Fail", "NOT_FOUND") == before_missing + 1


def test_graceful_stop_reports_not_serving_and_drains_in_flight_calls(start):
    entered, release = threading.Event(), threading.Event()

    def slow(request, context):
        entered.set()
        release.wait(5)
        return StringValue(value="finished")

    running = start({"Slow": slow}, grace_seconds=5.0)
    target = f"127.0.0.1:{running.port}"
    with service_channel(target, SERVICE_TOKEN) as channel:
        in_flight = channel.unary_unary(
            f"/{SERVICE}/Slow",
            request_serializer=StringValue.SerializeToString,
            response_deserializer=StringValue.FromString,
        ).future(StringValue(), timeout=10)
        assert entered.wait(5)
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=""), timeout=10
        )
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        stopper = threading.Thread(target=running.stop)
        stopper.start()
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        watch.cancel()
        release.set()
        assert in_flight.result().value == "finished"
        stopper.join(10)
        assert not stopper.is_alive()
        with pytest.raises(grpc.RpcError) as refused:
            _call(channel, "Slow")
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("raw", [b"\x0a\x40abc", b"\x0a\x02\xff\xfe"], ids=["truncated", "invalid-utf8"])
def test_undecodable_requests_are_invalid_argument_not_internal(start, raw):
    called = threading.Event()

    def echo(request, context):
        called.set()
        return _echo(request, context)

    running = start({"Echo": echo})
    with service_channel(f"127.0.0.1:{running.port}", SERVICE_TOKEN) as channel:
        call = channel.unary_unary(f"/{SERVICE}/Echo", request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as failure:
            call(raw, timeout=5)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid protobuf message" in failure.value.details()
    assert not called.is_set()
