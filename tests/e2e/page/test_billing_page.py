"""The billing page in Debian's Chromium, after real operations through the gateway.

The stack: the OpenAI simulator, a real tracker and billing on one SQLite usage database, real recruiting
relaying to that tracker, and `python -m gateway` as a uvicorn process. CVs, question sets and interviews
are created through the gateway's HTTP API; more operations are tracked directly so the table pages and the
period switch has a last month to show. One browser launch for the module; screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import calendar
import csv
import datetime as dt
import io
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect

from gateway.tokens import issue
from services.common import db
from services.common.migrate import RECRUITING_MIGRATIONS, USAGE_MIGRATIONS
from services.recruiting.bootstrap import start as start_recruiting
from tests.conftest import IN_CI, SERVER_SETTINGS, SERVICE_TOKEN
from tests.grpc.billing.billing_seed import running_billing, running_tracker
from tests.support.recruiting import recruiting_settings
from tools.openai_sim.testing import running_simulator

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
JWT_SECRET = "page-test-secret-0123456789abcdef0123456789abcdef"
COMPANY = "acme-recruiting"
UTC = dt.UTC


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _month(offset: int) -> tuple[dt.date, dt.date]:
    today = dt.datetime.now(UTC).date()
    year, month = divmod(today.year * 12 + today.month - 1 + offset, 12)
    first = dt.date(year, month + 1, 1)
    return first, first.replace(day=calendar.monthrange(first.year, first.month)[1])


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail("/usr/bin/chromium is missing: CI must install Debian's chromium")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    base = tmp_path_factory.mktemp("page")
    usage_url, recruiting_url = f"sqlite:///{base / 'usage.db'}", f"sqlite:///{base / 'recruiting.db'}"
    db.upgrade(usage_url, USAGE_MIGRATIONS)
    db.upgrade(recruiting_url, RECRUITING_MIGRATIONS)
    with (
        running_simulator() as sim,
        running_tracker(usage_url, SERVER_SETTINGS, SERVICE_TOKEN) as tracker,
        running_billing(usage_url, SERVER_SETTINGS, SERVICE_TOKEN) as (billing_target, _),
    ):
        recruiting = start_recruiting(
            recruiting_settings(
                SERVER_SETTINGS, recruiting_url, tracker.target, base_url=sim.base_url, api_key=sim.api_key
            )
        )
        port = _free_port()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HIREMETER_SERVICE_TOKEN": SERVICE_TOKEN,
            "GATEWAY_JWT_SECRET": JWT_SECRET,
            "GATEWAY_PORT": str(port),
            "BILLING_TARGET": billing_target,
            "RECRUITING_TARGET": f"127.0.0.1:{recruiting.port}",
            "HIREMETER_OPENAI_SIMULATED": "true",
        }
        gateway = subprocess.Popen(
            [sys.executable, "-m", "gateway"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        origin = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(origin + "/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline or gateway.poll() is not None:
                    gateway.kill()
                    pytest.fail("gateway did not start: " + gateway.stderr.read().decode()[-2000:])
                time.sleep(0.1)
        try:
            yield {
                "origin": origin,
                "tracker": tracker,
                "token": issue(JWT_SECRET, COMPANY),
                "gateway": gateway,
            }
        finally:
            gateway.terminate()
            # SIGTERM: uvicorn shuts down gracefully, then re-raises the signal it caught.
            assert gateway.wait(timeout=10) in (0, -15)
            recruiting.stop()


@pytest.fixture(scope="module")
def browser(stack):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


def _operate_through_the_gateway(request, origin: str, token: str) -> None:
    """Real operations via the HTTP API: CVs parsed, question sets generated, interviews run."""
    auth = {"Authorization": f"Bearer {token}"}
    resume_ids = []
    for index, name in enumerate(("Ada Lovelace", "Grace Hopper", "Alan Turing")):
        answer = request.post(
            origin + "/api/v1/resumes",
            headers=auth,
            multipart={
                "file": {
                    "name": "cv.txt",
                    "mimeType": "text/plain",
                    "buffer": f"{name}\nEngineer, 10 years of Python".encode(),
                },
                "job_id": "job-backend",
                "candidate_id": f"cand-{index}",
            },
        )
        assert answer.ok, answer.text()
        resume_ids.append(answer.json()["resume"]["resume_id"])
    for resume_id in resume_ids[:2]:
        answer = request.post(
            origin + "/api/v1/interview-questions",
            headers=auth,
            data={
                "resume_id": resume_id,
                "job_description": "Backend engineer",
                "stages": [{"stage": "technical", "count": 4}],
            },
        )
        assert answer.ok, answer.text()
    for index in range(2):
        started = request.post(
            origin + "/api/v1/interviews",
            headers=auth,
            data={"job_id": "job-backend", "candidate_id": f"cand-{index}"},
        )
        assert started.ok, started.text()
        interview_id = started.json()["interview"]["interview_id"]
        done = request.post(
            f"{origin}/api/v1/interviews/{interview_id}/complete",
            headers=auth,
            data={
                "usage": {
                    "input_tokens": 12000,
                    "output_tokens": 3000,
                    "input_audio_tokens": 9000,
                    "output_audio_tokens": 2500,
                }
            },
        )
        assert done.ok, done.text()


def _api(request, origin, token, path, **params):
    answer = request.get(origin + path, headers={"Authorization": f"Bearer {token}"}, params=params)
    assert answer.ok, answer.text()
    return answer


def test_the_billing_page(stack, browser):
    origin, token, tracker = stack["origin"], stack["token"], stack["tracker"]
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    request = context.request
    _operate_through_the_gateway(request, origin, token)
    # Earlier this month (for paging) and last month (for the period switch), tracked directly.
    first, _ = _month(0)
    now = dt.datetime.now(UTC)
    start_of_month = dt.datetime.combine(first, dt.time(), tzinfo=UTC)
    for index in range(60):
        when = start_of_month + (now - start_of_month) * (index / 60)
        tracker.track(
            company_id=COMPANY,
            category=("cv_parsing", "question_generation")[index % 2],
            completed_at=when,
            quantity="" if index % 2 == 0 else "6",
            input_tokens=None if index % 10 == 0 else 2000,
        )
    for minutes in ("14", "9.5"):  # interviews of realistic length (the live ones above last seconds)
        tracker.track(
            company_id=COMPANY,
            category="video_interview",
            completed_at=now - dt.timedelta(hours=1),
            quantity=minutes,
            model="gpt-realtime",
            input_tokens=40000,
            output_tokens=9000,
        )
    last_first, last_end = _month(-1)
    for day in (3, 9, 17):
        tracker.track(
            company_id=COMPANY,
            category="video_interview",
            completed_at=dt.datetime.combine(last_first.replace(day=day), dt.time(15), tzinfo=UTC),
            quantity="12.5",
            input_tokens=None,
        )
    tracker.track(company_id="globex", category="cv_parsing", completed_at=now, input_tokens=None)

    # The relay tracks the gateway's operations within moments.
    deadline = time.monotonic() + 15
    while True:
        summary = _api(request, origin, token, "/api/v1/billing/usage/summary").json()
        if sum(c["operations"] for c in summary["categories"]) == 69 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [c["operations"] for c in summary["categories"]] == [33, 32, 4], summary

    page = context.new_page()
    console_errors = []
    page.on("console", lambda message: message.type == "error" and console_errors.append(message.text))
    page.goto(f"{origin}/dashboard/settings/billing?tab=usage#token={token}")
    page.wait_for_selector("#records tbody tr")
    assert "#token" not in page.url and "tab=usage" in page.url  # the token left the address bar
    assert page.locator(".notice").inner_text().startswith("OpenAI is simulated")

    # Three cards with the API's exact figures (shown rounded; the exact value in the title).
    for category in summary["categories"]:
        card = page.locator(f"#card-{category['category']}")
        amount = card.locator('[data-field="total_cost"]')
        assert amount.get_attribute("title").startswith(category["total_cost"] + " USD")
        assert amount.inner_text().startswith("$")
        assert (
            card.locator('[data-field="average_cost_per_unit"]').get_attribute("title")
            == category["average_cost_per_unit"] + " USD"
        )
    assert page.locator('#card-cv_parsing [data-field="quantity"]').inner_text() == "33 CVs"
    assert (
        page.locator('#card-question_generation [data-field="quantity"]').inner_text()
        == f"{int(summary['categories'][1]['quantity'])} questions"
    )
    assert page.locator('#card-video_interview [data-field="quantity"]').inner_text().endswith(" min")
    assert page.locator("#total").get_attribute("title") == summary["total_cost"] + " USD"

    # The stacked daily chart: one bar group per day of the month, segments where there was usage.
    days_in_month = calendar.monthrange(first.year, first.month)[1]
    assert page.locator("#chart svg g.bar").count() == days_in_month
    assert page.locator("#chart svg rect.seg").count() >= 1
    assert "Daily cost" in page.locator("#chart svg title#chart-desc").text_content()

    # The records table pages by tokens: 50, then the rest, and back.
    assert page.locator("#records tbody tr").count() == 50
    assert page.locator("#page-info").inner_text() == "1–50 of 69"
    assert page.locator("#records .badge-response_usage").count() >= 1
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "billing-page-desktop.png"), full_page=True)
    first_page_ids = page.locator("#records tbody tr td:first-child").all_inner_texts()
    page.click("#next")
    expect(page.locator("#page-info")).to_have_text(re.compile("^51"))
    assert page.locator("#records tbody tr").count() == 19
    assert page.locator("#next").is_disabled()
    page.click("#prev")
    expect(page.locator("#page-info")).to_have_text(re.compile("^1–"))
    assert page.locator("#records tbody tr td:first-child").all_inner_texts() == first_page_ids

    # Filter by source: only fallback badges remain.
    page.select_option("#filter-source", "fallback")
    expect(page.locator("#page-info")).to_have_text(re.compile("of 6$"))
    assert page.locator("#records .badge-fallback").count() == 6

    # CSV export downloads with the bearer token; its rows are the API's records for the period.
    with page.expect_download() as download_info:
        page.click("#export")
    path = download_info.value.path()
    rows = list(csv.DictReader(io.StringIO(Path(path).read_text())))
    listed = _api(
        request, origin, token, "/api/v1/billing/usage/records", source="fallback", page_size=500
    ).json()
    assert [(r["record_id"], r["cost"]) for r in rows] == [
        (r["record_id"], r["cost"]) for r in listed["records"]
    ]
    assert download_info.value.suggested_filename.startswith(f"hiremeter-usage-{COMPANY}-")
    page.select_option("#filter-source", "")
    expect(page.locator("#page-info")).to_have_text(re.compile("of 69$"))

    # Period switch: last month shows last month's interviews only.
    last = _api(
        request,
        origin,
        token,
        "/api/v1/billing/usage/summary",
        start=last_first.isoformat(),
        end=last_end.isoformat(),
    ).json()
    page.select_option("#period", "last_month")
    expect(page.locator("#page-info")).to_have_text(re.compile("of 3$"))
    video = page.locator('#card-video_interview [data-field="total_cost"]')
    assert video.get_attribute("title").startswith(last["categories"][2]["total_cost"] + " USD")
    assert page.locator('#card-cv_parsing [data-field="quantity"]').inner_text() == "0 CVs"
    assert page.locator('#card-video_interview [data-field="quantity"]').inner_text() == "37.5 min"
    assert "period=last_month" in page.url
    assert page.locator("#chart svg g.bar").count() == (last_end - last_first).days + 1

    # A phone: one column, readable, nothing wider than the screen.
    phone = browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    small = phone.new_page()
    small.goto(f"{origin}/dashboard/settings/billing?tab=usage#token={token}")
    small.wait_for_selector("#records tbody tr")
    assert small.evaluate("document.documentElement.scrollWidth") <= 390
    small.screenshot(path=str(ARTIFACTS / "billing-page-phone.png"))
    small.locator("#records").scroll_into_view_if_needed()
    small.screenshot(path=str(ARTIFACTS / "billing-page-phone-records.png"))
    phone.close()

    # Without a token: the paste box, keyboard-usable.
    bare = browser.new_context()
    anonymous = bare.new_page()
    anonymous.goto(f"{origin}/dashboard/settings/billing?tab=usage")
    anonymous.wait_for_selector("#signin:not([hidden])")
    anonymous.fill("#token-input", token)
    anonymous.keyboard.press("Tab")
    anonymous.keyboard.press("Enter")
    anonymous.wait_for_selector("#records tbody tr")
    bare.close()
    context.close()
    assert console_errors == []
