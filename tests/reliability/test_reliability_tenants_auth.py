"""Tenants and auth: a probe matrix over every /api route of the gateway's own OpenAPI document (a route
without a probe here fails the test, so new routes are covered), every internal gRPC method of every service
descriptor (new RPCs are covered automatically), and company A's data against company B's token."""

from __future__ import annotations

import base64
import json
import time
import uuid

import grpc
import jwt
import pytest
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hiremeter.billing.v1 import billing_pb2
from hiremeter.recruiting.v1 import recruiting_pb2
from hiremeter.usage.v1 import usage_tracker_pb2

from gateway import tokens
from tests.reliability.reliability_harness import JWT_SECRET, SERVICE_TOKEN
from tests.reliability.reliability_load import CV_TEXT

A, B = "co-tenant-a", "co-tenant-b"


def _probe(route: str, ids: dict) -> dict:
    """A well-formed request for each route, so that only the credentials decide the answer."""
    today = time.strftime("%Y-%m-%d", time.gmtime())
    period = {"start": today, "end": today}
    return {
        "GET /api/v1/billing/usage/summary": {"params": period},
        "GET /api/v1/billing/usage/daily": {"params": period},
        "GET /api/v1/billing/usage/records": {"params": period},
        "GET /api/v1/billing/usage/export.csv": {"params": period},
        "POST /api/v1/resumes": {"files": {"file": ("cv.txt", CV_TEXT.encode(), "text/plain")}},
        "POST /api/v1/interview-questions": {
            "json": {"resume_id": ids["resume_id"], "job_description": "Backend engineer."}
        },
        "POST /api/v1/interviews": {"json": {"question_set_id": ids["question_set_id"]}},
        "POST /api/v1/interviews/{interview_id}/complete": {"json": {}},
    }[route]


def _url(base: str, route: str, ids: dict) -> tuple[str, str]:
    method, path = route.split(" ", 1)
    return method, base + path.replace("{interview_id}", ids["interview_id"])


def _routes(base: str) -> list[str]:
    document = requests.get(f"{base}/openapi.json", timeout=10).json()
    return sorted(
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        if path.startswith("/api/")
        for method in operations
    )


def _bad_tokens() -> dict[str, str | None]:
    good = tokens.issue(JWT_SECRET, A)
    header, payload, signature = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged = base64.urlsafe_b64encode(json.dumps({**claims, "company_id": B}).encode()).rstrip(b"=").decode()
    now = int(time.time())
    return {
        "missing": None,
        "empty": "",
        "garbage": "not-a-jwt",
        "expired": jwt.encode(
            {**claims, "iat": now - 7200, "exp": now - 3600}, JWT_SECRET, algorithm="HS256"
        ),
        "tampered-claims": f"{header}.{forged}.{signature}",
        "tampered-signature": f"{header}.{payload}.{signature[:-4]}AAAA",
        "wrong-secret": tokens.issue("another-secret-entirely-0123456789", A),
        "alg-none": jwt.encode(claims, None, algorithm="none"),
        "wrong-audience": jwt.encode({**claims, "aud": "someone-else"}, JWT_SECRET, algorithm="HS256"),
        "no-company": jwt.encode(
            {k: v for k, v in claims.items() if k != "company_id"}, JWT_SECRET, algorithm="HS256"
        ),
    }


@pytest.fixture(scope="module")
def tenant_a(shared_suite) -> dict:
    """Company A's resume, question set, interview and ledger records."""
    stub = shared_suite.recruiting()
    resume = stub.ParseResume(
        recruiting_pb2.ParseResumeRequest(company_id=A, job_id="job-a", content=CV_TEXT.encode()), timeout=20
    )
    questions = stub.GenerateInterviewQuestions(
        recruiting_pb2.GenerateInterviewQuestionsRequest(
            company_id=A, resume_id=resume.resume.resume_id, job_description="Backend engineer."
        ),
        timeout=20,
    )
    interview = stub.StartInterview(
        recruiting_pb2.StartInterviewRequest(
            company_id=A, question_set_id=questions.question_set.question_set_id
        ),
        timeout=20,
    )
    # B has usage of its own, so B's answers are not trivially empty.
    stub.ParseResume(
        recruiting_pb2.ParseResumeRequest(company_id=B, job_id="job-b", content=CV_TEXT.encode()), timeout=20
    )
    deadline = time.monotonic() + 20
    billing = shared_suite.billing()
    while time.monotonic() < deadline:
        answer = billing.ListUsageRecords(billing_pb2.ListUsageRecordsRequest(company_id=A), timeout=10)
        if answer.total_size >= 2:
            break
        time.sleep(0.1)
    return {
        "resume_id": resume.resume.resume_id,
        "question_set_id": questions.question_set.question_set_id,
        "interview_id": interview.interview.interview_id,
        "operation_ids": [resume.operation_id, questions.operation_id],
    }


def test_every_api_route_refuses_missing_expired_tampered_and_wrongly_signed_tokens(
    shared_suite, tenant_a, figures
):
    base = shared_suite.gateway_url
    routes = _routes(base)
    assert routes, "the gateway's OpenAPI document lists no /api routes"
    matrix = 0
    for route in routes:
        try:
            probe = _probe(route, tenant_a)
        except KeyError:
            pytest.fail(f"{route} has no probe in this test: add one so its auth is checked")
        method, url = _url(base, route, tenant_a)
        for name, token in _bad_tokens().items():
            headers = {} if token is None else {"Authorization": f"Bearer {token}"}
            response = requests.request(method, url, headers=headers, timeout=20, **probe)
            assert response.status_code == 401, f"{route} with a {name} token: {response.status_code}"
            assert response.json()["error"]["code"] == "UNAUTHENTICATED"
            matrix += 1
        # Another scheme is not a bearer token either.
        response = requests.request(
            method, url, headers={"Authorization": "Basic dXNlcjpwYXNz"}, timeout=20, **probe
        )
        assert response.status_code == 401, f"{route} with Basic auth: {response.status_code}"
        matrix += 1
    figures["auth_matrix"] = {"routes": len(routes), "probes": matrix}


