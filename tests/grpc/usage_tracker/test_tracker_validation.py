"""Bad requests through the real gRPC surface: INVALID_ARGUMENT naming the field, and nothing written."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from hiremeter.usage.v1 import usage_tracker_pb2 as pb

from tests.grpc.usage_tracker.tracker_helpers import stamp, track_request

UTC = dt.UTC
NOW = dt.datetime.now(UTC).replace(microsecond=0)
USAGE = {"input_tokens": 100, "output_tokens": 50}


def _without(field: str):
    def edit(request: pb.TrackRequest) -> None:
        request.ClearField(field)

    return edit


def _usage(**fields):
    def edit(request: pb.TrackRequest) -> None:
        request.usage.CopyFrom(pb.TokenUsage(**{**USAGE, **fields}))

    return edit


def _set(**fields):
    def edit(request: pb.TrackRequest) -> None:
        for name, value in fields.items():
            if isinstance(value, dt.datetime):
                getattr(request, name).CopyFrom(stamp(value))
            else:
                setattr(request, name, value)

    return edit


BAD_REQUESTS = [
    ("empty operation_id", _set(operation_id=""), "operation_id"),
    ("operation_id too long", _set(operation_id="x" * 129), "operation_id"),
    ("operation_id charset", _set(operation_id="op 1/2"), "operation_id"),
    ("category unspecified", _set(category=pb.CATEGORY_UNSPECIFIED), "category"),
    ("category unknown number", _set(category=42), "category"),
    ("empty company_id", _set(company_id=""), "company_id"),
    ("company_id charset", _set(company_id="acme;drop"), "company_id"),
    ("job_id too long", _set(job_id="j" * 200), "job_id"),
    ("candidate_id charset", _set(candidate_id="ann@example.com"), "candidate_id"),
    ("openai_project_id charset", _set(openai_project_id="proj default"), "openai_project_id"),
    ("empty model", _set(model=""), "model"),
    ("model charset", _set(model="gpt 4o"), "model"),
    ("missing started_time", _without("started_time"), "started_time"),
    ("missing completed_time", _without("completed_time"), "completed_time"),
    (
        "completed before started",
        _set(started_time=NOW - dt.timedelta(minutes=1), completed_time=NOW - dt.timedelta(minutes=2)),
        "completed_time",
    ),
    ("completed in the future", _set(completed_time=NOW + dt.timedelta(hours=1)), "completed_time"),
    ("started before 2015", _set(started_time=dt.datetime(2001, 1, 1, tzinfo=UTC)), "started_time"),
    ("window over a day", _set(started_time=NOW - dt.timedelta(days=2)), "completed_time"),
    ("quantity not decimal", _set(quantity="two"), "quantity"),
    ("quantity exponent", _set(quantity="1e3"), "quantity"),
    ("quantity zero", _set(quantity="0"), "quantity"),
    ("quantity negative", _set(quantity="-1"), "quantity"),
    ("fractional cv", _set(quantity="1.5"), "quantity"),
    ("questions without quantity", _set(category=pb.CATEGORY_QUESTION_GENERATION), "quantity"),
    (
        "interview longer than its window",
        _set(category=pb.CATEGORY_VIDEO_INTERVIEW, quantity="30"),
        "quantity",
    ),
    ("negative input tokens", _usage(input_tokens=-1), "usage.input_tokens"),
    ("negative output tokens", _usage(output_tokens=-5), "usage.output_tokens"),
    ("tokens above bound", _usage(input_tokens=10_000_000_001), "usage.input_tokens"),
    ("cached above input", _usage(cached_input_tokens=101), "usage.cached_input_tokens"),
    ("audio above input", _usage(input_audio_tokens=101), "usage.input_audio_tokens"),
    (
        "cached audio above cached",
        _usage(input_audio_tokens=50, cached_input_audio_tokens=10),
        "usage.cached_input_audio_tokens",
    ),
    ("output audio above output", _usage(output_audio_tokens=51), "usage.output_audio_tokens"),
    (
        "reasoning above text output",
        _usage(output_audio_tokens=40, reasoning_tokens=11),
        "usage.reasoning_tokens",
    ),
    (
        "cached plus audio above input",
        _usage(cached_input_tokens=60, input_audio_tokens=60),
        "usage.input_audio_tokens",
    ),
]


@pytest.mark.parametrize(("case", "edit", "field"), BAD_REQUESTS, ids=[case for case, _, _ in BAD_REQUESTS])
def test_bad_request_names_the_field_and_writes_nothing(tracker, case, edit, field):
    request = track_request("op-bad", usage=USAGE)
    edit(request)
    with pytest.raises(grpc.RpcError) as error:
        tracker.stub.Track(request)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, case
    assert error.value.details().startswith(field + " "), error.value.details()

    # In a batch, the same problem fails everything, named by its index; nothing is written.
    batch = pb.TrackBatchRequest(requests=[track_request(f"ok-{i}", usage=USAGE) for i in range(3)])
    batch.requests.insert(2, request)
    with pytest.raises(grpc.RpcError) as error:
        tracker.stub.TrackBatch(batch)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith(f"requests[2].{field} "), error.value.details()
    assert tracker.count() == 0
    assert tracker.rows("usage_rollups") == []


def test_bad_batches_and_admin_requests(tracker):
    cases = [
        (lambda: tracker.stub.TrackBatch(pb.TrackBatchRequest()), "requests"),
        (
            lambda: tracker.stub.TrackBatch(
                pb.TrackBatchRequest(
                    requests=[
                        track_request("same", usage=USAGE),
                        track_request("same", usage={**USAGE, "output_tokens": 7}),
                    ]
                )
            ),
            "requests[1].operation_id",
        ),
        (lambda: tracker.stub.Reconcile(pb.ReconcileRequest(date="yesterday")), "date"),
        (
            lambda: tracker.stub.ListReconciliationReports(pb.ListReconciliationReportsRequest(page_size=-1)),
            "page_size",
        ),
        (
            lambda: tracker.stub.ListReconciliationReports(
                pb.ListReconciliationReportsRequest(page_token="zz")
            ),
            "page_token",
        ),
        (lambda: tracker.stub.GetCompanyMargin(pb.GetCompanyMarginRequest()), "company_id"),
        (
            lambda: tracker.stub.SetCompanyMargin(pb.SetCompanyMarginRequest(company_id="a", margin="-0.1")),
            "margin",
        ),
        (lambda: tracker.stub.AddPriceVersion(pb.AddPriceVersionRequest()), "price_version.version"),
        (
            lambda: tracker.stub.AddPriceVersion(
                pb.AddPriceVersionRequest(
                    price_version=pb.PriceVersion(
                        version="v2",
                        effective_time=stamp(NOW),
                        models=[
                            pb.ModelPrice(
                                model="gpt-4o", text_input="2.5", cached_text_input="x", text_output="10"
                            )
                        ],
                    )
                )
            ),
            "price_version.models[0].cached_text_input",
        ),
    ]
    for call, field in cases:
        with pytest.raises(grpc.RpcError) as error:
            call()
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert error.value.details().startswith(field), error.value.details()
    assert tracker.count() == 0
