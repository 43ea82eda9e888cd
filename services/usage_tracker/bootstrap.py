"""Composition root of the usage tracker: engine, repository, usage API client and tracker, mounted on a
server. Nothing is built at import time."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from hiremeter.usage.v1 import usage_tracker_pb2, usage_tracker_pb2_grpc
from sqlalchemy.engine import Engine

from services.common.db import is_sqlite, make_engine
from services.common.grpc_server import GrpcService, RunningServer, build_server
from services.usage_tracker.clients.usage_api import OpenAIUsageApi, UsageWindows
from services.usage_tracker.config import Settings
from services.usage_tracker.domain.price_admin import seed_versions
from services.usage_tracker.servicer import UsageTrackerServicer
from services.usage_tracker.storage.group_commit import GroupCommit
from services.usage_tracker.storage.repository import UsageRepository
from services.usage_tracker.tracker import Tracker, TrackerConfig

SERVICE_NAME = usage_tracker_pb2.DESCRIPTOR.services_by_name["UsageTracker"].full_name
log = logging.getLogger(__name__)


def build_tracker(settings: Settings, *, serving: bool = False) -> tuple[Tracker, Engine, GroupCommit | None]:
    """The tracker, the engine it uses and, when serving, the group commit writing Track's records (the
    caller closes the writer, then disposes of the engine). Seeds an empty price book."""
    # Enough connections for the writers plus the usage-API and administration paths.
    engine = make_engine(settings.database_url, pool_size=max(10, settings.commit_writers + 4))
    repository = UsageRepository(engine)
    seed = [dataclasses.replace(v, fallback_prices=dict(settings.fallback_prices)) for v in seed_versions()]
    if repository.seed_price_book(seed, dt.datetime.now(dt.UTC)):
        log.info("price book seeded", extra={"versions": [v.version for v in seed]})
    api = windows = None
    if settings.usage_api is not None:
        api = OpenAIUsageApi(settings.usage_api)
        windows = UsageWindows(api, settings.usage_api)
    config = TrackerConfig(
        default_margin=settings.default_margin,
        fallback_prices=dict(settings.fallback_prices),
        usage_lookup_timeout_seconds=settings.usage_lookup_timeout_seconds,
        default_openai_project_id=settings.default_openai_project_id,
        reconcile_settle_seconds=settings.reconcile_settle_seconds,
        margin_cache_seconds=settings.margin_cache_seconds,
    )
    writer = None
    if serving:
        writers = 1 if is_sqlite(engine) else settings.commit_writers  # SQLite has one writer anyway
        writer = GroupCommit(
            repository.append_group, repository.append, writers=writers, max_batch=settings.commit_max_batch
        )
    return Tracker(repository, config, windows, api, writer=writer), engine, writer


def start(settings: Settings) -> RunningServer:
    if settings.server is None:
        raise ValueError("start() needs server settings")
    tracker, engine, writer = build_tracker(settings, serving=True)
    servicer = UsageTrackerServicer(tracker)
    running = build_server(
        settings.server,
        [
            GrpcService(
                SERVICE_NAME,
                lambda server: usage_tracker_pb2_grpc.add_UsageTrackerServicer_to_server(servicer, server),
            )
        ],
        max_workers=settings.max_workers,
    )
    if writer is not None:
        running.on_stop.append(writer.close)
    running.on_stop.append(engine.dispose)
    return running
