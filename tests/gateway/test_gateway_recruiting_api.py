"""The recruiting routes against a real recruiting server (simulated OpenAI): uploads with a size limit
enforced while reading, JSON bodies validated to 400, results in strict JSON."""

from __future__ import annotations

import pytest

from gateway.routes.recruiting import MAX_FILE_BYTES
from tests.gateway.gateway_kit import bearer

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def upload(client, content: bytes, name="cv.txt", **data):
    return client.post(
        "/api/v1/resumes",
        files={"file": (name, content, "text/plain")},
        data={"job_id": "job-1", **data},
        headers=bearer("acme"),
    )


def test_the_whole_recruiting_flow(full_api):
    parsed = upload(
        full_api,
        b"Jane Doe\njane@example.com\nSenior Python engineer at Initech 2019-2024",
        candidate_id="cand-7",
    )
    assert parsed.status_code == 200, parsed.text
    body = parsed.json()
    assert (
        body["resume"]["candidate_id"] == "cand-7"
        and body["operation_id"]
        and body["usage"]["input_tokens"] > 0
    )
    questions = full_api.post(
        "/api/v1/interview-questions",
        json={
            "resume_id": body["resume"]["resume_id"],
            "job_description": "Senior backend engineer",
            "stages": [{"stage": "technical", "count": 3}],
        },
        headers=bearer("acme"),
    )
    assert questions.status_code == 200, questions.text
    assert questions.json()["question_count"] == 3
    started = full_api.post(
        "/api/v1/interviews",
        json={
            "job_id": "job-1",
            "candidate_id": "cand-7",
            "question_set_id": questions.json()["question_set"]["question_set_id"],
        },
        headers=bearer("acme"),
    )
    assert started.status_code == 200, started.text
    assert started.json()["client_secret"] and started.json()["interview"]["state"] == "started"
    interview_id = started.json()["interview"]["interview_id"]
    done = full_api.post(
        f"/api/v1/interviews/{interview_id}/complete",
        json={
            "response_usages": [
                {
                    "input_tokens": 500,
                    "output_tokens": 100,
                    "total_tokens": 600,
                    "input_text_tokens": 500,
                    "output_text_tokens": 100,
                }
            ]
        },
        headers=bearer("acme"),
    )
    assert done.status_code == 200, done.text
    assert done.json()["interview"]["state"] == "completed" and done.json()["usage"]["input_tokens"] == 500
    again = full_api.post(f"/api/v1/interviews/{interview_id}/complete", json={}, headers=bearer("acme"))
    assert again.json()["already_completed"] is True


def test_upload_limits_and_shapes(full_api):
    too_big = upload(full_api, b"a" * (MAX_FILE_BYTES + 1))
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    declared = full_api.post(
        "/api/v1/resumes",
        content=b"x" * 10,
        headers={
            **bearer("acme"),
            "Content-Type": "multipart/form-data; boundary=b",
            "Content-Length": str(50 * 1024 * 1024),
        },
    )
    assert declared.status_code == 413

    def chunks():  # no Content-Length: the cap applies while the stream is read
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="cv.txt"\r\n\r\n'
        for _ in range(12):
            yield b"a" * (1024 * 1024)

    streamed = full_api.post(
        "/api/v1/resumes",
        content=chunks(),
        headers={**bearer("acme"), "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert streamed.status_code == 413
    assert upload(full_api, b"").status_code == 400
    missing = full_api.post(
        "/api/v1/resumes", data={"job_id": "job-1"}, files={"other": ("x", b"x")}, headers=bearer("acme")
    )
    assert missing.status_code == 400 and missing.json()["error"]["message"].startswith("file")
    wrong_type = full_api.post("/api/v1/resumes", json={"file": "x"}, headers=bearer("acme"))
    assert wrong_type.status_code == 415


def test_bad_json_bodies_are_400_naming_the_field(full_api):
    cases = [
        ("/api/v1/interview-questions", {"job_description": "x"}, "resume_id"),
        (
            "/api/v1/interview-questions",
            {"resume_id": "r", "job_description": "x", "stages": [{"stage": "s", "count": 99}]},
            "stages.0.count",
        ),
        (
            "/api/v1/interview-questions",
            {"resume_id": "r", "job_description": "x", "surprise": 1},
            "surprise",
        ),
        ("/api/v1/interviews", {"secret_ttl_seconds": "long"}, "secret_ttl_seconds"),
        ("/api/v1/interviews/int-1/complete", {"usage": {"input_tokens": -5}}, "usage.input_tokens"),
        ("/api/v1/interviews/int-1/complete", {"end_time": "tomorrow"}, "end_time"),
    ]
    for path, body, field in cases:
        response = full_api.post(path, json=body, headers=bearer("acme"))
        assert response.status_code == 400, (path, response.text)
        assert response.json()["error"]["message"].startswith(field), response.json()
    # Recruiting's own validation comes back as 400 too, its message naming the field.
    bad = full_api.post("/api/v1/interviews", json={"job_id": "bad id!"}, headers=bearer("acme"))
    assert bad.status_code == 400 and "job_id" in bad.json()["error"]["message"]


def test_recruiting_down_is_503_json(api):
    response = api.post("/api/v1/interviews", json={"job_id": "j"}, headers=bearer("acme"))
    assert response.status_code == 503
    assert response.json()["error"] == response.json()["error"] | {"code": "UNAVAILABLE"}
    assert "127.0.0.1" not in response.text  # no internal address leaks
