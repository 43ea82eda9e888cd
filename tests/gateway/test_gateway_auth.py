"""Authentication and tenant isolation on every /api route: 401 for a missing, malformed, expired, tampered
or wrongly signed token; 403 when a request names another company; and the cross-tenant matrix: company A's
token reads and writes nothing of company B's."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time

import jwt
import pytest
import sqlalchemy as sa

from gateway.tokens import AUDIENCE, ISSUER, issue
from services.usage_tracker.storage.tables import usage_records
from tests.gateway.gateway_kit import JWT_SECRET, bearer
from tests.grpc.billing.billing_seed import seed_row

UTC = dt.UTC
MARCH = {"start": "2025-03-01", "end": "2025-03-31"}
GET_ROUTES = [
    "/api/v1/billing/usage/summary",
    "/api/v1/billing/usage/daily",
    "/api/v1/billing/usage/records",
    "/api/v1/billing/usage/export.csv",
]
JSON_ROUTES = [
    ("/api/v1/interview-questions", {"resume_id": "res-x", "job_description": "Engineer"}),
    ("/api/v1/interviews", {"job_id": "job-1", "candidate_id": "cand-1"}),
    ("/api/v1/interviews/int-x/complete", {}),
]


def call(client, route, headers, company_id=None):
    """One request per route kind; company_id, when given, rides in the query, the JSON body or the form."""
    if route in GET_ROUTES:
        params = dict(MARCH) | ({"company_id": company_id} if company_id else {})
        return client.get(route, params=params, headers=headers)
    if route == "/api/v1/resumes":
        data = {"job_id": "job-1"} | ({"company_id": company_id} if company_id else {})
        return client.post(
            route, files={"file": ("cv.txt", b"Jane Doe, engineer", "text/plain")}, data=data, headers=headers
        )
    body = dict(JSON_ROUTES_BY_PATH[route]) | ({"company_id": company_id} if company_id else {})
    return client.post(route, json=body, headers=headers)


JSON_ROUTES_BY_PATH = dict(JSON_ROUTES)
ALL_ROUTES = [*GET_ROUTES, "/api/v1/resumes", *JSON_ROUTES_BY_PATH]


def _tampered() -> str:
    header, payload, signature = issue(JWT_SECRET, "acme").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["company_id"] = "globex"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def _claims(**changes) -> dict:
    now = int(dt.datetime.now(UTC).timestamp())
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "u",
        "company_id": "acme",
        "iat": now,
        "exp": now + 60,
    } | changes


BAD_AUTH = {
    "missing": {},
    "empty bearer": {"Authorization": "Bearer "},
    "basic scheme": {"Authorization": "Basic YWNtZTpzZWNyZXQ="},
    "garbage": {"Authorization": "Bearer not-a-jwt"},
    "expired": {
        "Authorization": "Bearer "
        + jwt.encode(_claims(exp=1_600_000_000, iat=1_599_990_000), JWT_SECRET, "HS256")
    },
    "tampered": {"Authorization": "Bearer " + _tampered()},
    "wrong secret": {"Authorization": "Bearer " + issue("another-secret-0123456789abcdef0123456789", "acme")},
    "wrong audience": {
        "Authorization": "Bearer " + jwt.encode(_claims(aud="someone-else"), JWT_SECRET, "HS256")
    },
    "alg none": {"Authorization": "Bearer " + jwt.encode(_claims(), None, "none")},
    "no company": {
        "Authorization": "Bearer "
        + jwt.encode({k: v for k, v in _claims().items() if k != "company_id"}, JWT_SECRET, "HS256")
    },
}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_every_api_route_refuses_a_bad_token_with_401_json(api):
    for route in ALL_ROUTES:
        for name, headers in BAD_AUTH.items():
            response = call(api, route, headers)
            assert response.status_code == 401, (route, name, response.text)
            assert response.json()["error"]["code"] == "UNAUTHENTICATED"
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert response.json()["error"]["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_naming_another_company_is_403_on_every_route(api):
    for route in ALL_ROUTES:
        response = call(api, route, bearer("acme"), company_id="globex")
        assert response.status_code == 403, (route, response.text)
        assert response.json()["error"]["code"] == "PERMISSION_DENIED"


def test_cross_tenant_matrix(full_api, usage_engine):
    """Company A (acme) and B (globex) both have usage and recruiting objects; A's token sees and touches none of B's."""
    march = dt.datetime(2025, 3, 10, 12, tzinfo=UTC)
    mine = seed_row(
        usage_engine, company_id="acme", category="cv_parsing", completed_at=march, base_cost="0.01"
    )
    theirs = [
        seed_row(
            usage_engine,
            company_id="globex",
            category=category,
            completed_at=march,
            base_cost="5",
            quantity="2",
        )
        for category in ("cv_parsing", "question_generation", "video_interview")
    ]
    a, b = bearer("acme"), bearer("globex")

    # B's recruiting objects, made with B's token.
    resume = full_api.post(
        "/api/v1/resumes",
        files={"file": ("cv.txt", b"Bob Smith\nPython developer, 5 years", "text/plain")},
        data={"job_id": "job-b"},
        headers=b,
    )
    assert resume.status_code == 200, resume.text
    resume_id = resume.json()["resume"]["resume_id"]
    questions = full_api.post(
        "/api/v1/interview-questions",
        json={
            "resume_id": resume_id,
            "job_description": "Backend engineer",
            "stages": [{"stage": "screening", "count": 2}],
        },
        headers=b,
    )
    assert questions.status_code == 200, questions.text
    question_set_id = questions.json()["question_set"]["question_set_id"]
    interview = full_api.post(
        "/api/v1/interviews", json={"job_id": "job-b", "candidate_id": "cand-b"}, headers=b
    )
    assert interview.status_code == 200, interview.text
    interview_id = interview.json()["interview"]["interview_id"]

    # Reads: only A's figures, none of B's records, and B's page tokens are refused.
    summary = full_api.get("/api/v1/billing/usage/summary", params=MARCH, headers=a).json()
    assert summary["company_id"] == "acme" and summary["total_cost"] == "0.0125"
    daily = full_api.get("/api/v1/billing/usage/daily", params=MARCH, headers=a).json()
    assert daily["total_cost"] == "0.0125"
    records = full_api.get("/api/v1/billing/usage/records", params=MARCH, headers=a).json()
    assert [r["record_id"] for r in records["records"]] == [mine["record_id"]]
    export = full_api.get("/api/v1/billing/usage/export.csv", params=MARCH, headers=a).text
    assert mine["record_id"] in export and not any(row["record_id"] in export for row in theirs)
    b_page = full_api.get("/api/v1/billing/usage/records", params={**MARCH, "page_size": 1}, headers=b).json()
    assert b_page["next_page_token"]
    replay = full_api.get(
        "/api/v1/billing/usage/records",
        params={**MARCH, "page_size": 1, "page_token": b_page["next_page_token"]},
        headers=a,
    )
    assert replay.status_code == 400

    # Writes: A cannot use B's resume, question set or interview; they stay invisible (404, not 403).
    steal = full_api.post(
        "/api/v1/interview-questions", json={"resume_id": resume_id, "job_description": "x"}, headers=a
    )
    assert steal.status_code == 404, steal.text
    start = full_api.post(
        "/api/v1/interviews",
        json={"job_id": "j", "candidate_id": "c", "question_set_id": question_set_id},
        headers=a,
    )
    assert start.status_code == 404, start.text
    complete = full_api.post(f"/api/v1/interviews/{interview_id}/complete", json={}, headers=a)
    assert complete.status_code == 404, complete.text
    # B's interview is still open for B: A's attempt changed nothing.
    done = full_api.post(
        f"/api/v1/interviews/{interview_id}/complete",
        json={"usage": {"input_tokens": 1000, "output_tokens": 200}},
        headers=b,
    )
    assert done.status_code == 200 and done.json()["already_completed"] is False
    # Everything metered reached the ledger for B, and nothing for A.
    operations = [
        resume.json()["operation_id"],
        questions.json()["operation_id"],
        done.json()["interview"]["operation_id"],
    ]
    rows = wait_for_ledger(usage_engine, operations)
    assert {row.company_id for row in rows} == {"globex"}
    with usage_engine.connect() as connection:
        acme = (
            connection.execute(
                sa.select(usage_records.c.record_id).where(usage_records.c.company_id == "acme")
            )
            .scalars()
            .all()
        )
    assert acme == [mine["record_id"]]


def wait_for_ledger(engine, operation_ids: list[str], seconds: float = 15.0) -> list:
    """The ledger rows of these operations, once the outbox relay has delivered all of them."""
    deadline = time.monotonic() + seconds
    while True:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.select(usage_records).where(usage_records.c.operation_id.in_(operation_ids))
            ).all()
        if len(rows) == len(operation_ids) or time.monotonic() > deadline:
            assert len(rows) == len(operation_ids), (
                f"only {len(rows)} of {len(operation_ids)} reached the ledger"
            )
            return rows
        time.sleep(0.05)
