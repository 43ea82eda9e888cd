"""StartInterview / CompleteInterview: the client secret, a real Realtime session, metering, idempotency."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from hiremeter.recruiting.v1 import recruiting_pb2
from hiremeter.usage.v1 import usage_tracker_pb2

from tests.grpc.recruiting.conftest import code_of
from tests.grpc.recruiting.recruiting_realtime import as_messages, drive_interview

TEXT_CV = b"Jane Doe\nSenior Backend Engineer\njane.doe@example.com\nSkills: Python, PostgreSQL"


def question_set(stub):
    resume = stub.ParseResume(
        recruiting_pb2.ParseResumeRequest(company_id="acme", job_id="job-1", content=TEXT_CV), timeout=15
    ).resume
    return stub.GenerateInterviewQuestions(
        recruiting_pb2.GenerateInterviewQuestionsRequest(
            company_id="acme",
            resume_id=resume.resume_id,
            job_description="Backend engineer",
            stages=[recruiting_pb2.StageRequest(stage="screening", count=2)],
        ),
        timeout=15,
    ).question_set


def start(stub, **fields):
    fields.setdefault("company_id", "acme")
    return stub.StartInterview(recruiting_pb2.StartInterviewRequest(**fields), timeout=15)


def complete(stub, interview_id, **fields):
    fields.setdefault("company_id", "acme")
    return stub.CompleteInterview(
        recruiting_pb2.CompleteInterviewRequest(interview_id=interview_id, **fields), timeout=15
    )


def test_an_interview_runs_on_its_secret_and_is_billed_from_the_summed_usage(stub, sim, outbox_rows):
    questions = question_set(stub)
    started = start(stub, question_set_id=questions.question_set_id, secret_ttl_seconds=120)
    interview = started.interview
    assert started.client_secret.startswith("ek_")
    assert interview.state == recruiting_pb2.INTERVIEW_STATE_STARTED and interview.realtime_session_id
    assert (interview.job_id, interview.candidate_id) == (questions.job_id, questions.candidate_id)
    assert interview.model == "gpt-realtime"
    expires = started.client_secret_expire_time.ToDatetime(tzinfo=dt.UTC)
    assert abs((expires - interview.start_time.ToDatetime(tzinfo=dt.UTC)).total_seconds() - 120) < 5
    for stage in questions.stages:
        for question in stage.questions:
            assert question.text in started.instructions
    assert "Jane" in started.instructions or "Candidate:" in started.instructions

    usages = drive_interview(sim.base_url, started.client_secret, turns=3)
    response = complete(stub, interview.interview_id, response_usages=as_messages(usages))
    assert not response.already_completed
    assert response.interview.state == recruiting_pb2.INTERVIEW_STATE_COMPLETED
    assert response.usage.input_tokens == sum(u.input_tokens for u in usages)
    assert response.usage.cached_input_tokens == sum(u.input_token_details.cached_tokens for u in usages)
    assert response.usage.input_audio_tokens == sum(u.input_token_details.audio_tokens for u in usages)
    assert response.usage.output_audio_tokens == sum(u.output_token_details.audio_tokens for u in usages)
    track = outbox_rows()[-1]
    assert track.category == usage_tracker_pb2.CATEGORY_VIDEO_INTERVIEW
    assert track.usage == response.usage and track.model == "gpt-realtime"
    assert track.operation_id == response.interview.operation_id
    assert track.quantity == response.interview.duration_minutes

    again = complete(stub, interview.interview_id, response_usages=as_messages(usages[:1]))
    assert again.already_completed and again.interview == response.interview and again.usage == response.usage
    assert len(outbox_rows()) == 3  # parse, questions, interview: the second completion wrote nothing


def test_without_usage_the_track_request_has_none_and_the_duration_is_exact(stub, outbox_rows):
    started = start(stub, job_id="job-1", candidate_id="cand-1")
    end = started.interview.start_time.ToDatetime(tzinfo=dt.UTC) + dt.timedelta(seconds=30)
    response = complete(stub, started.interview.interview_id, end_time=_ts(end))
    assert response.interview.duration_minutes == "0.5"
    assert not response.HasField("usage")
    [track] = outbox_rows()
    assert not track.HasField("usage") and track.quantity == "0.5"


def _ts(value):
    from google.protobuf.timestamp_pb2 import Timestamp

    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def test_unknown_and_foreign_interviews_are_not_found(stub, outbox_rows):
    started = start(stub, job_id="job-1", candidate_id="cand-1")
    assert code_of(lambda: complete(stub, "int_nope"))[0] == grpc.StatusCode.NOT_FOUND
    code, details = code_of(lambda: complete(stub, started.interview.interview_id, company_id="globex"))
    assert code == grpc.StatusCode.NOT_FOUND and "interview_id" in details
    assert code_of(lambda: start(stub, question_set_id="qs_nope"))[0] == grpc.StatusCode.NOT_FOUND
    assert outbox_rows() == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"secret_ttl_seconds": 5}, "secret_ttl_seconds must be between 10 and 7200"),
        ({"secret_ttl_seconds": 7201}, "secret_ttl_seconds must be between 10 and 7200"),
        ({"job_id": ""}, "job_id must not be empty"),
        ({"candidate_id": "bad/id"}, "candidate_id must be 1-128 characters"),
        ({"model": "gpt realtime"}, "model must be 1-128 characters"),
    ],
)
def test_bad_start_requests_are_invalid_argument(stub, sim, fields, message):
    request = {"job_id": "job-1", "candidate_id": "cand-1", **fields}
    code, details = code_of(lambda: start(stub, **request))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message in details
    assert sim.stats()["requests"].get("client_secrets", 0) == 0


def test_bad_completions_are_invalid_argument_and_write_nothing(stub, outbox_rows):
    interview_id = start(stub, job_id="job-1", candidate_id="cand-1").interview.interview_id
    both = {
        "usage": usage_tracker_pb2.TokenUsage(input_tokens=5),
        "response_usages": [recruiting_pb2.RealtimeResponseUsage(input_tokens=5)],
    }
    cases = [
        (both, "either usage or response_usages"),
        (
            {"usage": usage_tracker_pb2.TokenUsage(input_tokens=5, cached_input_tokens=6)},
            "usage.cached_input_tokens",
        ),
        ({"response_usages": [recruiting_pb2.RealtimeResponseUsage(input_tokens=-1)]}, "response_usages[0]"),
        ({"end_time": _ts(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))}, "end_time must not be before"),
        (
            {"end_time": _ts(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))},
            "end_time must not be in the future",
        ),
        ({"interview_id": ""}, "interview_id must not be empty"),
    ]
    for fields, message in cases:
        fields = {"interview_id": interview_id, **fields}
        target = fields.pop("interview_id")
        code, details = code_of(lambda: complete(stub, target, **fields))  # noqa: B023
        assert code == grpc.StatusCode.INVALID_ARGUMENT and message in details, details
    assert outbox_rows() == []


def test_a_client_secret_failure_is_unavailable_and_stores_nothing(stub, sim):
    sim.set_fault("client_secrets", "error", status=502)
    code, _ = code_of(lambda: start(stub, job_id="job-1", candidate_id="cand-1"))
    assert code == grpc.StatusCode.UNAVAILABLE
