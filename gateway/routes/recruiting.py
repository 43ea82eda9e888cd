"""POST /api/v1/resumes, /interview-questions, /interviews, /interviews/{id}/complete: forwarded to the
Recruiting service for the token's company. Uploads are capped while they are read, before any parsing."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import grpc
from fastapi import APIRouter, Path, Request
from hiremeter.recruiting.v1 import recruiting_pb2
from hiremeter.usage.v1 import usage_tracker_pb2
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from gateway import schemas
from gateway.deps import ClientsDep, TenantDep
from gateway.errors import ApiError, from_rpc_error, invalid
from gateway.grpc_clients import RECRUITING_TIMEOUT_SECONDS, call_metadata

ERRORS = {status: {"model": schemas.ErrorBody} for status in (400, 401, 403, 404, 413, 429, 501, 503, 504)}
router = APIRouter(prefix="/api/v1", tags=["recruiting"], responses=ERRORS)

MAX_FILE_BYTES = 10 * 1024 * 1024
# The file plus the multipart framing and the few small text fields.
MAX_BODY_BYTES = MAX_FILE_BYTES + 64 * 1024
MAX_FIELD_BYTES = 16 * 1024


class _BodyTooLarge(Exception):
    pass


def _too_large() -> ApiError:
    return ApiError(413, "PAYLOAD_TOO_LARGE", f"file must be at most {MAX_FILE_BYTES} bytes (10 MiB)")


def _call(method, request):
    try:
        return method(request, timeout=RECRUITING_TIMEOUT_SECONDS, metadata=call_metadata())
    except grpc.RpcError as error:
        raise from_rpc_error(error) from None


UPLOAD_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "PDF, DOCX or text, ≤ 10 MiB",
                        },
                        "job_id": {"type": "string"},
                        "candidate_id": {"type": "string"},
                        "company_id": {
                            "type": "string",
                            "description": "Optional; must be the token's company",
                        },
                    },
                }
            }
        },
    }
}


@router.post(
    "/resumes",
    response_model=schemas.ParsedResume,
    summary="Upload a CV (multipart) and parse it",
    openapi_extra=UPLOAD_SCHEMA,
)
async def upload_resume(
    tenant: TenantDep,
    clients: ClientsDep,
    request: Request,
) -> schemas.ParsedResume:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(415, "INVALID_ARGUMENT", "the body must be multipart/form-data with a file field")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()  # refused before a byte of the body is read
    received = 0
    receive = request.receive

    async def capped_receive():
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > MAX_BODY_BYTES:
                raise _BodyTooLarge
        return message

    try:
        form = await Request(request.scope, capped_receive).form(
            max_files=1, max_fields=8, max_part_size=MAX_FIELD_BYTES
        )
    except _BodyTooLarge:
        raise _too_large() from None
    except ApiError:
        raise
    except Exception as error:  # noqa: BLE001 - malformed multipart of any kind is the caller's error
        detail = getattr(error, "detail", "") or "malformed multipart body"
        raise invalid(f"body: {detail}") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise invalid("file is required (a multipart file field named 'file')")
        fields = {}
        for name in ("job_id", "candidate_id", "company_id"):
            value = form.get(name)
            if value is not None and not isinstance(value, str):
                raise invalid(f"{name} must be a text field")
            fields[name] = value
        tenant.check(fields["company_id"])
        content = await upload.read(MAX_FILE_BYTES + 1)
        if len(content) > MAX_FILE_BYTES:
            raise _too_large()
        if not content:
            raise invalid("file must not be empty")
        file_name, content_type = upload.filename or "", upload.content_type or ""
    finally:
        await form.close()
    answer = await run_in_threadpool(
        _call,
        clients.recruiting.ParseResume,
        recruiting_pb2.ParseResumeRequest(
            company_id=tenant.company_id,
            job_id=fields["job_id"] or "",
            candidate_id=fields["candidate_id"] or "",
            file_name=file_name[:255],
            content=content,
            content_type=content_type[:255],
        ),
    )
    return schemas.ParsedResume(
        resume=schemas.resume(answer.resume),
        operation_id=answer.operation_id,
        usage=schemas.token_usage(answer.usage),
    )


@router.post("/interview-questions", response_model=schemas.GeneratedQuestions, summary="Generate questions")
def generate_questions(
    tenant: TenantDep,
    clients: ClientsDep,
    body: schemas.QuestionsIn,
) -> schemas.GeneratedQuestions:
    tenant.check(body.company_id)
    answer = _call(
        clients.recruiting.GenerateInterviewQuestions,
        recruiting_pb2.GenerateInterviewQuestionsRequest(
            company_id=tenant.company_id,
            job_id=body.job_id,
            resume_id=body.resume_id,
            job_description=body.job_description,
            stages=[recruiting_pb2.StageRequest(stage=s.stage, count=s.count) for s in body.stages],
        ),
    )
    return schemas.GeneratedQuestions(
        question_set=schemas.question_set(answer.question_set),
        question_count=answer.question_count,
        operation_id=answer.operation_id,
        usage=schemas.token_usage(answer.usage),
    )


@router.post("/interviews", response_model=schemas.StartedInterview, summary="Start a Realtime interview")
def start_interview(
    tenant: TenantDep,
    clients: ClientsDep,
    body: schemas.InterviewIn,
) -> schemas.StartedInterview:
    tenant.check(body.company_id)
    answer = _call(
        clients.recruiting.StartInterview,
        recruiting_pb2.StartInterviewRequest(
            company_id=tenant.company_id,
            job_id=body.job_id,
            candidate_id=body.candidate_id,
            question_set_id=body.question_set_id,
            model=body.model,
            secret_ttl_seconds=body.secret_ttl_seconds,
        ),
    )
    return schemas.StartedInterview(
        interview=schemas.interview(answer.interview),
        client_secret=answer.client_secret,
        client_secret_expire_time=schemas.iso(answer.client_secret_expire_time),
        instructions=answer.instructions,
    )


@router.post(
    "/interviews/{interview_id}/complete",
    response_model=schemas.CompletedInterview,
    summary="Complete and meter",
)
def complete_interview(
    tenant: TenantDep,
    clients: ClientsDep,
    body: schemas.CompleteIn,
    interview_id: Annotated[str, Path(max_length=128)],
) -> schemas.CompletedInterview:
    tenant.check(body.company_id)
    request = recruiting_pb2.CompleteInterviewRequest(company_id=tenant.company_id, interview_id=interview_id)
    if body.end_time is not None:
        try:
            end = dt.datetime.fromisoformat(body.end_time)
        except ValueError:
            raise invalid("end_time must be an ISO-8601 time with an offset") from None
        if end.tzinfo is None:
            raise invalid("end_time must carry a UTC offset")
        request.end_time.FromDatetime(end.astimezone(dt.UTC))
    if body.usage is not None:
        request.usage.CopyFrom(usage_tracker_pb2.TokenUsage(**body.usage.model_dump()))
    for usage in body.response_usages:
        request.response_usages.append(recruiting_pb2.RealtimeResponseUsage(**usage.model_dump()))
    answer = _call(clients.recruiting.CompleteInterview, request)
    return schemas.CompletedInterview(
        interview=schemas.interview(answer.interview),
        usage=schemas.token_usage(answer.usage) if answer.HasField("usage") else None,
        already_completed=answer.already_completed,
    )
