"""The tracker's domain and usage API coalescing, with no server, database or network."""

from __future__ import annotations

import datetime as dt
import threading
import time
from decimal import Decimal

import pytest

from services.common.config import ConfigError, Env
from services.common.errors import InvalidArgument
from services.usage_tracker.clients.usage_api import (
    CircuitBreaker,
    UsageApiError,
    UsageApiSettings,
    UsageWindows,
)
from services.usage_tracker.config import Settings
from services.usage_tracker.domain import decimals
from services.usage_tracker.domain.attribution import ReportedUsage, Window, claim, reported_in
from services.usage_tracker.domain.price_admin import seed_versions, versions_from_json
from services.usage_tracker.domain.pricing import PriceBook, TokenClasses, TokenUsage, token_cost
from services.usage_tracker.domain.tracking import TrackInput, validate

UTC = dt.UTC
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("0.00875", "0.00875"),
        ("12.50", "12.5"),
        ("100", "100"),
        ("1E+2", "100"),
        ("-0.000", "0"),
        ("0.0109375000", "0.0109375"),
        ("1E-12", "0.000000000001"),
        ("123456789012345678901234567890.5", "123456789012345678901234567890.5"),
    ],
)
def test_canonical_decimal_text(value, text):
    assert decimals.canonical(Decimal(value)) == text


@pytest.mark.parametrize("bad", ["1e3", "NaN", "Infinity", " ", "1,5", "0x10", "1.2.3"])
def test_decimal_input_is_plain(bad):
    with pytest.raises(ValueError, match="quantity"):
        decimals.parse(bad, "quantity")


def test_token_classes_are_disjoint_and_complete():
    usage = TokenUsage(1000, 500, 400, 300, 100, 200, 50)
    classes = usage.classes()
    assert classes == TokenClasses(400, 300, 200, 100, 300, 200)
    assert classes.total() == usage.input_tokens + usage.output_tokens
    assert classes.usage() == TokenUsage(1000, 500, 400, 300, 100, 200, 0)


def test_resolution_exact_then_dated_snapshot_never_a_sibling():
    version = seed_versions()[0]
    family = {
        m: (p.model if (p := version.resolve(m)) else None)
        for m in [
            "gpt-4o",
            "gpt-4o-2024-08-06",
            "gpt-4o-mini",
            "gpt-4o-mini-2024-07-18",
            "gpt-realtime-2025-08-28",
            "gpt-4o-realtime-preview-2024-12-17",
            "gpt-realtime-mini",
            "gpt-4o-audio-preview",
            "gpt-4",
            "ft:gpt-4o:x",
        ]
    }
    assert family == {
        "gpt-4o": "gpt-4o",
        "gpt-4o-2024-08-06": "gpt-4o",
        "gpt-4o-mini": "gpt-4o-mini",
        "gpt-4o-mini-2024-07-18": "gpt-4o-mini",
        "gpt-realtime-2025-08-28": "gpt-realtime",
        "gpt-4o-realtime-preview-2024-12-17": "gpt-4o-realtime-preview",
        "gpt-realtime-mini": None,
        "gpt-4o-audio-preview": None,
        "gpt-4": None,
        "ft:gpt-4o:x": None,
    }
    # Even a price book without gpt-4o-mini never prices it as gpt-4o.
    only_4o = versions_from_json(
        '{"version": "x", "effective_time": "2025-01-01T00:00:00Z", "models": [{"model": "gpt-4o", "text_input": "1",'
        ' "cached_text_input": "1", "text_output": "1"}], "fallback_prices": {"cv_parsing": "1",'
        ' "question_generation": "1", "video_interview": "1"}}'
    )[0]
    assert only_4o.resolve("gpt-4o-mini") is None


def test_seed_example_and_price_book_versions():
    book = PriceBook(seed_versions())
    version = book.at(NOW)
    assert version is not None and version.version == "2024-12-17"
    assert book.at(dt.datetime(2024, 1, 1, tzinfo=UTC)) is None
    base = token_cost(version.resolve("gpt-4o"), TokenUsage(1500, 500).classes())
    assert (decimals.canonical(base), decimals.canonical(decimals.with_margin(base, Decimal("0.25")))) == (
        "0.00875",
        "0.0109375",
    )


def test_price_book_file_errors_name_the_field():
    with pytest.raises(InvalidArgument, match=r"versions\[0\]\.fallback_prices\.video_interview"):
        versions_from_json(
            '{"version": "x", "effective_time": "2025-01-01T00:00:00Z", "models": [{"model": "m", "text_input": "1",'
            ' "cached_text_input": "1", "text_output": "1"}], "fallback_prices": {"cv_parsing": "1",'
            ' "question_generation": "1"}}'
        )


def _input(**changes) -> TrackInput:
    base = dict(
        operation_id="op",
        category="cv_parsing",
        company_id="acme",
        job_id="",
        candidate_id="",
        model="gpt-4o",
        usage=None,
        started=(int(NOW.timestamp()) - 60, 0),
        completed=(int(NOW.timestamp()), 5000),
        quantity="",
        openai_project_id="",
    )
    return TrackInput(**{**base, **changes})


