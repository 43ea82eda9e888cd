"""The gateway's gRPC clients: one channel per backend, the service token and the request id on every call,
and a deadline on every call."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from hiremeter.billing.v1 import billing_pb2_grpc
from hiremeter.recruiting.v1 import recruiting_pb2_grpc

from gateway.config import Settings
from services.common import logs
from services.common.grpc_client import service_channel

BILLING_TIMEOUT_SECONDS = 15.0
EXPORT_TIMEOUT_SECONDS = 300.0
# Recruiting calls OpenAI (CV parsing and question generation take tens of seconds at worst).
RECRUITING_TIMEOUT_SECONDS = 120.0


def call_metadata() -> tuple[tuple[str, str], ...]:
    """The current request id, explicitly (the channel interceptor would add it too, from the same context)."""
    request_id = logs.current_request_id()
    return ((logs.REQUEST_ID_HEADER, request_id),) if request_id else ()


@dataclass
class GrpcClients:
    billing_channel: grpc.Channel
    recruiting_channel: grpc.Channel

    @classmethod
    def connect(cls, settings: Settings) -> GrpcClients:
        # Channels connect lazily: building them does no I/O, so a backend that is down only fails its calls.
        return cls(
            billing_channel=service_channel(settings.billing_target, settings.service_token),
            recruiting_channel=service_channel(settings.recruiting_target, settings.service_token),
        )

    @property
    def billing(self) -> billing_pb2_grpc.BillingStub:
        return billing_pb2_grpc.BillingStub(self.billing_channel)

    @property
    def recruiting(self) -> recruiting_pb2_grpc.RecruitingStub:
        return recruiting_pb2_grpc.RecruitingStub(self.recruiting_channel)

    def close(self) -> None:
        self.billing_channel.close()
        self.recruiting_channel.close()
