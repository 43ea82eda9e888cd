"""Test support for recruiting: a fake UsageTracker with Track's idempotency rules, and
Settings for an in-process recruiting server pointed at a simulator and a tracker."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace

import grpc
from hiremeter.usage.v1 import usage_tracker_pb2, usage_tracker_pb2_grpc

from services.common.config import ServerSettings
from services.common.grpc_server import GrpcService, RunningServer, build_server
from services.recruiting.clients.openai_client import OpenAISettings
from services.recruiting.config import Settings
from services.recruiting.outbox.relay import RelaySettings


@dataclass
class FakeUsageTracker(usage_tracker_pb2_grpc.UsageTrackerServicer):
    """Track and TrackBatch idempotent on operation_id: same payload -> duplicate, another -> ALREADY_EXISTS.
    `fail_with` makes every call fail with that code (an unhealthy tracker)."""

    records: dict[str, usage_tracker_pb2.TrackRequest] = field(default_factory=dict)
    calls: int = 0
    fail_with: grpc.StatusCode | None = None
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def Track(self, request, context):
        with self.lock:
            self.calls += 1
            if self.fail_with is not None:
                context.abort(self.fail_with, "fake tracker failure")
            known = self.records.get(request.operation_id)
            if known is not None and known != request:
                context.abort(grpc.StatusCode.ALREADY_EXISTS, "operation_id was tracked with another payload")
            self.records.setdefault(request.operation_id, request)
            record = usage_tracker_pb2.UsageRecord(
                operation_id=request.operation_id, category=request.category
            )
            return usage_tracker_pb2.TrackResponse(record=record, duplicate=known is not None)

    def TrackBatch(self, request, context):
        """All or nothing, like the real one: a conflicting request refuses the batch, naming it."""
        with self.lock:
            self.calls += 1
            if self.fail_with is not None:
                context.abort(self.fail_with, "fake tracker failure")
            for index, item in enumerate(request.requests):
                known = self.records.get(item.operation_id)
                if known is not None and known != item:
                    context.abort(
                        grpc.StatusCode.ALREADY_EXISTS,
                        f"requests[{index}].operation_id was tracked with another payload",
                    )
            results = []
            for item in request.requests:
                known = self.records.setdefault(item.operation_id, item)
                record = usage_tracker_pb2.UsageRecord(operation_id=item.operation_id, category=item.category)
                results.append(usage_tracker_pb2.TrackResponse(record=record, duplicate=known is not item))
            return usage_tracker_pb2.TrackBatchResponse(results=results)


def start_fake_tracker(server: ServerSettings, port: int = 0) -> tuple[RunningServer, FakeUsageTracker]:
    fake = FakeUsageTracker()
    name = usage_tracker_pb2.DESCRIPTOR.services_by_name["UsageTracker"].full_name
    running = build_server(
        replace(server, port=port),
        [GrpcService(name, lambda s: usage_tracker_pb2_grpc.add_UsageTrackerServicer_to_server(fake, s))],
    )
    fake.port = running.port
    return running, fake


def recruiting_settings(
    server: ServerSettings,
    database_url: str,
    tracker_target: str,
    *,
    base_url: str,
    api_key: str,
    project_id: str = "",
    max_retries: int = 0,
    timeout_seconds: float = 10.0,
    relay: RelaySettings | None = None,
    orphan_grace_seconds: float | None = None,
) -> Settings:
    return Settings(
        server=server,
        database_url=database_url,
        usage_tracker_target=tracker_target,
        openai=OpenAISettings(
            api_key=api_key,
            base_url=base_url,
            project_id=project_id,
            timeout_seconds=timeout_seconds,
            max_retries=max_retries,
            resume_model="gpt-4o",
            questions_model="gpt-4o",
            realtime_model="gpt-realtime",
        ),
        relay=relay
        or RelaySettings(
            backoff_base_seconds=0.05,
            backoff_max_seconds=0.5,
            track_timeout_seconds=2.0,
            idle_poll_seconds=0.5,
        ),
        orphan_grace_seconds=orphan_grace_seconds,
    )
