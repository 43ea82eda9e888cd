"""Recruiting's service layer: the four operations, each metered through the outbox.

Order inside an operation that calls OpenAI (ParseResume, GenerateInterviewQuestions):

1. Validate everything (InvalidArgument / NotFound write nothing, call nothing).
2. Reserve: durably write the operation's outbox row in state `reserved` (operation_id, category, company, job,
   candidate, the model requested, started_time, project; release time = now + the orphan grace). If that
   write fails the caller gets UNAVAILABLE and OpenAI is NOT called: nothing spent, nothing to bill.
3. Call OpenAI.
   - It failed without doing any work (connection refused, any 4xx such as 400/401/429, judged across all
     retries by the client): the reservation is marked `abandoned`, never billed.
   - It failed after it may have spent tokens (a timeout, a lost reply, a 5xx, a malformed 200): the
     reservation stays `reserved` and is billed once its grace has passed, without usage (the tracker's usage
     API path, or its flagged fallback).
4. In ONE transaction store the result and complete the reservation with the exact TrackRequest (usage,
   completed_time, quantity): `ready`. A call that spent tokens and then failed (a refusal, a reply that does
   not match the schema) is completed alone, and the caller gets FAILED_PRECONDITION or INTERNAL.
5. If that transaction fails (database down), the caller gets UNAVAILABLE and the exact TrackRequest is handed
   to the relay (settle_later), which completes the reservation as soon as the database is back. Should this
   process die first, the reservation is released as an orphan after its grace (step 3's second case).

The operation_id never changes from reservation to delivery, and every transition out of `reserved` is
conditional (repository.py), so an operation is billed at most once; and because the intent is durable
before any money is spent, at least once.

StartInterview creates a Realtime client secret, which costs nothing (the session's tokens are billed by
CompleteInterview), and CompleteInterview calls no one: they keep the single transaction they had.
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
from services.recruiting.clients.openai_client import Completion, OpenAIClient, may_have_spent
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
from services.recruiting.outbox.relay import OUTBOX_ABANDONED, Settlement
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
ORPHAN_GRACE_MARGIN = dt.timedelta(seconds=30)


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


def default_orphan_grace(openai_client) -> dt.timedelta:
    """The longest an OpenAI call can take (every attempt timing out, every backoff at its cap) + a margin for
    storing its outcome: a reservation older than this has lost its outcome."""
    longest = getattr(openai_client, "max_call_seconds", None)
    settings = openai_client.settings
    seconds = longest() if longest else settings.timeout_seconds * (settings.max_retries + 1)
    return dt.timedelta(seconds=seconds) + ORPHAN_GRACE_MARGIN


class RecruitingService:
    def __init__(
        self,
        repository: Repository,
        openai_client: OpenAIClient,
        *,
        on_commit: Callable[[], None] = lambda: None,
        settle_later: Callable[[Settlement], None] = lambda settlement: None,
        orphan_grace: dt.timedelta | None = None,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self._repository = repository
        self._openai = openai_client
        self._settings = openai_client.settings
        self._on_commit = on_commit
        self._settle_later = settle_later
        self._orphan_grace = orphan_grace if orphan_grace is not None else default_orphan_grace(openai_client)
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

    # -- metering around an OpenAI call ---------------------------------------------------------------------
    def _reserve(self, **fields) -> str:
        """Step 2: the durable intent, or UNAVAILABLE without calling OpenAI. Returns the operation_id."""
        operation_id = new_id("op")
        now = self._clock()
        request = metering.reservation_request(
            operation_id=operation_id, started=now, openai_project_id=self._settings.project_id, **fields
        )
        try:
            self._repository.reserve(
                self._outbox_item(operation_id, request), release_at=now + self._orphan_grace
            )
        except sqlalchemy.exc.SQLAlchemyError as error:
            log.error("recruiting database unavailable; OpenAI not called", exc_info=True)
            # Should the insert have committed after all (an acknowledgement lost), the row must not be billed.
            self._settle_later(Settlement(operation_id, reason="reservation failed; OpenAI was not called"))
            raise Unavailable("the recruiting database is unavailable; retry later") from error
        return operation_id

    def _call_openai(self, operation_id: str, call: Callable[[], Completion]) -> Completion:
        """Step 3: the call; on failure the reservation is abandoned (no work done) or left to be billed."""
        try:
            return call()
        except DomainError as error:
            reason = f"OpenAI call failed: {error.code.name}: {error.message}"[:512]
            if may_have_spent(error):
                log.warning(
                    "OpenAI call failed after it may have spent tokens; billed without usage after the grace",
                    extra={"operation_id": operation_id, "error": error.message},
                )
                self._quietly(lambda: self._repository.note(operation_id, reason=reason))
            else:
                self._abandon(operation_id, reason)
            raise

    def _abandon(self, operation_id: str, reason: str) -> None:
        try:
            if self._repository.abandon(operation_id, reason=reason):
                OUTBOX_ABANDONED.inc()
        except sqlalchemy.exc.SQLAlchemyError:
            log.warning(
                "could not abandon a reservation now; the relay will", extra={"operation_id": operation_id}
            )
            self._settle_later(Settlement(operation_id, reason=reason))

    @staticmethod
    def _quietly(action: Callable[[], object]) -> None:
        try:
            action()
        except sqlalchemy.exc.SQLAlchemyError:
            log.warning("could not annotate a reservation", exc_info=True)

    def _complete(self, action: Callable[[], bool], item: OutboxItem) -> None:
        """Step 4: the result and the exact TrackRequest in one transaction; step 5 when it fails."""
        try:
            completed = action()
        except sqlalchemy.exc.SQLAlchemyError as error:
            log.error(
                "could not store an operation's outcome; its usage is kept for the relay",
                exc_info=True,
                extra={"operation_id": item.operation_id},
            )
            self._settle_later(Settlement(item.operation_id, item))
            raise Unavailable(
                f"the recruiting database is unavailable; retry later (the OpenAI call is metered as "
                f"{item.operation_id})"
            ) from error
        if not completed:
            log.warning(
                "an outcome was stored after its reservation had been released as an orphan; billed once, "
                "without usage",
                extra={"operation_id": item.operation_id},
            )
        self._on_commit()

    def _meter_failure(self, completion: Completion, item: OutboxItem) -> None:
        self._complete(lambda: self._repository.add_outbox(item), item)

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
        operation_id = self._reserve(
            category=metering.CV_PARSING,
            company_id=company_id,
            job_id=job_id,
            candidate_id=candidate_id,
            model=self._settings.resume_model,
            quantity="1",
        )
        completion = self._call_openai(
            operation_id,
            lambda: self._openai.structured(
                what="resume parsing",
                model=self._settings.resume_model,
                messages=resume_messages(extracted.text),
                schema_name="resume",
                schema=RESUME_SCHEMA,
                remaining=remaining,
            ),
        )
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
        self._complete(lambda: self._repository.add_resume(resume, item), item)
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
        requested = sum(spec.count for spec in specs)
        operation_id = self._reserve(
            category=metering.QUESTION_GENERATION,
            company_id=company_id,
            job_id=job_id,
            candidate_id=resume.candidate_id,
            model=self._settings.questions_model,
            quantity=str(requested),
        )
        completion = self._call_openai(
            operation_id,
            lambda: self._openai.structured(
                what="question generation",
                model=self._settings.questions_model,
                messages=q.questions_messages(specs, description, ResumeData.from_json(resume.data)),
                schema_name="interview_questions",
                schema=q.questions_schema(specs),
                remaining=remaining,
            ),
        )

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
        self._complete(lambda: self._repository.add_question_set(question_set, item), item)
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
