"""Composition root of recruiting: engine, servicer, mounted on a server."""

from __future__ import annotations

from hiremeter.recruiting.v1 import recruiting_pb2, recruiting_pb2_grpc

from services.common.db import make_engine
from services.common.grpc_server import GrpcService, RunningServer, build_server
from services.recruiting.config import Settings
from services.recruiting.servicer import RecruitingServicer

SERVICE_NAME = recruiting_pb2.DESCRIPTOR.services_by_name["Recruiting"].full_name


def start(settings: Settings) -> RunningServer:
    engine = make_engine(settings.database_url)
    servicer = RecruitingServicer(engine)
    running = build_server(
        settings.server,
        [
            GrpcService(
                SERVICE_NAME,
                lambda server: recruiting_pb2_grpc.add_RecruitingServicer_to_server(servicer, server),
            )
        ],
    )
    running.on_stop.append(engine.dispose)
    return running
