"""The billing JSON API over a real billing server: shapes, defaults, paging, CSV, 400s, OpenAPI."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

from tests.gateway.gateway_kit import bearer
from tests.grpc.billing.billing_seed import seed_row

UTC = dt.UTC
MARCH = {"start": "2025-03-01", "end": "2025-03-31"}


def seed(engine, company="acme", count=5):
    base = dt.datetime(2025, 3, 4, 9, tzinfo=UTC)
    rows = []
    for index in range(count):
        category = ("cv_parsing", "question_generation", "video_interview")[index % 3]
        rows.append(
            seed_row(
                engine,
                company_id=company,
                category=category,
                completed_at=base + dt.timedelta(hours=5 * index),
                base_cost="0.00875",
                quantity={"cv_parsing": None, "question_generation": "11", "video_interview": "4.5"}[
                    category
                ],
                source="fallback" if index == 4 else "response_usage",
            )
        )
    return rows


def test_summary_shape_is_exactly_the_design(api, usage_engine):
    seed(usage_engine)
    answer = api.get("/api/v1/billing/usage/summary", params=MARCH, headers=bearer("acme"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert {"company_id", "currency", "start", "end", "total_cost", "categories"} <= set(body)
    assert body["company_id"] == "acme" and body["currency"] == "USD"
    assert (body["start"], body["end"], body["time_zone"]) == ("2025-03-01", "2025-03-31", "UTC")
    assert [c["category"] for c in body["categories"]] == [
        "cv_parsing",
        "question_generation",
        "video_interview",
    ]
    cv = body["categories"][0]
    assert {
        "category",
        "total_cost",
        "base_cost",
        "operations",
        "quantity",
        "unit",
        "average_cost_per_unit",
    } <= set(cv)
    assert cv == cv | {
        "total_cost": "0.021875",
        "base_cost": "0.0175",
        "operations": 2,
        "quantity": "2",
        "unit": "cv",
    }
    assert cv["average_cost_per_unit"] == "0.010938"  # 0.0109375 half-even
    assert isinstance(body["total_cost"], str) and Decimal(body["total_cost"]) == Decimal("0.0546875")
    assert answer.headers["x-request-id"]


def test_default_period_is_this_month_utc(api, usage_engine):
    seed_row(
        usage_engine,
        company_id="acme",
        category="cv_parsing",
        completed_at=dt.datetime.now(UTC),
        base_cost="1",
    )
    body = api.get("/api/v1/billing/usage/summary", headers=bearer("acme")).json()
    today = dt.datetime.now(UTC).date()
    assert body["start"] == today.replace(day=1).isoformat()
    assert body["end"][:7] == today.isoformat()[:7] and body["total_cost"] == "1.25"
    daily = api.get("/api/v1/billing/usage/daily", headers=bearer("acme")).json()
    assert daily["days"][0]["date"] == body["start"] and daily["days"][-1]["date"] == body["end"]


def test_daily_series(api, usage_engine):
    seed(usage_engine)
    body = api.get(
        "/api/v1/billing/usage/daily", params={**MARCH, "tz": "Asia/Kolkata"}, headers=bearer("acme")
    ).json()
    assert len(body["days"]) == 31 and body["time_zone"] == "Asia/Kolkata"
    assert Decimal(body["total_cost"]) == Decimal("0.0546875")
    day = next(d for d in body["days"] if d["date"] == "2025-03-04")
    assert [c["category"] for c in day["categories"]] == [
        "cv_parsing",
        "question_generation",
        "video_interview",
    ]


def test_records_page_through_with_tokens_and_filters(api, usage_engine):
    rows = seed(usage_engine, count=7)
    first = api.get(
        "/api/v1/billing/usage/records", params={**MARCH, "page_size": 3}, headers=bearer("acme")
    ).json()
    assert first["total_size"] == 7 and len(first["records"]) == 3 and first["next_page_token"]
    seen = [r["record_id"] for r in first["records"]]
    token = first["next_page_token"]
    while token:
        page = api.get(
            "/api/v1/billing/usage/records",
            params={**MARCH, "page_size": 3, "page_token": token},
            headers=bearer("acme"),
        ).json()
        seen += [r["record_id"] for r in page["records"]]
        token = page["next_page_token"]
    assert seen == [row["record_id"] for row in reversed(rows)]
    record = first["records"][0]
    assert (
        record["kind"] == "record"
        and record["completed_time"].endswith("Z")
        and record["cost"] == "0.0109375"
    )
    fallback = api.get(
        "/api/v1/billing/usage/records", params={**MARCH, "source": "fallback"}, headers=bearer("acme")
    ).json()
    assert [r["source"] for r in fallback["records"]] == ["fallback"]
    cvs = api.get(
        "/api/v1/billing/usage/records", params={**MARCH, "category": "cv_parsing"}, headers=bearer("acme")
    ).json()
    assert {r["category"] for r in cvs["records"]} == {"cv_parsing"} and cvs["total_size"] == 3


def test_export_csv_streams_the_same_records(api, usage_engine):
    seed(usage_engine, count=6)
    response = api.get("/api/v1/billing/usage/export.csv", params=MARCH, headers=bearer("acme"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert (
        'filename="hiremeter-usage-acme-2025-03-01-2025-03-31.csv"' in response.headers["content-disposition"]
    )
    table = list(csv.DictReader(io.StringIO(response.text)))
    listed = api.get("/api/v1/billing/usage/records", params=MARCH, headers=bearer("acme")).json()["records"]
    assert [(r["record_id"], r["cost"]) for r in table] == [(r["record_id"], r["cost"]) for r in listed]


def test_bad_parameters_are_400_naming_the_field(api):
    cases = [
        ("/api/v1/billing/usage/summary", {"start": "2025-13-01", "end": "2025-03-31"}, "start"),
        ("/api/v1/billing/usage/summary", {"start": "2025-03-05", "end": "2025-03-01"}, "end"),
        ("/api/v1/billing/usage/summary", {"start": "2025-03-05"}, "start and end"),
        ("/api/v1/billing/usage/daily", {**MARCH, "tz": "Nowhere/Land"}, "tz"),
        ("/api/v1/billing/usage/daily", {"start": "2024-01-01", "end": "2025-12-31"}, "period"),
        ("/api/v1/billing/usage/records", {**MARCH, "category": "lunch"}, "category"),
        ("/api/v1/billing/usage/records", {**MARCH, "source": "guess"}, "source"),
        ("/api/v1/billing/usage/records", {**MARCH, "page_size": -1}, "page_size"),
        ("/api/v1/billing/usage/records", {**MARCH, "page_size": "many"}, "page_size"),
        ("/api/v1/billing/usage/records", {**MARCH, "page_token": "forged.token"}, "page_token"),
        ("/api/v1/billing/usage/records", {**MARCH, "job_id": "no spaces"}, "job_id"),
        ("/api/v1/billing/usage/export.csv", {"start": "yesterday", "end": "2025-03-01"}, "start"),
    ]
    for path, params, field in cases:
        response = api.get(path, params=params, headers=bearer("acme"))
        assert response.status_code == 400, (path, params, response.text)
        error = response.json()["error"]
        assert error["code"] == "INVALID_ARGUMENT" and error["message"].startswith(field), (params, error)
        assert error["request_id"] == response.headers["x-request-id"]


def test_request_id_is_echoed_and_invented_when_absent(api):
    answer = api.get("/healthz", headers={"X-Request-Id": "req-123"})
    assert answer.json() == {"status": "ok"} and answer.headers["x-request-id"] == "req-123"
    assert len(api.get("/healthz", headers={"X-Request-Id": "bad id\x01"}).headers["x-request-id"]) == 32


def test_cors_preflight_for_the_configured_origin(api):
    answer = api.options(
        "/api/v1/billing/usage/summary",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "https://app.example.com"
    other = api.options(
        "/api/v1/billing/usage/summary",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in other.headers


def test_openapi_documents_routes_strings_for_money_and_bearer_auth(api):
    document = api.get("/openapi.json").json()
    assert {
        "/healthz",
        "/api/v1/billing/usage/summary",
        "/api/v1/billing/usage/records",
        "/api/v1/billing/usage/daily",
        "/api/v1/billing/usage/export.csv",
        "/api/v1/resumes",
        "/api/v1/interview-questions",
        "/api/v1/interviews",
        "/api/v1/interviews/{interview_id}/complete",
    } <= set(document["paths"])
    schemas = document["components"]["schemas"]
    assert schemas["CategorySummary"]["properties"]["total_cost"]["type"] == "string"
    assert schemas["UsageSummary"]["additionalProperties"] is False
    assert "HTTPBearer" in document["components"]["securitySchemes"]
    upload = document["paths"]["/api/v1/resumes"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload


def test_the_page_shell(api):
    page = api.get("/dashboard/settings/billing?tab=usage")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert (
        "OpenAI is simulated" in page.text and "script-src 'self'" in page.headers["content-security-policy"]
    )
    assert '<script src="/static/billing.js' in page.text and "<script>" not in page.text
    redirect = api.get("/dashboard/settings/billing", follow_redirects=False)
    assert redirect.status_code == 307 and redirect.headers["location"].endswith("?tab=usage")
    assert api.get("/static/billing.js").status_code == 200
    assert api.get("/static/billing.css").headers["content-type"].startswith("text/css")
