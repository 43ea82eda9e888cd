"""Composition root of the usage tracker: engine and servicer, mounted on a server."""

from __future__ import annotations

from hiremeter.usage.v1 import usage_tracker_pb2, usage_tracker_pb2_grpc

from services.common.db import make_engine
from services.common.grpc_server import GrpcService, RunningServer, build_server
from services.usage_tracker.config import Settings
from services.usage_tracker.servicer import UsageTrackerServicer

SERVICE_NAME = usage_tracker_pb2.DESCRIPTOR.services_by_name["UsageTracker"].full_name


def start(settings: Settings) -> RunningServer:
    engine = make_engine(settings.database_url)
    servicer = UsageTrackerServicer(engine)
    running = build_server(
        settings.server,
        [
            GrpcService(
                SERVICE_NAME,
                lambda server: usage_tracker_pb2_grpc.add_UsageTrackerServicer_to_server(servicer, server),
            )
        ],
    )
    running.on_stop.append(engine.dispose)
    return running