def test_company_b_never_reads_or_writes_company_a_data(shared_suite, tenant_a, figures):
    base = shared_suite.gateway_url + "/api/v1"
    headers_b = {"Authorization": f"Bearer {shared_suite.token(B)}"}
    today = time.strftime("%Y-%m-%d", time.gmtime())
    period = {"start": today, "end": today}
    billing = shared_suite.billing()

    def a_records() -> int:
        return billing.ListUsageRecords(
            billing_pb2.ListUsageRecordsRequest(company_id=A), timeout=10
        ).total_size

    a_before = a_records()
    checks = 0
    # Reads: B's answers carry nothing of A's.
    for path in (
        "/billing/usage/records",
        "/billing/usage/export.csv",
        "/billing/usage/summary",
        "/billing/usage/daily",
    ):
        response = requests.get(base + path, params=period, headers=headers_b, timeout=20)
        assert response.status_code == 200, response.text
        for operation_id in tenant_a["operation_ids"]:
            assert operation_id not in response.text, f"{path} shows A's operation to B"
        assert A not in response.text
        checks += 1
    records = requests.get(
        base + "/billing/usage/records", params=period, headers=headers_b, timeout=20
    ).json()
    assert records["company_id"] == B and records["records"], "B should see its own records"
    # Naming A explicitly is refused.
    for path in (
        "/billing/usage/records",
        "/billing/usage/summary",
        "/billing/usage/daily",
        "/billing/usage/export.csv",
    ):
        response = requests.get(
            base + path, params={**period, "company_id": A}, headers=headers_b, timeout=20
        )
        assert response.status_code == 403, f"{path}?company_id=A answered {response.status_code}"
        checks += 1
    # Writes against A's resources are not found (their existence is not even confirmed) and write nothing.
    writes = [
        ("/interview-questions", {"json": {"resume_id": tenant_a["resume_id"], "job_description": "x"}}, 404),
        ("/interviews", {"json": {"question_set_id": tenant_a["question_set_id"]}}, 404),
        (f"/interviews/{tenant_a['interview_id']}/complete", {"json": {}}, 404),
        (
            "/interview-questions",
            {"json": {"company_id": A, "resume_id": tenant_a["resume_id"], "job_description": "x"}},
            403,
        ),
        (
            "/resumes",
            {"files": {"file": ("cv.txt", CV_TEXT.encode(), "text/plain")}, "data": {"company_id": A}},
            403,
        ),
    ]
    for path, body, status in writes:
        response = requests.post(base + path, headers=headers_b, timeout=20, **body)
        assert response.status_code == status, (
            f"POST {path} as B: {response.status_code} {response.text[:200]}"
        )
        checks += 1
    # A's interview is still open: B's completion did not meter it.
    a_complete = requests.post(
        f"{base}/interviews/{tenant_a['interview_id']}/complete",
        json={},
        headers={"Authorization": f"Bearer {shared_suite.token(A)}"},
        timeout=20,
    )
    assert a_complete.status_code == 200 and a_complete.json()["already_completed"] is False
    deadline = time.monotonic() + 20
    while a_records() != a_before + 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert a_records() == a_before + 1, "A's ledger changed by something other than A's own completion"
    figures["tenant_isolation"] = {"probes": checks + 1}


def _methods():
    for module, service in (
        (recruiting_pb2, "Recruiting"),
        (usage_tracker_pb2, "UsageTracker"),
        (billing_pb2, "Billing"),
    ):
        descriptor = module.DESCRIPTOR.services_by_name[service]
        for method in descriptor.methods:
            yield descriptor, method


@pytest.mark.parametrize("credentials", [None, "Bearer wrong-token", f"Basic {SERVICE_TOKEN}", SERVICE_TOKEN])
def test_every_internal_rpc_without_the_service_token_is_unauthenticated(shared_suite, figures, credentials):
    targets = {"Recruiting": "recruiting", "UsageTracker": "usage_tracker", "Billing": "billing"}
    probed = 0
    for service, method in _methods():
        channel = shared_suite.channel(targets[service.name], token=None)
        path = f"/{service.full_name}/{method.name}"
        metadata = () if credentials is None else (("authorization", credentials),)
        if method.server_streaming:
            call = channel.unary_stream(path, request_serializer=None, response_deserializer=None)
            with pytest.raises(grpc.RpcError) as info:
                list(call(b"", timeout=10, metadata=metadata))
        else:
            call = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
            with pytest.raises(grpc.RpcError) as info:
                call(b"", timeout=10, metadata=metadata)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, f"{path}: {info.value.code()}"
        probed += 1
    assert probed >= 17  # 4 recruiting + 9 tracker + 4 billing today; new RPCs only add
    figures.setdefault("grpc_auth", {})[str(credentials)[:12]] = probed
    # Health stays open without a token.
    for name in targets.values():
        health = health_pb2_grpc.HealthStub(shared_suite.channel(name, token=None))
        assert (
            health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
            == health_pb2.HealthCheckResponse.SERVING
        )


def test_with_the_service_token_the_same_calls_pass_the_interceptor(shared_suite):
    """The control: with the token, an empty request reaches the service and is refused as bad input."""
    stub = shared_suite.tracker()
    with pytest.raises(grpc.RpcError) as info:
        stub.Track(usage_tracker_pb2.TrackRequest(operation_id=f"op-{uuid.uuid4().hex}"), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
