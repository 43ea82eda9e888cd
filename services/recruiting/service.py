"""Recruiting's service layer: the four operations, each metered through the outbox.

Order inside an operation: validate everything (InvalidArgument / NotFound write nothing), call OpenAI, then
in ONE transaction store the result and its TrackRequest, then wake the relay. A call that spent tokens and
then failed (a refusal, a reply that does not match the schema) is still metered: its outbox row is written
alone, and the caller gets FAILED_PRECONDITION (refusal) or INTERNAL naming the problem.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import sqlalchemy.exc

from services.common.errors import DomainError, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from services.recruiting import metering
from services.recruiting.clients.openai_client import Completion, OpenAIClient
from services.recruiting.domain import questions as q
from services.recruiting.domain.ids import check_id, new_id
from services.recruiting.domain.instructions import interview_instructions
from services.recruiting.domain.resume import (
    RESUME_SCHEMA,
    ModelOutputInvalid,
    ResumeData,
    parse_resume_content,
    resume_messages,
)
from services.recruiting.domain.usage import (
    RealtimeUsage,
    TokenCounts,
    decimal_text,
    duration_minutes,
    sum_realtime,
)
from services.recruiting.extraction import extract_text
from services.recruiting.storage.repository import (
    COMPLETED,
    STARTED,
    OutboxItem,
    Repository,
    StoredInterview,
    StoredQuestionSet,
    StoredResume,
)

log = logging.getLogger("hiremeter.recruiting")

DEFAULT_SECRET_TTL = 600
SECRET_TTL_RANGE = (10, 7200)
MAX_FUTURE_END = dt.timedelta(seconds=60)  # clock skew tolerated on a caller-supplied end_time
MAX_FILE_NAME = 255


class ModelOutputError(DomainError):
    """The model's reply was unusable (schema mismatch, truncation); the spent tokens were metered."""

    code = grpc.StatusCode.INTERNAL


@dataclass(frozen=True)
class ResumeResult:
    resume: StoredResume
    data: ResumeData
    usage: TokenCounts | None


@dataclass(frozen=True)
class QuestionsResult:
    question_set: StoredQuestionSet
    stages: list[q.QuestionStage]
    usage: TokenCounts | None


@dataclass(frozen=True)
class StartedInterview:
    interview: StoredInterview
    client_secret: str
    secret_expires_at: dt.datetime
    instructions: str


@dataclass(frozen=True)
class CompletedInterview:
    interview: StoredInterview
    usage: TokenCounts | None
    already_completed: bool


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _usage_json(usage: TokenCounts | None) -> str:
    return json.dumps(usage.as_dict(), sort_keys=True) if usage is not None else ""


def usage_from_json(text: str) -> TokenCounts | None:
    return TokenCounts(**json.loads(text)) if text else None


