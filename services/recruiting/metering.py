"""TrackRequests for the outbox: one per operation, built from what OpenAI reported."""

from __future__ import annotations

import datetime as dt

from google.protobuf.timestamp_pb2 import Timestamp
from hiremeter.usage.v1 import usage_tracker_pb2

from services.recruiting.domain.usage import TokenCounts

CV_PARSING = usage_tracker_pb2.CATEGORY_CV_PARSING
QUESTION_GENERATION = usage_tracker_pb2.CATEGORY_QUESTION_GENERATION
VIDEO_INTERVIEW = usage_tracker_pb2.CATEGORY_VIDEO_INTERVIEW


def timestamp(value: dt.datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def token_usage(counts: TokenCounts) -> usage_tracker_pb2.TokenUsage:
    return usage_tracker_pb2.TokenUsage(**counts.as_dict())


def track_request(
    *,
    operation_id: str,
    category: int,
    company_id: str,
    job_id: str,
    candidate_id: str,
    model: str,
    usage: TokenCounts | None,
    started: dt.datetime,
    completed: dt.datetime,
    quantity: str,
    openai_project_id: str,
) -> usage_tracker_pb2.TrackRequest:
    request = usage_tracker_pb2.TrackRequest(
        operation_id=operation_id,
        category=category,
        company_id=company_id,
        job_id=job_id,
        candidate_id=candidate_id,
        model=model,
        started_time=timestamp(started),
        completed_time=timestamp(max(completed, started)),
        quantity=quantity,
        openai_project_id=openai_project_id,
    )
    if usage is not None:
        request.usage.CopyFrom(token_usage(usage))
    return request


def reservation_request(
    *,
    operation_id: str,
    category: int,
    company_id: str,
    job_id: str,
    candidate_id: str,
    model: str,
    started: dt.datetime,
    quantity: str,
    openai_project_id: str,
) -> usage_tracker_pb2.TrackRequest:
    """The intent written before OpenAI is called: no usage and no completed_time yet (the model is the one
    requested). Completed by the result's transaction, or released by the relay as an orphan."""
    return usage_tracker_pb2.TrackRequest(
        operation_id=operation_id,
        category=category,
        company_id=company_id,
        job_id=job_id,
        candidate_id=candidate_id,
        model=model,
        started_time=timestamp(started),
        quantity=quantity,
        openai_project_id=openai_project_id,
    )
