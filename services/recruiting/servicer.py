"""Recruiting's gRPC surface: proto <-> service-layer translation only."""

from __future__ import annotations

from hiremeter.recruiting.v1 import recruiting_pb2, recruiting_pb2_grpc
from hiremeter.usage.v1 import usage_tracker_pb2

from services.recruiting import metering
from services.recruiting.domain.questions import QuestionStage, StageSpec
from services.recruiting.domain.resume import ResumeData
from services.recruiting.domain.usage import RealtimeUsage, TokenCounts
from services.recruiting.service import RecruitingService
from services.recruiting.storage.repository import COMPLETED, StoredInterview, StoredQuestionSet, StoredResume

STATES = {
    "started": recruiting_pb2.INTERVIEW_STATE_STARTED,
    COMPLETED: recruiting_pb2.INTERVIEW_STATE_COMPLETED,
}


def _remaining(context) -> float | None:
    return context.time_remaining() if context is not None else None


def _usage(counts: TokenCounts | None) -> usage_tracker_pb2.TokenUsage | None:
    return metering.token_usage(counts) if counts is not None else None


def resume_message(stored: StoredResume, data: ResumeData | None = None) -> recruiting_pb2.Resume:
    data = data or ResumeData.from_json(stored.data)
    return recruiting_pb2.Resume(
        resume_id=stored.resume_id,
        company_id=stored.company_id,
        job_id=stored.job_id,
        candidate_id=stored.candidate_id,
        full_name=data.full_name,
        emails=data.emails,
        phones=data.phones,
        location=data.location,
        summary=data.summary,
        skills=data.skills,
        experience=[recruiting_pb2.Experience(**vars(item)) for item in data.experience],
        education=[recruiting_pb2.Education(**vars(item)) for item in data.education],
        languages=data.languages,
        links=data.links,
        source_format=stored.source_format,
        model=stored.model,
        create_time=metering.timestamp(stored.created_at),
    )


def question_set_message(
    stored: StoredQuestionSet, stages: list[QuestionStage]
) -> recruiting_pb2.QuestionSet:
    return recruiting_pb2.QuestionSet(
        question_set_id=stored.question_set_id,
        company_id=stored.company_id,
        job_id=stored.job_id,
        candidate_id=stored.candidate_id,
        resume_id=stored.resume_id,
        stages=[
            recruiting_pb2.QuestionStage(
                stage=stage.stage,
                questions=[
                    recruiting_pb2.Question(text=x.text, rationale=x.rationale) for x in stage.questions
                ],
            )
            for stage in stages
        ],
        model=stored.model,
        create_time=metering.timestamp(stored.created_at),
    )


def interview_message(stored: StoredInterview) -> recruiting_pb2.Interview:
    message = recruiting_pb2.Interview(
        interview_id=stored.interview_id,
        company_id=stored.company_id,
        job_id=stored.job_id,
        candidate_id=stored.candidate_id,
        question_set_id=stored.question_set_id or "",
        model=stored.model,
        state=STATES.get(stored.state, recruiting_pb2.INTERVIEW_STATE_UNSPECIFIED),
        start_time=metering.timestamp(stored.started_at),
        duration_minutes=stored.duration_minutes,
        operation_id=stored.operation_id or "",
        realtime_session_id=stored.realtime_session_id,
    )
    if stored.ended_at is not None:
        message.end_time.CopyFrom(metering.timestamp(stored.ended_at))
    return message


class RecruitingServicer(recruiting_pb2_grpc.RecruitingServicer):
    def __init__(self, service: RecruitingService) -> None:
        self._service = service

    def ParseResume(self, request, context):
        result = self._service.parse_resume(
            company_id=request.company_id,
            job_id=request.job_id,
            candidate_id=request.candidate_id,
            file_name=request.file_name,
            content=request.content,
            remaining=_remaining(context),
        )
        return recruiting_pb2.ParseResumeResponse(
            resume=resume_message(result.resume, result.data),
            operation_id=result.resume.operation_id,
            usage=_usage(result.usage),
        )

    def GenerateInterviewQuestions(self, request, context):
        result = self._service.generate_questions(
            company_id=request.company_id,
            job_id=request.job_id,
            resume_id=request.resume_id,
            job_description=request.job_description,
            stages=[StageSpec(stage.stage, stage.count) for stage in request.stages],
            remaining=_remaining(context),
        )
        return recruiting_pb2.GenerateInterviewQuestionsResponse(
            question_set=question_set_message(result.question_set, result.stages),
            question_count=result.question_set.question_count,
            operation_id=result.question_set.operation_id,
            usage=_usage(result.usage),
        )

    def StartInterview(self, request, context):
        result = self._service.start_interview(
            company_id=request.company_id,
            job_id=request.job_id,
            candidate_id=request.candidate_id,
            question_set_id=request.question_set_id,
            model=request.model,
            secret_ttl_seconds=request.secret_ttl_seconds,
            remaining=_remaining(context),
        )
        return recruiting_pb2.StartInterviewResponse(
            interview=interview_message(result.interview),
            client_secret=result.client_secret,
            client_secret_expire_time=metering.timestamp(result.secret_expires_at),
            instructions=result.instructions,
        )

    def CompleteInterview(self, request, context):
        usage = None
        if request.HasField("usage"):
            fields = {name: getattr(request.usage, name) for name in TokenCounts().as_dict()}
            # An all-zero message is what a client sends when it has no usage: treat it as absent (the usage
            # API path) rather than billing the interview at $0.
            if any(fields.values()):
                usage = TokenCounts(**fields)
        response_usages = [
            RealtimeUsage(**{name: getattr(item, name) for name in vars(RealtimeUsage())})
            for item in request.response_usages
        ]
        result = self._service.complete_interview(
            company_id=request.company_id,
            interview_id=request.interview_id,
            end_time=request.end_time.ToDatetime(tzinfo=metering.dt.UTC)
            if request.HasField("end_time")
            else None,
            usage=usage,
            response_usages=response_usages,
        )
        return recruiting_pb2.CompleteInterviewResponse(
            interview=interview_message(result.interview),
            usage=_usage(result.usage),
            already_completed=result.already_completed,
        )


__all__ = ["RecruitingServicer"]
