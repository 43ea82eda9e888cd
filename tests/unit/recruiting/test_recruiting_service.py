"""The service layer with in-memory fakes: a spent-but-failed call is still metered, a bad one writes nothing."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy.exc
from hiremeter.usage.v1 import usage_tracker_pb2

from services.common.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from services.recruiting.clients.openai_client import Completion, OpenAISettings
from services.recruiting.domain.usage import TokenCounts
from services.recruiting.service import ModelOutputError, RecruitingService
from services.recruiting.storage.repository import OutboxItem

NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
USAGE = TokenCounts(input_tokens=900, output_tokens=120, cached_input_tokens=256)
RESUME_REPLY = json.dumps(
    {k: [] for k in ("emails", "phones", "skills", "experience", "education", "languages", "links")}
    | {"full_name": "Jane", "location": "", "summary": ""}
)


class FakeRepository:
    """Reservations as the SQL repository keeps them: every transition out of 'reserved' is conditional."""

    def __init__(self) -> None:
        self.outbox, self.resumes, self.question_sets = [], {}, {}
        self.states: dict[str, str] = {}
        self.reserved_items: dict[str, OutboxItem] = {}
        self.release_at: dict[str, dt.datetime] = {}
        self.notes: dict[str, str] = {}
        self.down = False  # every write fails as a dead database does
        self.results_down = False  # only the result's transaction fails

    def _check(self, results=False):
        if self.down or (results and self.results_down):
            raise sqlalchemy.exc.OperationalError("INSERT", {}, Exception("connection refused"))

    def reserve(self, item, *, release_at):
        self._check()
        self.states[item.operation_id] = "reserved"
        self.reserved_items[item.operation_id] = item
        self.release_at[item.operation_id] = release_at

    def abandon(self, operation_id, *, reason):
        self._check()
        if self.states.get(operation_id) != "reserved":
            return False
        self.states[operation_id] = "abandoned"
        self.notes[operation_id] = reason
        return True

    def note(self, operation_id, *, reason):
        self._check()
        self.notes[operation_id] = reason

    def _complete(self, item):
        if self.states.get(item.operation_id, "reserved") != "reserved":
            return False
        self.states[item.operation_id] = "ready"
        self.outbox.append(item)
        return True

    def add_resume(self, resume, item):
        self._check(results=True)
        self.resumes[resume.resume_id] = resume
        return self._complete(item)

    def get_resume(self, resume_id):
        return self.resumes.get(resume_id)

    def add_question_set(self, question_set, item):
        self._check(results=True)
        self.question_sets[question_set.question_set_id] = question_set
        return self._complete(item)

    def add_outbox(self, item):
        self._check(results=True)
        return self._complete(item)


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


# -- reservations: the intent is durable before OpenAI is called --------------------------------------------


class FailingOpenAI(FakeOpenAI):
    def __init__(self, error) -> None:
        super().__init__()
        self.error = error

    def structured(self, **_):
        self.calls += 1
        raise self.error


def settlements_of(repository, openai):
    settled = []
    svc = RecruitingService(repository, openai, settle_later=settled.append, clock=lambda: NOW)
    return svc, settled


def parse(svc):
    return svc.parse_resume(company_id="acme", job_id="j", candidate_id="c", file_name="", content=b"Jane")


def test_the_database_down_before_the_call_means_openai_is_never_called():
    repository, openai = FakeRepository(), FakeOpenAI(content=RESUME_REPLY)
    repository.down = True
    svc, settled = settlements_of(repository, openai)
    with pytest.raises(Unavailable, match="database is unavailable"):
        parse(svc)
    assert openai.calls == 0 and repository.outbox == [] and repository.states == {}
    # Should the reservation have committed after all, the relay abandons it: it must never be billed.
    [settlement] = settled
    assert settlement.item is None and "OpenAI was not called" in settlement.reason


def test_the_reservation_holds_the_intent_and_is_completed_with_the_exact_usage():
    repository = FakeRepository()
    result = parse(service(FakeOpenAI(content=RESUME_REPLY), repository))
    operation_id = result.resume.operation_id
    reserved = usage_tracker_pb2.TrackRequest.FromString(repository.reserved_items[operation_id].payload)
    assert reserved.operation_id == operation_id and reserved.model == "gpt-4o"  # the model requested
    assert not reserved.HasField("usage") and not reserved.HasField("completed_time")
    assert (reserved.company_id, reserved.job_id, reserved.candidate_id) == ("acme", "j", "c")
    assert reserved.openai_project_id == "proj_1" and reserved.quantity == "1"
    # Grace: the longest call (5 s x 1 attempt) + 30 s.
    assert repository.release_at[operation_id] == NOW + dt.timedelta(seconds=35)
    assert repository.states[operation_id] == "ready"
    done = tracked(repository)
    assert done.operation_id == operation_id and done.model == "gpt-4o-2024-08-06"
    assert done.usage.input_tokens == 900 and done.HasField("completed_time")


def test_a_result_that_cannot_be_stored_is_handed_to_the_relay_with_its_exact_usage():
    repository = FakeRepository()
    repository.results_down = True
    svc, settled = settlements_of(repository, FakeOpenAI(content=RESUME_REPLY))
    with pytest.raises(Unavailable, match="metered as op_"):
        parse(svc)
    [operation_id] = repository.states
    assert repository.states[operation_id] == "reserved"  # billed after its grace if this process dies
    [settlement] = settled
    assert settlement.operation_id == operation_id
    request = usage_tracker_pb2.TrackRequest.FromString(settlement.item.payload)
    assert request.usage.input_tokens == 900 and request.usage.cached_input_tokens == 256


def test_a_refusal_whose_metering_cannot_be_stored_is_handed_to_the_relay():
    repository = FakeRepository()
    repository.results_down = True
    svc, settled = settlements_of(repository, FakeOpenAI(refusal="no"))
    with pytest.raises(Unavailable):
        parse(svc)
    [settlement] = settled
    assert usage_tracker_pb2.TrackRequest.FromString(settlement.item.payload).usage.output_tokens == 120


def _spent(error, spent):
    error.openai_may_have_spent = spent
    return error


@pytest.mark.parametrize(
    ("error", "state"),
    [
        (_spent(ResourceExhausted("rate limited", retry_after_seconds=1), False), "abandoned"),
        (_spent(InvalidArgument("OpenAI rejected resume parsing"), False), "abandoned"),
        (_spent(Unavailable("OpenAI is unreachable"), False), "abandoned"),  # connection refused
        (_spent(DeadlineExceeded("OpenAI did not answer in time"), True), "reserved"),
        (_spent(Unavailable("OpenAI failed (status 503)"), True), "reserved"),
        (Unavailable("no spend information: assume spent"), "reserved"),
    ],
)
def test_a_failed_call_abandons_its_reservation_only_when_it_did_no_work(error, state):
    repository, openai = FakeRepository(), FailingOpenAI(error)
    with pytest.raises(type(error)):
        parse(service(openai, repository))
    [(operation_id, got)] = repository.states.items()
    assert got == state
    assert error.code.name in repository.notes[operation_id]
    assert repository.outbox == []


def test_an_abandonment_the_database_refuses_is_left_to_the_relay():
    class DiesAfterReserving(FakeRepository):
        def abandon(self, operation_id, *, reason):
            raise sqlalchemy.exc.OperationalError("UPDATE", {}, Exception("gone"))

    repository = DiesAfterReserving()
    svc, settled = settlements_of(repository, FailingOpenAI(_spent(InvalidArgument("bad"), False)))
    with pytest.raises(InvalidArgument):
        parse(svc)
    [settlement] = settled
    assert settlement.item is None and settlement.operation_id in repository.states
