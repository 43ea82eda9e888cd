"""UsageTracker's gRPC surface. Every RPC not yet built answers UNIMPLEMENTED (the generated default)."""

from __future__ import annotations

from hiremeter.usage.v1 import usage_tracker_pb2_grpc
from sqlalchemy.engine import Engine


class UsageTrackerServicer(usage_tracker_pb2_grpc.UsageTrackerServicer):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
