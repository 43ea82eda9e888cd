"""UsageTracker.Track and TrackBatch for the outbox relay.

A gRPC channel that keeps failing to connect backs off on its own (1 s growing by 1.6x up to 2 minutes), so a
tracker that is back would stay unused for that long. The relay already paces its attempts (its own backoff with
jitter), so after an UNAVAILABLE answer this client simply starts a fresh channel: the next attempt connects at
once, and the relay's backoff is the only pacing.
"""

from __future__ import annotations

import threading

import grpc
from hiremeter.usage.v1 import usage_tracker_pb2, usage_tracker_pb2_grpc

from services.common.grpc_client import service_channel


class UsageTrackerClient:
    def __init__(self, target: str, token: str) -> None:
        self._target, self._token = target, token
        self._lock = threading.Lock()
        self._channel = service_channel(target, token)
        self._stub = usage_tracker_pb2_grpc.UsageTrackerStub(self._channel)

    def track(
        self, request: usage_tracker_pb2.TrackRequest, timeout: float
    ) -> usage_tracker_pb2.TrackResponse:
        stub = self._stub
        try:
            return stub.Track(request, timeout=timeout)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.UNAVAILABLE:
                self._reconnect()
            raise

    def track_batch(
        self, request: usage_tracker_pb2.TrackBatchRequest, timeout: float
    ) -> usage_tracker_pb2.TrackBatchResponse:
        stub = self._stub
        try:
            return stub.TrackBatch(request, timeout=timeout)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.UNAVAILABLE:
                self._reconnect()
            raise

    def _reconnect(self) -> None:
        with self._lock:
            old = self._channel
            self._channel = service_channel(self._target, self._token)
            self._stub = usage_tracker_pb2_grpc.UsageTrackerStub(self._channel)
        old.close()

    def close(self) -> None:
        with self._lock:
            self._channel.close()
