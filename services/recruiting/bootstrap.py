"""Composition root of recruiting: engine, repository, OpenAI client, outbox relay and servicer on a server."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from hiremeter.recruiting.v1 import recruiting_pb2, recruiting_pb2_grpc

from services.common.db import make_engine
from services.common.grpc_server import GrpcService, RunningServer, build_server
from services.recruiting.clients.openai_client import OpenAIClient
from services.recruiting.clients.usage_tracker import UsageTrackerClient
from services.recruiting.config import Settings
from services.recruiting.outbox.relay import OutboxRelay
from services.recruiting.service import RecruitingService
from services.recruiting.servicer import RecruitingServicer
from services.recruiting.storage.repository import SqlRepository

SERVICE_NAME = recruiting_pb2.DESCRIPTOR.services_by_name["Recruiting"].full_name


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def start(settings: Settings, *, clock: Callable[[], dt.datetime] = _utcnow) -> RunningServer:
    """Starts the server and the relay. The relay is stopped (and the engine disposed) by running.stop()."""
    engine = make_engine(settings.database_url)
    repository = SqlRepository(engine)
    tracker = UsageTrackerClient(settings.usage_tracker_target, settings.server.service_token)
    relay = OutboxRelay(repository, tracker.track, settings.relay, track_batch=tracker.track_batch)
    openai_client = OpenAIClient(settings.openai)
    grace = settings.orphan_grace_seconds
    service = RecruitingService(
        repository,
        openai_client,
        on_commit=relay.notify,
        settle_later=relay.settle_later,
        orphan_grace=dt.timedelta(seconds=grace) if grace is not None else None,
        clock=clock,
    )
    servicer = RecruitingServicer(service)
    running = build_server(
        settings.server,
        [
            GrpcService(
                SERVICE_NAME,
                lambda server: recruiting_pb2_grpc.add_RecruitingServicer_to_server(servicer, server),
            )
        ],
    )
    relay.start()
    running.relay = relay  # for tests and operators: delivery counters
    running.on_stop.extend([relay.stop, tracker.close, openai_client.close, engine.dispose])
    return running
