"""Pricing through the real gRPC surface on SQLite and PostgreSQL: the seed example, disjoint token
classes, model resolution, unknown models, price versions, margins and fallback."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from hiremeter.usage.v1 import usage_tracker_pb2 as pb

from tests.grpc.usage_tracker.tracker_helpers import stamp, track_request

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


def test_cached_audio_and_reasoning_tokens_are_each_priced_once(tracker):
    usage = {
        "input_tokens": 1000,
        "cached_input_tokens": 400,
        "input_audio_tokens": 300,
        "cached_input_audio_tokens": 100,
        "output_tokens": 500,
        "output_audio_tokens": 200,
        "reasoning_tokens": 50,
    }
    record = tracker.stub.Track(
        track_request(
            "op-rt",
            model="gpt-realtime-2025-08-28",
            usage=usage,
            category=pb.CATEGORY_VIDEO_INTERVIEW,
            quantity="0.1",
        )
    ).record
    # text in 400 x 4 + cached text 300 x 0.40 + audio in 200 x 32 + cached audio 100 x 0.40
    # + text out 300 x 16 (reasoning inside) + audio out 200 x 64 = 25,760 per 1M
    assert (record.priced_model, record.base_cost, record.cost) == ("gpt-realtime", "0.02576", "0.0322")
    assert record.unit == "minute" and record.quantity == "0.1"

    with_reasoning = tracker.stub.Track(
        track_request(
            "op-reason", usage={"input_tokens": 1500, "output_tokens": 500, "reasoning_tokens": 400}
        )
    ).record
    assert with_reasoning.base_cost == "0.00875"  # reasoning is part of output, never added on top

    cached = tracker.stub.Track(
        track_request(
            "op-cached", usage={"input_tokens": 1500, "cached_input_tokens": 1000, "output_tokens": 500}
        )
    ).record
    assert cached.base_cost == "0.0075"  # 500 x 2.50 + 1000 x 1.25 + 500 x 10 = 7,500 per 1M


@pytest.mark.parametrize(
    ("model", "family", "base"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o", "0.00875"),
        ("gpt-4o-mini", "gpt-4o-mini", "0.000525"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini", "0.000525"),
        ("gpt-4o-realtime-preview-2024-12-17", "gpt-4o-realtime-preview", "0.0175"),
        ("gpt-4o-mini-realtime-preview", "gpt-4o-mini-realtime-preview", "0.0021"),
    ],
)
def test_models_resolve_to_their_own_family(tracker, model, family, base):
    record = tracker.stub.Track(
        track_request(f"op-{model}", model=model, usage={"input_tokens": 1500, "output_tokens": 500})
    ).record
    assert (record.priced_model, record.base_cost, record.source) == (family, base, pb.SOURCE_RESPONSE_USAGE)


@pytest.mark.parametrize(
    ("model", "usage", "reason"),
    [
        ("gpt-9-ultra", {"input_tokens": 1500, "output_tokens": 500}, "not in price version"),
        ("gpt-realtime-mini", {"input_tokens": 10, "output_tokens": 5}, "not in price version"),
        (
            "gpt-4o",
            {"input_tokens": 100, "input_audio_tokens": 50, "output_tokens": 5},
            "no audio_input price",
        ),
    ],
)
def test_unpriceable_usage_falls_back_flagged_never_zero(tracker, model, usage, reason):
    record = tracker.stub.Track(track_request(f"op-{model}", model=model, usage=usage)).record
    assert record.source == pb.SOURCE_FALLBACK
    assert reason in record.fallback_reason
    assert (record.base_cost, record.cost) == ("0.5", "0.625")


def test_fallback_prices_per_category_with_margin(tracker):
    question = tracker.stub.Track(
        track_request("op-q", model="mystery", category=pb.CATEGORY_QUESTION_GENERATION, quantity="12")
    ).record
    assert (question.base_cost, question.cost, question.quantity, question.unit) == (
        "0.01",
        "0.0125",
        "12",
        "question",
    )
    video = tracker.stub.Track(
        track_request(
            "op-v",
            category=pb.CATEGORY_VIDEO_INTERVIEW,
            quantity="4.5",
            started=dt.datetime.now(UTC) - dt.timedelta(minutes=10),
        )
    ).record
    # No usage and no usage API configured: flagged fallback, 4.5 minutes x 0.30.
    assert (video.source, video.base_cost, video.cost) == (pb.SOURCE_FALLBACK, "1.35", "1.6875")
    assert "usage API not configured" in video.fallback_reason


def test_new_price_version_leaves_old_records_alone(tracker):
    old = tracker.stub.Track(
        track_request("op-old", usage={"input_tokens": 1500, "output_tokens": 500})
    ).record
    effective = dt.datetime.now(UTC) - dt.timedelta(seconds=30)
    added = tracker.stub.AddPriceVersion(
        pb.AddPriceVersionRequest(
            price_version=pb.PriceVersion(
                version="2026-test",
                effective_time=stamp(effective),
                note="gpt-4o doubles",
                models=[
                    pb.ModelPrice(model="gpt-4o", text_input="5", cached_text_input="2.5", text_output="20")
                ],
                fallback_prices=[
                    pb.FallbackPrice(category=pb.CATEGORY_CV_PARSING, unit_price="0.60"),
                    pb.FallbackPrice(category=pb.CATEGORY_QUESTION_GENERATION, unit_price="0.02"),
                    pb.FallbackPrice(category=pb.CATEGORY_VIDEO_INTERVIEW, unit_price="0.40"),
                ],
            )
        )
    ).price_version
    assert added.version == "2026-test" and added.HasField("create_time")
    versions = tracker.stub.ListPriceVersions(pb.ListPriceVersionsRequest()).versions
    assert [v.version for v in versions] == ["2026-test", "2024-12-17"]

    new = tracker.stub.Track(
        track_request(
            "op-new",
            usage={"input_tokens": 1500, "output_tokens": 500},
            completed=dt.datetime.now(UTC).replace(microsecond=0),
        )
    ).record
    assert (new.price_version, new.base_cost) == ("2026-test", "0.0175")
    again = tracker.stub.Track(track_request("op-old", usage={"input_tokens": 1500, "output_tokens": 500}))
    assert (
        again.duplicate and again.record.price_version == "2024-12-17" and again.record.base_cost == "0.00875"
    )
    stored = {row["operation_id"]: row for row in tracker.rows()}
    assert (
        str(stored["op-old"]["base_cost"]).rstrip("0") == "0.00875"
        and stored["op-old"]["price_version"] == "2024-12-17"
    )
    assert old.record_id == again.record.record_id

    with pytest.raises(grpc.RpcError) as error:
        tracker.stub.AddPriceVersion(pb.AddPriceVersionRequest(price_version=added))
    assert error.value.code() == grpc.StatusCode.ALREADY_EXISTS


def test_company_margin_from_a_time_applies_to_every_source(tracker):
    now = dt.datetime.now(UTC).replace(microsecond=0)
    switch = now - dt.timedelta(minutes=30)
    tracker.stub.SetCompanyMargin(
        pb.SetCompanyMarginRequest(company_id="globex", margin="0.40", effective_time=stamp(switch))
    )
    usage = {"input_tokens": 1500, "output_tokens": 500}
    before = tracker.stub.Track(
        track_request(
            "m-before",
            company_id="globex",
            usage=usage,
            started=switch - dt.timedelta(minutes=2),
            completed=switch - dt.timedelta(minutes=1),
        )
    ).record
    after = tracker.stub.Track(track_request("m-after", company_id="globex", usage=usage)).record
    fallback = tracker.stub.Track(
        track_request(
            "m-fallback",
            company_id="globex",
            model="unknown-model",
            category=pb.CATEGORY_QUESTION_GENERATION,
            quantity="3",
        )
    ).record
    assert (before.margin, before.cost) == ("0.25", "0.0109375")
    assert (after.margin, after.cost) == ("0.4", "0.01225")
    assert (fallback.source, fallback.margin, fallback.cost) == (pb.SOURCE_FALLBACK, "0.4", "0.014")

    got = tracker.stub.GetCompanyMargin(pb.GetCompanyMarginRequest(company_id="globex"))
    assert (got.margin.margin, got.is_default) == ("0.4", False)
    default = tracker.stub.GetCompanyMargin(pb.GetCompanyMarginRequest(company_id="initech"))
    assert (default.margin.margin, default.is_default) == ("0.25", True)
    history = tracker.stub.ListCompanyMargins(pb.ListCompanyMarginsRequest(company_id="globex")).margins
    assert [m.margin for m in history] == ["0.4"]
    with pytest.raises(grpc.RpcError) as error:
        tracker.stub.SetCompanyMargin(pb.SetCompanyMarginRequest(company_id="globex", margin="11"))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "margin" in error.value.details()
