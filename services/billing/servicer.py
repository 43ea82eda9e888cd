"""Billing's gRPC surface. Every RPC not yet built answers UNIMPLEMENTED (the generated default)."""

from __future__ import annotations

from hiremeter.billing.v1 import billing_pb2_grpc
from sqlalchemy.engine import Engine


class BillingServicer(billing_pb2_grpc.BillingServicer):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
