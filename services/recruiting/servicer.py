"""Recruiting's gRPC surface. Every RPC not yet built answers UNIMPLEMENTED (the generated default)."""

from __future__ import annotations

from hiremeter.recruiting.v1 import recruiting_pb2_grpc
from sqlalchemy.engine import Engine


class RecruitingServicer(recruiting_pb2_grpc.RecruitingServicer):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
