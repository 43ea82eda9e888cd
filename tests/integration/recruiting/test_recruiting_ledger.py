"""End to end into the real ledger: CVs (a real PDF and DOCX), questions and interviews, each billed once with
exactly the tokens the simulator served."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hiremeter.recruiting.v1 import recruiting_pb2

from tests.grpc.recruiting.recruiting_realtime import as_messages, drive_interview
from tests.unit.recruiting.recruiting_files import make_docx, make_pdf

TEXT_CV = b"Jane Doe\nSenior Backend Engineer\njane.doe@example.com\nSkills: Python, PostgreSQL"


def parse(stub, content=TEXT_CV, company="acme"):
    return stub.ParseResume(
        recruiting_pb2.ParseResumeRequest(company_id=company, job_id="job-1", content=content), timeout=15
    )


def timestamp(value: dt.datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


@pytest.mark.parametrize("make", [make_pdf, make_docx], ids=["pdf", "docx"])
def test_a_cv_reaches_the_ledger_with_the_tokens_served(stack, make):
    response = parse(stack.stub, make())
    [record] = stack.wait_for_ledger([response.operation_id])
    [served] = stack.sim.requests()
    assert record.category == "cv_parsing" and record.source == "response_usage"
    assert (record.company_id, record.job_id, record.candidate_id) == (
        "acme",
        "job-1",
        response.resume.candidate_id,
    )
    assert record.model == served["model"] == response.resume.model
    assert record.input_tokens == served["input_tokens"]
    assert record.cached_input_tokens == served["input_cached_tokens"]
    assert record.output_tokens == served["output_tokens"]
    assert record.quantity == Decimal(1) and record.unit == "cv"
    assert record.cost == record.base_cost * (1 + record.margin) and record.base_cost > 0


def test_questions_are_billed_per_question_generated(stack):
    resume = parse(stack.stub).resume
    response = stack.stub.GenerateInterviewQuestions(
        recruiting_pb2.GenerateInterviewQuestionsRequest(
            company_id="acme",
            resume_id=resume.resume_id,
            job_description="Backend engineer",
            stages=[
                recruiting_pb2.StageRequest(stage="screening", count=2),
                recruiting_pb2.StageRequest(stage="technical", count=4),
            ],
        ),
        timeout=15,
    )
    assert [len(stage.questions) for stage in response.question_set.stages] == [2, 4]
    [record] = stack.wait_for_ledger([response.operation_id])
    served = stack.sim.requests()[-1]
    assert record.category == "question_generation" and record.unit == "question"
    assert record.quantity == Decimal(6) == response.question_count
    assert (record.input_tokens, record.output_tokens) == (served["input_tokens"], served["output_tokens"])


def _start(stack):
    return stack.stub.StartInterview(
        recruiting_pb2.StartInterviewRequest(company_id="acme", job_id="job-1", candidate_id="cand-1"),
        timeout=15,
    )


def test_an_interview_is_billed_from_its_summed_response_done_usage(stack):
    started = _start(stack)
    usages = drive_interview(stack.sim.base_url, started.client_secret, turns=4)
    done = stack.stub.CompleteInterview(
        recruiting_pb2.CompleteInterviewRequest(
            company_id="acme",
            interview_id=started.interview.interview_id,
            response_usages=as_messages(usages),
        ),
        timeout=15,
    )
    [record] = stack.wait_for_ledger([done.interview.operation_id])
    assert record.category == "video_interview" and record.source == "response_usage"
    assert record.input_tokens == sum(u.input_tokens for u in usages)
    assert record.output_tokens == sum(u.output_tokens for u in usages)
    assert record.cached_input_tokens == sum(u.input_token_details.cached_tokens for u in usages)
    assert record.input_audio_tokens == sum(u.input_token_details.audio_tokens for u in usages)
    assert record.output_audio_tokens == sum(u.output_token_details.audio_tokens for u in usages)
    assert record.quantity == Decimal(done.interview.duration_minutes) and record.unit == "minute"
    served = [r for r in stack.sim.requests() if r["source"] != "chat"]
    assert sum(r["input_tokens"] for r in served) == record.input_tokens


def test_an_interview_without_usage_is_billed_through_the_usage_api(stack):
    started = _start(stack)
    usages = drive_interview(stack.sim.base_url, started.client_secret, turns=2)
    done = stack.stub.CompleteInterview(
        recruiting_pb2.CompleteInterviewRequest(
            company_id="acme", interview_id=started.interview.interview_id
        ),
        timeout=15,
    )
    [record] = stack.wait_for_ledger([done.interview.operation_id])
    assert record.source == "usage_api", record.fallback_reason
    assert record.input_tokens == sum(u.input_tokens for u in usages)
    assert record.output_tokens == sum(u.output_tokens for u in usages)


def test_with_the_usage_api_failing_an_interview_falls_back_per_minute_with_the_margin(stack):
    stack.sim.set_fault("usage", "error", status=500)
    stack.clock.offset = dt.timedelta(minutes=4)
    started = _start(stack)
    stack.clock.offset = dt.timedelta()
    end = started.interview.start_time.ToDatetime(tzinfo=dt.UTC) + dt.timedelta(minutes=4)
    done = stack.stub.CompleteInterview(
        recruiting_pb2.CompleteInterviewRequest(
            company_id="acme", interview_id=started.interview.interview_id, end_time=timestamp(end)
        ),
        timeout=15,
    )
    assert done.interview.duration_minutes == "4"
    [record] = stack.wait_for_ledger([done.interview.operation_id])
    assert record.source == "fallback"
    assert record.quantity == Decimal(4)
    assert record.base_cost == Decimal("1.20") and record.cost == Decimal("1.50")