def test_validation_defaults_and_prefix():
    command = validate(_input(), now=NOW)
    assert command.quantity == 1 and command.completed_at.microsecond == 5
    assert validate(_input(), now=NOW).payload_hash() == command.payload_hash()
    assert validate(_input(job_id="j"), now=NOW).payload_hash() != command.payload_hash()
    with pytest.raises(InvalidArgument, match=r"^requests\[4\]\.usage\.reasoning_tokens "):
        validate(_input(usage=TokenUsage(10, 5, reasoning_tokens=6)), now=NOW, prefix="requests[4].")


def test_claims_split_the_remainder_exactly_and_never_exceed_it():
    window = Window.covering(NOW, NOW + dt.timedelta(seconds=90))
    assert (window.start, window.end) == (NOW, NOW + dt.timedelta(minutes=2))
    results = [
        ReportedUsage(NOW, "gpt-4o-2024-08-06", "p", TokenClasses(text_input=1000, text_output=101)),
        ReportedUsage(NOW, "gpt-4o-mini-2024-07-18", "p", TokenClasses(text_input=77)),
        ReportedUsage(NOW + dt.timedelta(minutes=2), "gpt-4o", "p", TokenClasses(text_input=5)),  # outside
    ]
    reported = reported_in(
        results, window, "gpt-4o", lambda m: "gpt-4o-mini" if "mini" in m else "gpt-4o", ""
    )
    assert reported == TokenClasses(text_input=1000, text_output=101)
    held = TokenClasses(text_input=100)
    taken = TokenClasses()
    for pending in (3, 2, 1):
        taken = taken.plus(claim(reported, held.plus(taken), pending))
    assert taken == TokenClasses(text_input=900, text_output=101)
    assert claim(reported, reported, 1).total() == 0


def test_breaker_opens_then_lets_one_trial_through():
    clock = [0.0]
    breaker = CircuitBreaker(failures=2, cooldown=10, clock=lambda: clock[0])
    breaker.failure()
    assert breaker.allow()
    breaker.failure()
    assert not breaker.allow() and breaker.state == "open"
    clock[0] = 11
    assert breaker.allow() and not breaker.allow()  # one trial at a time
    breaker.success()
    assert breaker.state == "closed"


class _FakeApi:
    """Counts calls; answers after a short pause so concurrent lookups pile up behind the first."""

    def __init__(self, fail: bool = False) -> None:
        self.calls = 0
        self.fail = fail
        self._lock = threading.Lock()

    def usage(self, start, end, width):
        with self._lock:
            self.calls += 1
        time.sleep(0.05)
        if self.fail:
            raise UsageApiError("usage API answered HTTP 500")
        return [ReportedUsage(start, "gpt-4o", "p", TokenClasses(text_input=10))]


def _lookups(api, settings, count):
    windows = UsageWindows(api, settings)
    window = Window.covering(
        dt.datetime.now(UTC) - dt.timedelta(minutes=3), dt.datetime.now(UTC) - dt.timedelta(minutes=2)
    )
    completed = dt.datetime.now(UTC) - dt.timedelta(minutes=2)
    outcomes = []

    def one():
        try:
            outcomes.append(windows.lookup(window, completed, timeout=5))
        except UsageApiError as error:
            outcomes.append(error)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_concurrent_lookups_of_one_window_share_one_call_and_its_failure():
    settings = UsageApiSettings(base_url="unused", admin_key="unused", min_interval_seconds=2.0)
    api = _FakeApi()
    outcomes = _lookups(api, settings, 40)
    assert api.calls == 1 and all(not isinstance(o, UsageApiError) for o in outcomes)
    failing = _FakeApi(fail=True)
    outcomes = _lookups(failing, settings, 40)
    assert failing.calls == 1 and all(isinstance(o, UsageApiError) for o in outcomes)


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"HIREMETER_DEFAULT_MARGIN": "lots"}, "HIREMETER_DEFAULT_MARGIN"),
        ({"HIREMETER_DEFAULT_MARGIN": "11"}, "HIREMETER_DEFAULT_MARGIN"),
        ({"HIREMETER_FALLBACK_PRICE_CV_PARSING": "0"}, "HIREMETER_FALLBACK_PRICE_CV_PARSING"),
        ({"OPENAI_ADMIN_KEY": "sk-admin-x", "USAGE_API_TIMEOUT_SECONDS": "0"}, "USAGE_API_TIMEOUT_SECONDS"),
        ({"OPENAI_ADMIN_KEY": "sk-admin-x", "USAGE_API_BREAKER_FAILURES": "x"}, "USAGE_API_BREAKER_FAILURES"),
        ({}, "HIREMETER_SERVICE_TOKEN"),
    ],
)
def test_settings_fail_fast_naming_the_variable(environ, variable):
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env(Env({"USAGE_DATABASE_URL": "sqlite:///unused.db", **environ}))


def test_settings_defaults_and_jobs_without_a_service_token():
    settings = Settings.from_env(Env({"USAGE_DATABASE_URL": "sqlite:///unused.db"}), serving=False)
    assert settings.server is None and settings.usage_api is None
    assert settings.default_margin == Decimal("0.25")
    assert settings.fallback_prices == {
        "cv_parsing": Decimal("0.50"),
        "question_generation": Decimal("0.01"),
        "video_interview": Decimal("0.30"),
    }
    with_api = Settings.from_env(
        Env({"USAGE_DATABASE_URL": "x", "OPENAI_ADMIN_KEY": "sk-admin-x"}), serving=False
    )
    assert (
        with_api.usage_api.base_url == "https://api.openai.com/v1"
        and with_api.usage_api.min_interval_seconds == 15
    )
