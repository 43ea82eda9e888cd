"""Outbound gRPC channels between services: the service token and the current request id ride along."""

from __future__ import annotations

import collections

import grpc

from services.common import logs


class _CallDetails(
    collections.namedtuple(
        "_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")
    ),
    grpc.ClientCallDetails,
):
    pass


class _MetadataInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    def __init__(self, token: str) -> None:
        self._authorization = ("authorization", f"Bearer {token}")

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = [item for item in (details.metadata or ()) if item[0] != "authorization"]
        metadata.append(self._authorization)
        request_id = logs.current_request_id()
        if request_id and not any(key == logs.REQUEST_ID_HEADER for key, _ in metadata):
            metadata.append((logs.REQUEST_ID_HEADER, request_id))
        return _CallDetails(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            details.wait_for_ready,
            details.compression,
        )

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)


def service_channel(target: str, token: str) -> grpc.Channel:
    """An insecure channel to another HireMeter service (loopback or a private network; TLS is opt-in)."""
    channel = grpc.insecure_channel(
        target,
        options=[
            ("grpc.max_receive_message_length", 32 * 1024 * 1024),
            ("grpc.enable_retries", 0),
        ],
    )
    return grpc.intercept_channel(channel, _MetadataInterceptor(token))
