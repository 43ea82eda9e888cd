"""The service layer with in-memory fakes: a spent-but-failed call is still metered, a bad one writes nothing."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hiremeter.usage.v1 import usage_tracker_pb2

from services.common.errors import FailedPrecondition, InvalidArgument, NotFound
from services.recruiting.clients.openai_client import Completion, OpenAISettings
from services.recruiting.domain.usage import TokenCounts
from services.recruiting.service import ModelOutputError, RecruitingService

NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
USAGE = TokenCounts(input_tokens=900, output_tokens=120, cached_input_tokens=256)


class FakeRepository:
    def __init__(self) -> None:
        self.outbox, self.resumes, self.question_sets = [], {}, {}

    def add_resume(self, resume, item):
        self.resumes[resume.resume_id] = resume
        self.outbox.append(item)

    def get_resume(self, resume_id):
        return self.resumes.get(resume_id)

    def add_question_set(self, question_set, item):
        self.question_sets[question_set.question_set_id] = question_set
        self.outbox.append(item)

    def add_outbox(self, item):
        self.outbox.append(item)


class FakeOpenAI:
    settings = OpenAISettings("sk", "http://x/v1", "proj_1", 5, 0, "gpt-4o", "gpt-4o", "gpt-realtime")

    def __init__(self, content=None, refusal=None) -> None:
        self.content, self.refusal, self.calls = content, refusal, 0

    def structured(self, **_):
        self.calls += 1
        return Completion(self.content, self.refusal, "stop", "gpt-4o-2024-08-06", USAGE, NOW, NOW)


def service(openai, repository=None):
    return RecruitingService(repository or FakeRepository(), openai, clock=lambda: NOW)


def tracked(repository) -> usage_tracker_pb2.TrackRequest:
    [item] = repository.outbox
    return usage_tracker_pb2.TrackRequest.FromString(item.payload)


def test_a_refusal_is_metered_then_failed_precondition():
    repository = FakeRepository()
    with pytest.raises(FailedPrecondition, match="refused"):
        service(FakeOpenAI(refusal="I can't"), repository).parse_resume(
            company_id="acme", job_id="j", candidate_id="", file_name="", content=b"Jane"
        )
    request = tracked(repository)
    assert request.usage.input_tokens == 900 and request.usage.cached_input_tokens == 256
    assert request.model == "gpt-4o-2024-08-06" and request.openai_project_id == "proj_1"
    assert repository.resumes == {}


@pytest.mark.parametrize("content", ['{"full_name": 3}', '{"full_name": "cut off', None])
def test_an_unusable_reply_is_metered_then_internal(content):
    repository = FakeRepository()
    with pytest.raises(ModelOutputError, match="unusable"):
        service(FakeOpenAI(content=content), repository).parse_resume(
            company_id="acme", job_id="j", candidate_id="c", file_name="", content=b"Jane"
        )
    assert tracked(repository).category == usage_tracker_pb2.CATEGORY_CV_PARSING
    assert repository.resumes == {}


def test_too_few_questions_fail_and_are_metered_at_the_requested_quantity():
    repository = FakeRepository()
    resume_reply = json.dumps(
        {k: [] for k in ("emails", "phones", "skills", "experience", "education", "languages", "links")}
        | {"full_name": "Jane", "location": "", "summary": ""}
    )
    svc = service(FakeOpenAI(content=resume_reply), repository)
    resume = svc.parse_resume(
        company_id="acme", job_id="j", candidate_id="c", file_name="", content=b"Jane"
    ).resume
    repository.outbox.clear()
    svc._openai.content = json.dumps(
        {"stages": {"stage_1": {"questions": [{"text": "Why?", "rationale": ""}]}}}
    )
    from services.recruiting.domain.questions import StageSpec

    with pytest.raises(ModelOutputError, match="has 1 questions, 2 were requested"):
        svc.generate_questions(
            company_id="acme",
            job_id="",
            resume_id=resume.resume_id,
            job_description="d",
            stages=[StageSpec("s", 2)],
        )
    assert tracked(repository).quantity == "2"
    with pytest.raises(NotFound):
        svc.generate_questions(
            company_id="other", job_id="", resume_id=resume.resume_id, job_description="d", stages=[]
        )


def test_bad_input_never_reaches_openai_or_the_outbox():
    repository, openai = FakeRepository(), FakeOpenAI(content="{}")
    with pytest.raises(InvalidArgument, match="content must not be empty"):
        service(openai, repository).parse_resume(
            company_id="acme", job_id="j", candidate_id="", file_name="", content=b""
        )
    assert openai.calls == 0 and repository.outbox == []
