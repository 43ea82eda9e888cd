"""GenerateInterviewQuestions: staged counts honoured exactly, billed per question, tenant-scoped."""

from __future__ import annotations

import grpc
import pytest
from hiremeter.recruiting.v1 import recruiting_pb2
from hiremeter.usage.v1 import usage_tracker_pb2

from tests.grpc.recruiting.conftest import code_of

TEXT_CV = b"Jane Doe\nSenior Backend Engineer\njane.doe@example.com\nSkills: Python, PostgreSQL"


def resume_id(stub, company="acme") -> str:
    request = recruiting_pb2.ParseResumeRequest(company_id=company, job_id="job-1", content=TEXT_CV)
    return stub.ParseResume(request, timeout=15).resume.resume_id


def generate(stub, resume, stages=(), **fields):
    request = recruiting_pb2.GenerateInterviewQuestionsRequest(
        company_id=fields.pop("company_id", "acme"),
        resume_id=resume,
        job_description=fields.pop("job_description", "Backend engineer: Python, PostgreSQL, gRPC."),
        stages=[recruiting_pb2.StageRequest(stage=name, count=count) for name, count in stages],
        **fields,
    )
    return stub.GenerateInterviewQuestions(request, timeout=15)


def test_default_stages_are_screening_technical_behavioural(stub, outbox_rows, sim):
    response = generate(stub, resume_id(stub))
    counts = [(stage.stage, len(stage.questions)) for stage in response.question_set.stages]
    assert counts == [("screening", 3), ("technical", 5), ("behavioural", 3)]
    assert response.question_count == 11
    assert all(q.text for stage in response.question_set.stages for q in stage.questions)
    track = outbox_rows()[-1]
    assert track.category == usage_tracker_pb2.CATEGORY_QUESTION_GENERATION
    assert track.quantity == "11" and track.operation_id == response.operation_id
    assert track.usage.input_tokens == sim.requests()[-1]["input_tokens"]
    assert track.candidate_id == response.question_set.candidate_id


def test_custom_stages_get_exactly_their_counts(stub, outbox_rows):
    response = generate(stub, resume_id(stub), [("culture", 1), ("system design", 4)], job_id="job-9")
    assert [len(stage.questions) for stage in response.question_set.stages] == [1, 4]
    assert response.question_set.job_id == "job-9"
    assert outbox_rows()[-1].quantity == "5"


def test_another_companys_resume_is_not_found_and_nothing_is_written(stub, outbox_rows, sim):
    foreign = resume_id(stub, company="globex")
    code, details = code_of(lambda: generate(stub, foreign))
    assert code == grpc.StatusCode.NOT_FOUND and "resume_id" in details
    code, _ = code_of(lambda: generate(stub, "res_unknown"))
    assert code == grpc.StatusCode.NOT_FOUND
    assert len(outbox_rows()) == 1 and len(sim.requests()) == 1  # only the parse


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stages": [("screening", 0)]}, "stages[0].count must be between 1 and 20"),
        ({"stages": [("screening", 21)]}, "stages[0].count must be between 1 and 20"),
        ({"stages": [("", 2)]}, "stages[0].stage must be 1-64"),
        ({"job_description": "  "}, "job_description must not be empty"),
        ({"job_description": "x" * 20_001}, "job_description must be at most 20000"),
        ({"company_id": "a b"}, "company_id must be 1-128 characters"),
        ({"resume": ""}, "resume_id must not be empty"),
    ],
)
def test_bad_requests_are_invalid_argument_naming_the_field(stub, outbox_rows, kwargs, message):
    kwargs = dict(kwargs)
    resume = kwargs.pop("resume", "res_x")
    code, details = code_of(lambda: generate(stub, resume, **kwargs))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message in details
    assert outbox_rows() == []
