"""Interviews over the simulator's Realtime WebSocket (tools.interview_driver), and their response.done usages
as RealtimeResponseUsage messages."""

from __future__ import annotations

from hiremeter.recruiting.v1 import recruiting_pb2

from services.recruiting.domain.usage import RealtimeUsage
from tools.interview_driver import drive_interview

__all__ = ["as_messages", "drive_interview"]


def as_messages(usages: list) -> list[recruiting_pb2.RealtimeResponseUsage]:
    return [recruiting_pb2.RealtimeResponseUsage(**vars(RealtimeUsage.from_event_usage(u))) for u in usages]
