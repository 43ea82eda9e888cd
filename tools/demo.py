"""`make demo`: real operations through the whole path of a running suite (`make run` in another terminal).

For each candidate: a CV uploaded to the gateway (PDF, DOCX or text, made here), parsed by recruiting on
(simulated) GPT-4o; staged interview questions; a Realtime interview driven turn by turn over the
WebSocket with the ephemeral key the gateway handed out, then completed with its response.done usages.
Every operation goes recruiting → outbox → UsageTracker.Track → ledger, and shows on the billing page,
whose link is printed at the end.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys

import docx
import httpx2
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from gateway.tokens import DEMO_COMPANY_ID, demo_link, issue
from services.common.config import VAR_DIR
from services.recruiting.domain.usage import RealtimeUsage
from tools.interview_driver import drive_interview

JOB_ID = "job-backend-2026"
JOB_DESCRIPTION = (
    "Senior backend engineer: Python, gRPC services, PostgreSQL, event-driven billing pipelines, "
    "observability, and mentoring a small team."
)
CANDIDATES = [
    (
        "Ada Moreau",
        "Backend engineer, 8 years. Python, Go, PostgreSQL, Kafka. Led a billing platform rewrite.",
    ),
    ("Kwame Mensah", "Platform engineer, 6 years. Kubernetes, gRPC, Terraform, SRE practices, on-call lead."),
    (
        "Lena Fischer",
        "Data engineer, 5 years. Python, Airflow, dbt, PostgreSQL, cost analytics for cloud spend.",
    ),
    ("Ravi Iyer", "Staff engineer, 11 years. Distributed systems, Java and Python, payments and ledgers."),
]


def _cv_text(name: str, summary: str) -> str:
    handle = name.lower().replace(" ", ".")
    return (
        f"{name}\n{handle}@example.com · +44 20 7946 0000 · London\n\nSummary\n{summary}\n\n"
        "Experience\nSenior Engineer, Northwind (2021 - present): owned the metering service.\n"
        "Engineer, Contoso (2017 - 2021): built APIs and data pipelines.\n\n"
        "Education\nMSc Computer Science, University of Edinburgh (2015 - 2017)\n\n"
        "Skills\nPython, PostgreSQL, gRPC, observability\nLanguages\nEnglish, French\n"
    )


def _as_pdf(text: str) -> bytes:
    buffer = io.BytesIO()
    page = canvas.Canvas(buffer, pagesize=A4)
    y = 800
    for line in text.splitlines():
        page.drawString(50, y, line)
        y -= 16
    page.save()
    return buffer.getvalue()


def _as_docx(text: str) -> bytes:
    document = docx.Document()
    for line in text.splitlines():
        document.add_paragraph(line)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


FORMATS = [
    ("cv.pdf", "application/pdf", _as_pdf),
    (
        "cv.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        _as_docx,
    ),
    ("cv.txt", "text/plain", lambda text: text.encode()),
]


def _secret() -> str:
    secret = os.environ.get("GATEWAY_JWT_SECRET")
    if secret:
        return secret
    path = VAR_DIR / "dev-secrets.json"
    if not path.exists():
        raise SystemExit(
            "demo: start the suite with `make run` first (no GATEWAY_JWT_SECRET, no var/dev-secrets.json)"
        )
    return json.loads(path.read_text())["GATEWAY_JWT_SECRET"]


def _check(response: httpx2.Response) -> dict:
    if response.status_code >= 400:
        raise SystemExit(
            f"demo: {response.request.method} {response.request.url.path}: {response.status_code} {response.text}"
        )
    return response.json()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", default=f"http://127.0.0.1:{os.environ.get('GATEWAY_PORT', '8080')}")
    parser.add_argument(
        "--openai-base-url",
        default=f"http://127.0.0.1:{os.environ.get('OPENAI_SIM_PORT', '8099')}/v1",
        help="where the interview's WebSocket goes (the simulator that `make run` started)",
    )
    parser.add_argument("--company-id", default=DEMO_COMPANY_ID)
    parser.add_argument(
        "--candidates", type=int, default=len(CANDIDATES), choices=range(1, len(CANDIDATES) + 1)
    )
    parser.add_argument("--turns", type=int, default=4, help="interview turns per candidate")
    args = parser.parse_args(argv)

    secret = _secret()
    headers = {"Authorization": f"Bearer {issue(secret, args.company_id)}"}
    with httpx2.Client(base_url=args.gateway, headers=headers, timeout=60) as http:
        for index, (name, summary) in enumerate(CANDIDATES[: args.candidates]):
            file_name, content_type, render = FORMATS[index % len(FORMATS)]
            text = _cv_text(name, summary)
            parsed = _check(
                http.post(
                    "/api/v1/resumes",
                    data={"job_id": JOB_ID},
                    files={"file": (file_name, render(text), content_type)},
                )
            )
            resume = parsed["resume"]
            print(f"CV parsed ({file_name}): {resume['full_name']}, operation {parsed['operation_id']}")
            questions = _check(
                http.post(
                    "/api/v1/interview-questions",
                    json={
                        "job_id": JOB_ID,
                        "resume_id": resume["resume_id"],
                        "job_description": JOB_DESCRIPTION,
                        "stages": [
                            {"stage": "screening", "count": 3},
                            {"stage": "technical", "count": 4},
                            {"stage": "behavioural", "count": 2},
                        ],
                    },
                )
            )
            print(f"  {questions['question_count']} questions generated")
            started = _check(
                http.post(
                    "/api/v1/interviews",
                    json={
                        "job_id": JOB_ID,
                        "candidate_id": resume["candidate_id"],
                        "question_set_id": questions["question_set"]["question_set_id"],
                    },
                )
            )
            interview = started["interview"]
            usages = drive_interview(args.openai_base_url, started["client_secret"], turns=args.turns)
            completed = _check(
                http.post(
                    f"/api/v1/interviews/{interview['interview_id']}/complete",
                    json={"response_usages": [vars(RealtimeUsage.from_event_usage(u)) for u in usages]},
                )
            )
            minutes = completed["interview"]["duration_minutes"]
            print(f"  interview of {len(usages)} turns completed ({minutes} min)")
    print(f"\nBilling page: {demo_link(args.gateway, {'GATEWAY_JWT_SECRET': secret}, args.company_id)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
