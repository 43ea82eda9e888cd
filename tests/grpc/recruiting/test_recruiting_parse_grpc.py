"""ParseResume on a real server through the real SDK against the simulator: files, metering, statuses."""

from __future__ import annotations

import time

import grpc
import pytest
from hiremeter.recruiting.v1 import recruiting_pb2, recruiting_pb2_grpc
from hiremeter.usage.v1 import usage_tracker_pb2

from services.common.grpc_client import service_channel
from services.recruiting.bootstrap import start
from tests.conftest import SERVICE_TOKEN
from tests.grpc.recruiting.conftest import code_of
from tests.support.recruiting import recruiting_settings
from tests.unit.recruiting.recruiting_files import make_docx, make_pdf, make_zip_bomb_docx

TEXT_CV = b"Jane Doe\nSenior Backend Engineer\njane.doe@example.com\nSkills: Python, PostgreSQL"


def parse(stub, content=TEXT_CV, **fields):
    request = recruiting_pb2.ParseResumeRequest(
        company_id=fields.pop("company_id", "acme"),
        job_id=fields.pop("job_id", "job-1"),
        content=content,
        **fields,
    )
    return stub.ParseResume(request, timeout=15)


def wait_for(predicate, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.parametrize(("make", "source_format"), [(make_pdf, "pdf"), (make_docx, "docx")])
def test_a_cv_is_parsed_stored_and_metered_with_the_tokens_served(
    stub, sim, tracker, outbox_rows, make, source_format
):
    response = parse(stub, make(), file_name="cv.bin", candidate_id="cand-7")
    resume = response.resume
    assert resume.source_format == source_format
    assert resume.full_name and resume.skills and resume.experience
    assert (resume.company_id, resume.job_id, resume.candidate_id) == ("acme", "job-1", "cand-7")
    served = sim.requests()
    assert len(served) == 1
    assert resume.model == served[0]["model"]
    [track] = outbox_rows()
    assert track.operation_id == response.operation_id
    assert track.category == usage_tracker_pb2.CATEGORY_CV_PARSING
    assert (track.company_id, track.job_id, track.candidate_id, track.quantity) == (
        "acme",
        "job-1",
        "cand-7",
        "1",
    )
    assert track.model == served[0]["model"]
    assert track.usage.input_tokens == served[0]["input_tokens"]
    assert track.usage.output_tokens == served[0]["output_tokens"]
    assert track.usage.cached_input_tokens == served[0]["input_cached_tokens"]
    assert track.usage == response.usage
    assert track.completed_time.ToDatetime() >= track.started_time.ToDatetime()
    wait_for(lambda: response.operation_id in tracker.records)
    assert tracker.records[response.operation_id] == track


def test_a_missing_candidate_id_is_generated(stub):
    assert parse(stub).resume.candidate_id.startswith("cand_")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"content": b""}, "content must not be empty"),
        ({"content": b"%PDF-1.4\nnot really"}, "content is a corrupt PDF"),
        ({"content": make_pdf(user_password="pw")}, "content is an encrypted PDF"),
        ({"content": make_zip_bomb_docx()}, "zip bomb"),
        ({"content": b"\x89PNG\r\n\x1a\n" + bytes(64)}, "content is a PNG image"),
        ({"content": b"a" * (10 * 1024 * 1024 + 1)}, "content must be at most"),
        ({"company_id": ""}, "company_id must not be empty"),
        ({"job_id": "bad id!"}, "job_id must be 1-128 characters"),
        ({"candidate_id": "x" * 129}, "candidate_id must be 1-128 characters"),
    ],
    ids=[
        "empty",
        "corrupt-pdf",
        "encrypted-pdf",
        "zip-bomb",
        "png",
        "too-large",
        "company",
        "job",
        "candidate",
    ],
)
def test_bad_input_is_invalid_argument_naming_the_field_and_writes_nothing(
    stub, sim, outbox_states, fields, message
):
    fields = dict(fields)
    content = fields.pop("content", TEXT_CV)
    code, details = code_of(lambda: parse(stub, content, **fields))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message in details
    assert outbox_states() == []  # not even a reservation: validation comes first
    assert sim.requests() == []


def test_a_refusal_is_failed_precondition_and_still_metered(stub, sim, outbox_rows):
    code, details = code_of(lambda: parse(stub, TEXT_CV + b"\n[[refuse]]"))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "refused" in details
    [track] = outbox_rows()
    served = sim.requests()
    assert track.usage.input_tokens == served[0]["input_tokens"] > 0
    assert track.operation_id in details


def test_rate_limit_is_resource_exhausted_with_retry_after(stub, sim, outbox_rows, outbox_states):
    sim.set_fault("chat", "rate_limit", retry_after=7)
    with pytest.raises(grpc.RpcError) as info:
        parse(stub)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert ("retry-after", "7") in tuple(info.value.trailing_metadata())
    assert outbox_rows() == []
    # A 429 did no work: the reservation is abandoned, never billed.
    [(state, error)] = outbox_states()
    assert state == "abandoned" and "RESOURCE_EXHAUSTED" in error


@pytest.mark.parametrize(
    ("mode", "params", "expected"),
    [
        ("error", {"status": 503}, grpc.StatusCode.UNAVAILABLE),
        ("malformed", {}, grpc.StatusCode.UNAVAILABLE),
    ],
)
def test_openai_failures_map_to_clear_statuses(stub, sim, outbox_rows, outbox_states, mode, params, expected):
    sim.set_fault("chat", mode, **params)
    assert code_of(lambda: parse(stub))[0] == expected
    assert outbox_rows() == []
    # A 5xx or a malformed 200 may have spent tokens: the reservation stays, billed without usage after its
    # grace (tests/integration/recruiting/test_recruiting_reservations.py).
    [(state, error)] = outbox_states()
    assert state == "reserved" and "UNAVAILABLE" in error


def test_a_slow_openai_is_deadline_exceeded(
    server_settings, recruiting_database_url, tracker, sim, outbox_rows, outbox_states
):
    settings = recruiting_settings(
        server_settings,
        recruiting_database_url,
        f"127.0.0.1:{tracker.port}",
        base_url=sim.base_url,
        api_key=sim.api_key,
        timeout_seconds=0.5,
    )
    running = start(settings)
    channel = service_channel(f"127.0.0.1:{running.port}", SERVICE_TOKEN)
    try:
        sim.set_fault("chat", "slow", seconds=2)
        code, details = code_of(lambda: parse(recruiting_pb2_grpc.RecruitingStub(channel)))
        assert code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "in time" in details
        assert outbox_rows() == []
        [(state, error)] = outbox_states()  # the request was sent: it may have spent tokens
        assert state == "reserved" and "DEADLINE_EXCEEDED" in error
    finally:
        channel.close()
        running.stop()


def test_calls_without_the_service_token_are_refused(recruiting):
    channel = service_channel(f"127.0.0.1:{recruiting.port}", "wrong-token")
    try:
        code, _ = code_of(lambda: parse(recruiting_pb2_grpc.RecruitingStub(channel)))
        assert code == grpc.StatusCode.UNAUTHENTICATED
    finally:
        channel.close()
