"""Pricing through the real gRPC surface on SQLite and PostgreSQL: the seed example, disjoint token
classes, model resolution, unknown models, price versions, margins and fallback."""

from __future__ import annotations

import datetime as dt

from hiremeter.usage.v1 import usage_tracker_pb2 as pb

from tests.grpc.usage_tracker.tracker_helpers import track_request

UTC = dt.UTC


def test_seed_example_is_exact(tracker):
    response = tracker.stub.Track(
        track_request("op-seed", usage={"input_tokens": 1500, "output_tokens": 500})
    )
    record = response.record
    assert not response.duplicate
    assert (record.base_cost, record.cost, record.margin) == ("0.00875", "0.0109375", "0.25")
    assert record.source == pb.SOURCE_RESPONSE_USAGE
    assert (record.priced_model, record.price_version, record.unit, record.quantity) == (
        "gpt-4o",
        "2024-12-17",
        "cv",
        "1",
    )
    assert tracker.count() == 1
