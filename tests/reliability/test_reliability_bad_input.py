"""Bad input, over gRPC (recruiting, usage tracker, billing) and HTTP (the gateway): every kind is answered
with a 4xx / INVALID_ARGUMENT-family status whose message names the field, and writes nothing (ledger,
rollups, outbox, results and reports are counted before and after each case). Strings that look like SQL or
HTML are data: stored verbatim where a field legitimately holds free text, and harmless."""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import pytest
import requests
import sqlalchemy as sa
from hiremeter.billing.v1 import billing_pb2
from hiremeter.recruiting.v1 import recruiting_pb2
from hiremeter.usage.v1 import usage_tracker_pb2

from services.common import db
from services.recruiting.storage import tables as rt
from services.usage_tracker.storage import tables as ut
from tests.reliability.reliability_load import CV_TEXT

COMPANY = "co-bad-input"
OTHER = "co-bad-input-other"
SQL = "'; DROP TABLE usage_records; --"
HTML = '<script>alert("x")</script><img src=x onerror=alert(1)>'
TEN_MIB = 10 * 1024 * 1024
INVALID = grpc.StatusCode.INVALID_ARGUMENT


def _zip_bomb() -> bytes:
    """A DOCX-shaped zip whose document.xml inflates 40 MiB of zeros from ~40 KiB."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        with archive.open("word/document.xml", "w", force_zip64=True) as entry:
            chunk = b"\0" * (1 << 20)
            for _ in range(40):
                entry.write(chunk)
    return buffer.getvalue()


def _raw_call(channel: grpc.Channel, method: str, payload: bytes) -> grpc.RpcError:
    call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as info:
        call(payload, timeout=10)
    return info.value


def _string_field(number: int, raw: bytes) -> bytes:
    """A length-delimited protobuf field carrying raw (here: invalid UTF-8) bytes."""
    return bytes([(number << 3) | 2, len(raw)]) + raw


@dataclass
class World:
    suite: object
    recruiting: object
    tracker: object
    billing: object
    resume_id: str
    other_resume_id: str
    interview_id: str
    token: str
    other_token: str
    other_page_token: str
    other_http_page_token: str

    @property
    def api(self) -> str:
        return self.suite.gateway_url + "/api/v1"

    def http(self, method: str, path: str, token: str | None = None, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {token or self.token}", **kwargs.pop("headers", {})}
        return requests.request(method, self.api + path, headers=headers, timeout=30, **kwargs)


def _track_request(operation_id: str, company: str, **overrides) -> usage_tracker_pb2.TrackRequest:
    now = dt.datetime.now(dt.UTC)
    request = usage_tracker_pb2.TrackRequest(
        operation_id=operation_id,
        category=usage_tracker_pb2.CATEGORY_CV_PARSING,
        company_id=company,
        job_id="job-bad-input",
        model="gpt-4o",
        usage=usage_tracker_pb2.TokenUsage(input_tokens=1_500, output_tokens=500),
    )
    request.started_time.FromDatetime(now - dt.timedelta(seconds=2))
    request.completed_time.FromDatetime(now)
    for key, value in overrides.items():
        if key == "usage":
            request.usage.CopyFrom(value)
        elif key in ("started_time", "completed_time"):
            getattr(request, key).FromDatetime(value)
        else:
            setattr(request, key, value)
    return request


@pytest.fixture(scope="module")
def world(shared_suite) -> World:
    suite = shared_suite
    recruiting, tracker, billing = suite.recruiting(), suite.tracker(), suite.billing()
    resumes = {}
    for company in (COMPANY, OTHER):
        resumes[company] = recruiting.ParseResume(
            recruiting_pb2.ParseResumeRequest(
                company_id=company, job_id="job-bad-input", content=CV_TEXT.encode(), file_name="cv.txt"
            ),
            timeout=20,
        ).resume.resume_id
        for n in range(3):
            tracker.Track(
                _track_request(f"op-seed-{company}-{n}-{uuid.uuid4().hex[:6]}", company), timeout=10
            )
    interview = recruiting.StartInterview(
        recruiting_pb2.StartInterviewRequest(
            company_id=COMPANY, job_id="job-bad-input", candidate_id="cand-1"
        ),
        timeout=10,
    ).interview.interview_id
    other_page = billing.ListUsageRecords(
        billing_pb2.ListUsageRecordsRequest(company_id=OTHER, page_size=1), timeout=10
    ).next_page_token
    assert other_page, "the other company needs a second page for the cross-tenant token case"
    other_token = suite.token(OTHER)
    other_http = requests.get(
        f"{suite.gateway_url}/api/v1/billing/usage/records",
        params={"page_size": 1},
        headers={"Authorization": f"Bearer {other_token}"},
        timeout=10,
    )
    assert other_http.status_code == 200, other_http.text
    return World(
        suite=suite,
        recruiting=recruiting,
        tracker=tracker,
        billing=billing,
        resume_id=resumes[COMPANY],
        other_resume_id=resumes[OTHER],
        interview_id=interview,
        token=suite.token(COMPANY),
        other_token=other_token,
        other_page_token=other_page,
        other_http_page_token=other_http.json()["next_page_token"],
    )


def _counts(suite) -> dict[str, int]:
    found = {}
    for url, tables in (
        (suite.usage_database_url, (ut.usage_records, ut.usage_rollups, ut.reconciliation_reports)),
        (suite.recruiting_database_url, (rt.outbox, rt.resumes, rt.question_sets, rt.interviews)),
    ):
        engine = db.make_engine(url, pool_size=1)
        try:
            with engine.connect() as connection:
                for table in tables:
                    found[table.name] = connection.execute(
                        sa.select(sa.func.count()).select_from(table)
                    ).scalar()
                if url == suite.usage_database_url:
                    found["rollup_operations"] = connection.execute(
                        sa.select(sa.func.coalesce(sa.func.sum(ut.usage_rollups.c.operations), 0))
                    ).scalar()
        finally:
            engine.dispose()
    return found


# -- the cases: (name, call(world) -> (status, message), expected status, a word the message must name) -----


def grpc_case(call: Callable[[World], object]) -> Callable[[World], tuple[object, str]]:
    def run(w: World) -> tuple[object, str]:
        try:
            call(w)
        except grpc.RpcError as error:
            return error.code(), error.details() or ""
        return grpc.StatusCode.OK, ""

    return run


def http_case(call: Callable[[World], requests.Response]) -> Callable[[World], tuple[object, str]]:
    def run(w: World) -> tuple[object, str]:
        response = call(w)
        try:
            body = response.json()
            message = (
                body["error"]["message"] if isinstance(body, dict) and "error" in body else response.text
            )
        except ValueError:
            message = response.text
        return response.status_code, message

    return run


def parse(w: World, **fields) -> object:
    base = {"company_id": COMPANY, "job_id": "job-1", "content": CV_TEXT.encode(), "file_name": "cv.txt"}
    return w.recruiting.ParseResume(recruiting_pb2.ParseResumeRequest(**{**base, **fields}), timeout=20)


def questions(w: World, **fields) -> object:
    base = {"company_id": COMPANY, "resume_id": w.resume_id, "job_description": "Backend engineer, Python."}
    return w.recruiting.GenerateInterviewQuestions(
        recruiting_pb2.GenerateInterviewQuestionsRequest(**{**base, **fields}), timeout=20
    )


def complete(w: World, **fields) -> object:
    request = recruiting_pb2.CompleteInterviewRequest(company_id=COMPANY, interview_id=w.interview_id)
    for key, value in fields.items():
        if key == "end_time":
            request.end_time.FromDatetime(value)
        elif key == "usage":
            request.usage.CopyFrom(value)
        elif key == "response_usages":
            request.response_usages.extend(value)
        else:
            setattr(request, key, value)
    return w.recruiting.CompleteInterview(request, timeout=10)


def track(w: World, **overrides) -> object:
    operation_id = overrides.pop("operation_id", f"op-bad-{uuid.uuid4().hex}")
    return w.tracker.Track(_track_request(operation_id, COMPANY, **overrides), timeout=10)


def summary(w: World, start: str, end: str, tz: str = "") -> object:
    period = billing_pb2.Period(start_date=start, end_date=end, time_zone=tz)
    return w.billing.GetUsageSummary(billing_pb2.GetUsageSummaryRequest(company_id=COMPANY, period=period))


def upload(
    w: World, content: bytes, name: str = "cv.txt", mime: str = "text/plain", **data
) -> requests.Response:
    return w.http("POST", "/resumes", files={"file": (name, content, mime)}, data={"job_id": "job-1", **data})


def usage(**tokens) -> usage_tracker_pb2.TokenUsage:
    return usage_tracker_pb2.TokenUsage(**tokens)


NOW = dt.datetime.now(dt.UTC)
CASES: list[tuple[str, Callable, object, str]] = [
    # -- gRPC: Recruiting -------------------------------------------------------------------------------------
    ("grpc-parse-missing-company", grpc_case(lambda w: parse(w, company_id="")), INVALID, "company_id"),
    ("grpc-parse-malformed-job-id", grpc_case(lambda w: parse(w, job_id="job 1/../x")), INVALID, "job_id"),
    ("grpc-parse-oversized-job-id", grpc_case(lambda w: parse(w, job_id="j" * 129)), INVALID, "job_id"),
    ("grpc-parse-sql-in-job-id", grpc_case(lambda w: parse(w, job_id=SQL)), INVALID, "job_id"),
    (
        "grpc-parse-html-in-candidate-id",
        grpc_case(lambda w: parse(w, candidate_id=HTML)),
        INVALID,
        "candidate_id",
    ),
    ("grpc-parse-empty-content", grpc_case(lambda w: parse(w, content=b"")), INVALID, "content"),
    (
        "grpc-parse-huge-pdf",
        grpc_case(lambda w: parse(w, content=b"%PDF-1.7\n" + b"0" * TEN_MIB)),
        INVALID,
        "content",
    ),
    (
        "grpc-parse-fake-pdf",
        grpc_case(lambda w: parse(w, content=b"%PDF-1.7\nnot really a pdf")),
        INVALID,
        "content",
    ),
    ("grpc-parse-zip-bomb-docx", grpc_case(lambda w: parse(w, content=_zip_bomb())), INVALID, "content"),
    (
        "grpc-parse-png-as-cv",
        grpc_case(lambda w: parse(w, content=b"\x89PNG\r\n\x1a\n" + b"\0" * 64)),
        INVALID,
        "content",
    ),
    (
        "grpc-parse-invalid-utf8-text",
        grpc_case(lambda w: parse(w, content=b"Jane \xff\xfe\xfd Roe")),
        INVALID,
        "content",
    ),
    (
        "grpc-parse-oversized-file-name",
        grpc_case(lambda w: parse(w, file_name="f" * 300)),
        INVALID,
        "file_name",
    ),
    (
        "grpc-questions-empty-description",
        grpc_case(lambda w: questions(w, job_description="")),
        INVALID,
        "job_description",
    ),
    (
        "grpc-questions-oversized-description",
        grpc_case(lambda w: questions(w, job_description="x" * 20_001)),
        INVALID,
        "job_description",
    ),
    (
        "grpc-questions-absurd-stage-count",
        grpc_case(
            lambda w: questions(w, stages=[recruiting_pb2.StageRequest(stage="screening", count=1000)])
        ),
        INVALID,
        "count",
    ),
    (
        "grpc-questions-negative-stage-count",
        grpc_case(lambda w: questions(w, stages=[recruiting_pb2.StageRequest(stage="screening", count=-1)])),
        INVALID,
        "count",
    ),
    (
        "grpc-questions-other-tenants-resume",
        grpc_case(lambda w: questions(w, resume_id=w.other_resume_id)),
        grpc.StatusCode.NOT_FOUND,
        "resume_id",
    ),
    (
        "grpc-start-interview-ttl-out-of-range",
        grpc_case(
            lambda w: w.recruiting.StartInterview(
                recruiting_pb2.StartInterviewRequest(
                    company_id=COMPANY, job_id="j", candidate_id="c", secret_ttl_seconds=5
                ),
                timeout=10,
            )
        ),
        INVALID,
        "secret_ttl_seconds",
    ),
    (
        "grpc-complete-negative-tokens",
        grpc_case(lambda w: complete(w, usage=usage(input_tokens=-5))),
        INVALID,
        "input_tokens",
    ),
    (
        "grpc-complete-absurd-tokens",
        grpc_case(lambda w: complete(w, usage=usage(input_tokens=10**15, output_tokens=1))),
        INVALID,
        "input_tokens",
    ),
    (
        "grpc-complete-end-before-start",
        grpc_case(lambda w: complete(w, end_time=NOW - dt.timedelta(days=3))),
        INVALID,
        "end_time",
    ),
    (
        "grpc-complete-end-in-future",
        grpc_case(lambda w: complete(w, end_time=dt.datetime.now(dt.UTC) + dt.timedelta(days=3))),
        INVALID,
        "end_time",
    ),
    (
        "grpc-complete-usage-and-response-usages",
        grpc_case(
            lambda w: complete(
                w,
                usage=usage(input_tokens=1),
                response_usages=[recruiting_pb2.RealtimeResponseUsage(input_tokens=1)],
            )
        ),
        INVALID,
        "usage",
    ),
    (
        "grpc-complete-malformed-interview-id",
        grpc_case(lambda w: complete(w, interview_id="../../etc/passwd")),
        INVALID,
        "interview_id",
    ),
    # -- gRPC: UsageTracker.Track -----------------------------------------------------------------------------
    (
        "grpc-track-missing-operation-id",
        grpc_case(lambda w: track(w, operation_id="")),
        INVALID,
        "operation_id",
    ),
    ("grpc-track-sql-operation-id", grpc_case(lambda w: track(w, operation_id=SQL)), INVALID, "operation_id"),
    ("grpc-track-unspecified-category", grpc_case(lambda w: track(w, category=0)), INVALID, "category"),
    ("grpc-track-unknown-enum-value", grpc_case(lambda w: track(w, category=99)), INVALID, "category"),
    (
        "grpc-track-negative-tokens",
        grpc_case(lambda w: track(w, usage=usage(input_tokens=-1, output_tokens=10))),
        INVALID,
        "input_tokens",
    ),
    (
        "grpc-track-absurd-tokens",
        grpc_case(lambda w: track(w, usage=usage(input_tokens=10**11))),
        INVALID,
        "input_tokens",
    ),
    (
        "grpc-track-cached-exceeds-input",
        grpc_case(lambda w: track(w, usage=usage(input_tokens=10, cached_input_tokens=20))),
        INVALID,
        "cached_input_tokens",
    ),
    (
        "grpc-track-completed-before-started",
        grpc_case(lambda w: track(w, completed_time=NOW - dt.timedelta(hours=1))),
        INVALID,
        "completed_time",
    ),
    (
        "grpc-track-quantity-not-decimal",
        grpc_case(lambda w: track(w, quantity="1e3; DROP")),
        INVALID,
        "quantity",
    ),
    ("grpc-track-quantity-negative", grpc_case(lambda w: track(w, quantity="-1")), INVALID, "quantity"),
    ("grpc-track-quantity-nan", grpc_case(lambda w: track(w, quantity="NaN")), INVALID, "quantity"),
    ("grpc-track-model-missing", grpc_case(lambda w: track(w, model="")), INVALID, "model"),
    # -- gRPC: Billing ----------------------------------------------------------------------------------------
    (
        "grpc-billing-impossible-date",
        grpc_case(lambda w: summary(w, "2026-02-30", "2026-03-01")),
        INVALID,
        "start_date",
    ),
    (
        "grpc-billing-end-before-start",
        grpc_case(lambda w: summary(w, "2026-03-10", "2026-03-01")),
        INVALID,
        "end_date",
    ),
    (
        "grpc-billing-period-too-long",
        grpc_case(lambda w: summary(w, "2020-01-01", "2026-01-01")),
        INVALID,
        "period",
    ),
    (
        "grpc-billing-unknown-time-zone",
        grpc_case(lambda w: summary(w, "2026-01-01", "2026-01-02", "Mars/Olympus")),
        INVALID,
        "time_zone",
    ),
    (
        "grpc-billing-negative-page-size",
        grpc_case(
            lambda w: w.billing.ListUsageRecords(
                billing_pb2.ListUsageRecordsRequest(company_id=COMPANY, page_size=-1)
            )
        ),
        INVALID,
        "page_size",
    ),
    (
        "grpc-billing-page-token-of-another-tenant",
        grpc_case(
            lambda w: w.billing.ListUsageRecords(
                billing_pb2.ListUsageRecordsRequest(
                    company_id=COMPANY, page_size=1, page_token=w.other_page_token
                )
            )
        ),
        INVALID,
        "page_token",
    ),
    (
        "grpc-billing-forged-page-token",
        grpc_case(
            lambda w: w.billing.ListUsageRecords(
                billing_pb2.ListUsageRecordsRequest(company_id=COMPANY, page_token="eyJvZmZzZXQiOjB9")
            )
        ),
        INVALID,
        "page_token",
    ),
    # -- gRPC: bytes that are not a valid message -------------------------------------------------------------
    pytest.param(
        "grpc-invalid-utf8-in-string-field",
        lambda w: (lambda e: (e.code(), e.details() or ""))(
            _raw_call(
                w.suite.channel("recruiting"),
                "/hiremeter.recruiting.v1.Recruiting/ParseResume",
                _string_field(1, b"co-\xff\xfe") + _string_field(2, b"job-1") + _string_field(5, b"hello"),
            )
        ),
        INVALID,
        "not a valid protobuf message",
    ),
    pytest.param(
        "grpc-truncated-message",
        lambda w: (lambda e: (e.code(), e.details() or ""))(
            _raw_call(
                w.suite.channel("usage_tracker"), "/hiremeter.usage.v1.UsageTracker/Track", b"\x0a\x40abc"
            )
        ),
        INVALID,
        "not a valid protobuf message",
    ),
    # -- HTTP: the gateway ------------------------------------------------------------------------------------
    (
        "http-resume-json-body",
        http_case(lambda w: w.http("POST", "/resumes", json={"file": "x"})),
        415,
        "multipart",
    ),
    (
        "http-resume-missing-file",
        http_case(lambda w: w.http("POST", "/resumes", files={"job_id": (None, "job-1")})),
        400,
        "file",
    ),
    ("http-resume-empty-file", http_case(lambda w: upload(w, b"")), 400, "file"),
    ("http-resume-oversized-file", http_case(lambda w: upload(w, b"a" * (TEN_MIB + 1))), 413, "file"),
    (
        "http-resume-fake-pdf",
        http_case(lambda w: upload(w, b"%PDF-1.4\ngarbage", "cv.pdf", "application/pdf")),
        400,
        "content",
    ),
    (
        "http-resume-zip-bomb-docx",
        http_case(
            lambda w: upload(
                w,
                _zip_bomb(),
                "cv.docx",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            )
        ),
        400,
        "content",
    ),
    ("http-resume-invalid-utf8", http_case(lambda w: upload(w, b"Jane \xff\xfe Roe")), 400, "content"),
    ("http-resume-sql-job-id", http_case(lambda w: upload(w, CV_TEXT.encode(), job_id=SQL)), 400, "job_id"),
    (
        "http-resume-broken-multipart",
        http_case(
            lambda w: w.http(
                "POST",
                "/resumes",
                data=b"--xyz\r\nbroken",
                headers={"Content-Type": "multipart/form-data; boundary=xyz"},
            )
        ),
        400,
        "file",
    ),
    pytest.param(
        "http-questions-malformed-json",
        http_case(
            lambda w: w.http(
                "POST",
                "/interview-questions",
                data=b"{not json",
                headers={"Content-Type": "application/json"},
            )
        ),
        400,
        "body: is not valid JSON",
    ),
    (
        "http-questions-invalid-utf8-json",
        http_case(
            lambda w: w.http(
                "POST",
                "/interview-questions",
                data=b'{"resume_id": "\xff\xfe"}',
                headers={"Content-Type": "application/json"},
            )
        ),
        400,
        "body",
    ),
    (
        "http-questions-unknown-field",
        http_case(
            lambda w: w.http(
                "POST",
                "/interview-questions",
                json={"resume_id": w.resume_id, "job_description": "x", "price": "0"},
            )
        ),
        400,
        "price",
    ),
    (
        "http-questions-wrong-type",
        http_case(
            lambda w: w.http(
                "POST",
                "/interview-questions",
                json={
                    "resume_id": w.resume_id,
                    "job_description": "x",
                    "stages": [{"stage": "s", "count": "many"}],
                },
            )
        ),
        400,
        "count",
    ),
    (
        "http-questions-text-plain",
        http_case(
            lambda w: w.http(
                "POST", "/interview-questions", data=b"resume_id=x", headers={"Content-Type": "text/plain"}
            )
        ),
        400,
        "body",
    ),
    (
        "http-questions-html-resume-id",
        http_case(
            lambda w: w.http("POST", "/interview-questions", json={"resume_id": HTML, "job_description": "x"})
        ),
        400,
        "resume_id",
    ),
    (
        "http-complete-negative-tokens",
        http_case(
            lambda w: w.http(
                "POST", f"/interviews/{w.interview_id}/complete", json={"usage": {"input_tokens": -1}}
            )
        ),
        400,
        "input_tokens",
    ),
    (
        "http-complete-bad-end-time",
        http_case(
            lambda w: w.http("POST", f"/interviews/{w.interview_id}/complete", json={"end_time": "yesterday"})
        ),
        400,
        "end_time",
    ),
    (
        "http-summary-impossible-date",
        http_case(
            lambda w: w.http(
                "GET", "/billing/usage/summary", params={"start": "2026-02-30", "end": "2026-03-01"}
            )
        ),
        400,
        "start",
    ),
    (
        "http-summary-start-without-end",
        http_case(lambda w: w.http("GET", "/billing/usage/summary", params={"start": "2026-02-01"})),
        400,
        "end",
    ),
    (
        "http-daily-period-too-long",
        http_case(
            lambda w: w.http(
                "GET", "/billing/usage/daily", params={"start": "2000-01-01", "end": "2026-01-01"}
            )
        ),
        400,
        "period",
    ),
    (
        "http-records-wrong-enum",
        http_case(lambda w: w.http("GET", "/billing/usage/records", params={"category": "cv; DROP"})),
        400,
        "category",
    ),
    (
        "http-records-negative-page-size",
        http_case(lambda w: w.http("GET", "/billing/usage/records", params={"page_size": -1})),
        400,
        "page_size",
    ),
    (
        "http-records-page-token-of-another-tenant",
        http_case(
            lambda w: w.http(
                "GET",
                "/billing/usage/records",
                params={"page_size": 1, "page_token": w.other_http_page_token},
            )
        ),
        400,
        "page_token",
    ),
    (
        "http-export-sql-job-id",
        http_case(lambda w: w.http("GET", "/billing/usage/export.csv", params={"job_id": SQL})),
        400,
        "job_id",
    ),
]


@pytest.fixture(scope="module")
def outcomes() -> dict:
    return {}


def _case_id(case) -> str:
    return case.values[0] if hasattr(case, "values") else case[0]


@pytest.mark.parametrize(("name", "call", "expected", "field"), CASES, ids=[_case_id(c) for c in CASES])
def test_bad_input_is_refused_naming_the_field_and_writes_nothing(
    world, outcomes, figures, name, call, expected, field
):
    before = _counts(world.suite)
    code, message = call(world)
    after = _counts(world.suite)
    outcomes[name] = code.name if isinstance(code, grpc.StatusCode) else code
    figures.setdefault("bad_input", {})[name] = outcomes[name]
    assert code == expected, f"{name}: got {code} {message!r}, expected {expected}"
    assert field.lower() in message.lower(), f"{name}: message {message!r} does not name {field!r}"
    assert after == before, f"{name} wrote something: {before} -> {after}"


def test_at_least_thirty_kinds_across_grpc_and_http():
    grpc_kinds = [c for c in CASES if _case_id(c).startswith("grpc-")]
    http_kinds = [c for c in CASES if _case_id(c).startswith("http-")]
    assert len(CASES) >= 30 and len(grpc_kinds) >= 10 and len(http_kinds) >= 10


def test_sql_and_html_strings_are_stored_verbatim_and_harmless(world):
    """Free-text fields keep hostile strings exactly: the file name and the job description are stored as
    given, the description comes back verbatim in the interview's instructions, and the ledger still works."""
    file_name = f"{SQL} {HTML}.txt"
    description = f"Backend engineer. {SQL} {HTML} — naïve café, 日本語"
    cv = (CV_TEXT + "\n" + SQL + "\n" + HTML).encode()
    parsed = world.recruiting.ParseResume(
        recruiting_pb2.ParseResumeRequest(
            company_id=COMPANY, job_id="job-sql", file_name=file_name, content=cv
        ),
        timeout=20,
    )
    generated = world.recruiting.GenerateInterviewQuestions(
        recruiting_pb2.GenerateInterviewQuestionsRequest(
            company_id=COMPANY, resume_id=parsed.resume.resume_id, job_description=description
        ),
        timeout=20,
    )
    started = world.recruiting.StartInterview(
        recruiting_pb2.StartInterviewRequest(
            company_id=COMPANY, question_set_id=generated.question_set.question_set_id
        ),
        timeout=20,
    )
    assert description in started.instructions
    engine = db.make_engine(world.suite.recruiting_database_url, pool_size=1)
    try:
        with engine.connect() as connection:
            stored_name = connection.execute(
                sa.select(rt.resumes.c.file_name).where(rt.resumes.c.resume_id == parsed.resume.resume_id)
            ).scalar_one()
            stored_description = connection.execute(
                sa.select(rt.question_sets.c.job_description).where(
                    rt.question_sets.c.question_set_id == generated.question_set.question_set_id
                )
            ).scalar_one()
    finally:
        engine.dispose()
    assert stored_name == file_name
    assert stored_description == description
    # The ledger table is still there and still counts (the tracker billed both operations).
    assert _counts(world.suite)["usage_records"] > 0
    answer = world.http("GET", "/billing/usage/records", params={"job_id": "job-sql"})
    assert answer.status_code == 200, answer.text
    assert json.dumps(answer.json())  # well-formed JSON, strings escaped
