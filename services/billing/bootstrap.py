"""Composition root of billing: a read engine on the ledger database, queries, service and servicer."""

from __future__ import annotations

from hiremeter.billing.v1 import billing_pb2, billing_pb2_grpc

from services.billing.config import Settings
from services.billing.domain.page_tokens import PageTokens
from services.billing.service import BillingService
from services.billing.servicer import BillingServicer
from services.billing.storage.queries import BillingQueries
from services.common.db import make_engine
from services.common.grpc_server import GrpcService, RunningServer, build_server

SERVICE_NAME = billing_pb2.DESCRIPTOR.services_by_name["Billing"].full_name


def start(settings: Settings) -> RunningServer:
    engine = make_engine(settings.database_url)
    service = BillingService(BillingQueries(engine), PageTokens(settings.page_token_secret))
    servicer = BillingServicer(service)
    running = build_server(
        settings.server,
        [
            GrpcService(
                SERVICE_NAME, lambda server: billing_pb2_grpc.add_BillingServicer_to_server(servicer, server)
            )
        ],
    )
    running.on_stop.append(engine.dispose)
    return running