class RecruitingService:
    def __init__(
        self,
        repository: Repository,
        openai_client: OpenAIClient,
        *,
        on_commit: Callable[[], None] = lambda: None,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self._repository = repository
        self._openai = openai_client
        self._settings = openai_client.settings
        self._on_commit = on_commit
        self._clock = clock

    # -- helpers -------------------------------------------------------------------------------------------
    def _write(self, action: Callable[[], object]) -> object:
        try:
            result = action()
        except sqlalchemy.exc.OperationalError as error:
            log.error("recruiting database unavailable", exc_info=True)
            raise Unavailable("the recruiting database is unavailable; retry later") from error
        self._on_commit()
        return result

    def _read(self, action: Callable[[], object]) -> object:
        try:
            return action()
        except sqlalchemy.exc.OperationalError as error:
            raise Unavailable("the recruiting database is unavailable; retry later") from error

    def _outbox_item(self, operation_id: str, request) -> OutboxItem:
        return OutboxItem(operation_id, request.SerializeToString(), self._clock())

    def _meter_failure(self, completion: Completion, item: OutboxItem) -> None:
        self._write(lambda: self._repository.add_outbox(item))

    def _check_completion(self, completion: Completion, item: OutboxItem, what: str, parse):
        """parse(content) or, metering the call first, the error the caller gets."""
        if completion.refusal:
            self._meter_failure(completion, item)
            raise FailedPrecondition(
                f"the model refused {what}: {completion.refusal[:300]} (metered as {item.operation_id})"
            )
        try:
            return parse(completion.content)
        except ModelOutputInvalid as error:
            self._meter_failure(completion, item)
            log.warning("unusable model reply", extra={"what": what, "error": str(error)})
            reason = (
                " (the reply was cut off at the token limit)" if completion.finish_reason == "length" else ""
            )
            raise ModelOutputError(
                f"the model's reply for {what} was unusable: {error}{reason} (metered as {item.operation_id})"
            ) from None

    # -- ParseResume ---------------------------------------------------------------------------------------
    def parse_resume(
        self,
        *,
        company_id: str,
        job_id: str,
        candidate_id: str,
        file_name: str,
        content: bytes,
        remaining: float | None = None,
    ) -> ResumeResult:
        check_id("company_id", company_id)
        check_id("job_id", job_id)
        check_id("candidate_id", candidate_id, required=False)
        if len(file_name) > MAX_FILE_NAME:
            raise InvalidArgument(f"file_name must be at most {MAX_FILE_NAME} characters")
        extracted = extract_text(content)
        candidate_id = candidate_id or new_id("cand")
        completion = self._openai.structured(
            what="resume parsing",
            model=self._settings.resume_model,
            messages=resume_messages(extracted.text),
            schema_name="resume",
            schema=RESUME_SCHEMA,
            remaining=remaining,
        )
        operation_id = new_id("op")
        request = metering.track_request(
            operation_id=operation_id,
            category=metering.CV_PARSING,
            company_id=company_id,
            job_id=job_id,
            candidate_id=candidate_id,
            model=completion.model,
            usage=completion.usage,
            started=completion.started_at,
            completed=completion.completed_at,
            quantity="1",
            openai_project_id=self._settings.project_id,
        )
        item = self._outbox_item(operation_id, request)
        data = self._check_completion(completion, item, "to parse the CV", parse_resume_content)
        resume = StoredResume(
            resume_id=new_id("res"),
            company_id=company_id,
            job_id=job_id,
            candidate_id=candidate_id,
            source_format=extracted.source_format,
            file_name=file_name,
            model=completion.model,
            data=data.to_json(),
            operation_id=operation_id,
            created_at=completion.completed_at,
        )
        self._write(lambda: self._repository.add_resume(resume, item))
        return ResumeResult(resume, data, completion.usage)

    # -- GenerateInterviewQuestions ------------------------------------------------------------------------
    def generate_questions(
        self,
        *,
        company_id: str,
        job_id: str,
        resume_id: str,
        job_description: str,
        stages: list[q.StageSpec],
        remaining: float | None = None,
    ) -> QuestionsResult:
        check_id("company_id", company_id)
        check_id("job_id", job_id, required=False)
        check_id("resume_id", resume_id)
        description = q.check_job_description(job_description)
        specs = q.check_stages(stages)
        resume = self._read(lambda: self._repository.get_resume(resume_id))
        if resume is None or resume.company_id != company_id:
            raise NotFound(f"resume_id {resume_id} not found")
        job_id = job_id or resume.job_id
        completion = self._openai.structured(
            what="question generation",
            model=self._settings.questions_model,
            messages=q.questions_messages(specs, description, ResumeData.from_json(resume.data)),
            schema_name="interview_questions",
            schema=q.questions_schema(specs),
            remaining=remaining,
        )
        operation_id = new_id("op")
        requested = sum(spec.count for spec in specs)

        def request_for(quantity: int):
            return metering.track_request(
                operation_id=operation_id,
                category=metering.QUESTION_GENERATION,
                company_id=company_id,
                job_id=job_id,
                candidate_id=resume.candidate_id,
                model=completion.model,
                usage=completion.usage,
                started=completion.started_at,
                completed=completion.completed_at,
                quantity=str(quantity),
                openai_project_id=self._settings.project_id,
            )

        # A failed generation delivered no questions, but its tokens were spent; it is metered with the
        # quantity requested (the tracker needs quantity > 0, and the cost comes from the usage anyway).
        failed_item = self._outbox_item(operation_id, request_for(requested))
        result = self._check_completion(
            completion, failed_item, "to write the questions", lambda c: q.parse_questions_content(c, specs)
        )
        count = q.question_count(result)
        question_set = StoredQuestionSet(
            question_set_id=new_id("qs"),
            company_id=company_id,
            job_id=job_id,
            candidate_id=resume.candidate_id,
            resume_id=resume.resume_id,
            job_description=description,
            stages=q.stages_to_json(result),
            question_count=count,
            model=completion.model,
            operation_id=operation_id,
            created_at=completion.completed_at,
        )
        item = self._outbox_item(operation_id, request_for(count))
        self._write(lambda: self._repository.add_question_set(question_set, item))
        return QuestionsResult(question_set, result, completion.usage)

    # -- StartInterview ------------------------------------------------------------------------------------
    def start_interview(
        self,
        *,
        company_id: str,
        job_id: str,
        candidate_id: str,
        question_set_id: str,
        model: str,
        secret_ttl_seconds: int,
        remaining: float | None = None,
    ) -> StartedInterview:
        check_id("company_id", company_id)
        check_id("question_set_id", question_set_id, required=False)
        check_id("job_id", job_id, required=not question_set_id)
        check_id("candidate_id", candidate_id, required=not question_set_id)
        if model:
            check_id("model", model)
        ttl = secret_ttl_seconds or DEFAULT_SECRET_TTL
        low, high = SECRET_TTL_RANGE
        if not low <= ttl <= high:
            raise InvalidArgument(f"secret_ttl_seconds must be between {low} and {high}")
        question_set = None
        stages: list[q.QuestionStage] = []
        candidate_name = ""
        if question_set_id:
            question_set = self._read(lambda: self._repository.get_question_set(question_set_id))
            if question_set is None or question_set.company_id != company_id:
                raise NotFound(f"question_set_id {question_set_id} not found")
            job_id = job_id or question_set.job_id
            candidate_id = candidate_id or question_set.candidate_id
            stages = q.stages_from_json(question_set.stages)
            resume = self._read(lambda: self._repository.get_resume(question_set.resume_id))
            if resume is not None and resume.candidate_id == candidate_id:
                candidate_name = ResumeData.from_json(resume.data).full_name
        instructions = interview_instructions(
            job_id=job_id,
            candidate_name=candidate_name,
            job_description=question_set.job_description if question_set else "",
            stages=stages,
        )
        secret = self._openai.create_client_secret(
            model=model or self._settings.realtime_model,
            instructions=instructions,
            ttl_seconds=ttl,
            remaining=remaining,
        )
        interview = StoredInterview(
            interview_id=new_id("int"),
            company_id=company_id,
            job_id=job_id,
            candidate_id=candidate_id,
            question_set_id=question_set_id or None,
            model=secret.model,
            realtime_session_id=secret.session_id,
            state=STARTED,
            secret_expires_at=secret.expires_at,
            started_at=self._clock(),
        )
        self._write(lambda: self._repository.add_interview(interview))
        return StartedInterview(interview, secret.value, secret.expires_at, instructions)

    # -- CompleteInterview ---------------------------------------------------------------------------------
    def complete_interview(
        self,
        *,
        company_id: str,
        interview_id: str,
        end_time: dt.datetime | None,
        usage: TokenCounts | None,
        response_usages: list[RealtimeUsage],
    ) -> CompletedInterview:
        check_id("company_id", company_id)
        check_id("interview_id", interview_id)
        if usage is not None and response_usages:
            raise InvalidArgument("give either usage or response_usages, not both")
        if usage is not None:
            usage.check("usage")
        elif response_usages:
            usage = sum_realtime(response_usages)
        interview = self._read(lambda: self._repository.get_interview(interview_id))
        if interview is None or interview.company_id != company_id:
            raise NotFound(f"interview_id {interview_id} not found")
        if interview.state == COMPLETED:
            return CompletedInterview(interview, usage_from_json(interview.usage), already_completed=True)
        now = self._clock()
        ended = end_time or now
        if ended < interview.started_at:
            raise InvalidArgument("end_time must not be before the interview's start_time")
        if ended > now + MAX_FUTURE_END:
            raise InvalidArgument("end_time must not be in the future")
        minutes = decimal_text(duration_minutes(interview.started_at, ended))
        operation_id = new_id("op")
        request = metering.track_request(
            operation_id=operation_id,
            category=metering.VIDEO_INTERVIEW,
            company_id=company_id,
            job_id=interview.job_id,
            candidate_id=interview.candidate_id,
            model=interview.model,
            usage=usage,
            started=interview.started_at,
            completed=ended,
            quantity=minutes,
            openai_project_id=self._settings.project_id,
        )
        item = self._outbox_item(operation_id, request)
        usage_text = _usage_json(usage)
        completed = self._write(
            lambda: self._repository.complete_interview(
                interview_id, ended_at=ended, duration_minutes=minutes, usage=usage_text, item=item
            )
        )
        stored = self._read(lambda: self._repository.get_interview(interview_id))
        if not completed:  # a concurrent call completed it first; it metered the interview
            return CompletedInterview(stored, usage_from_json(stored.usage), already_completed=True)
        return CompletedInterview(stored, usage, already_completed=False)
