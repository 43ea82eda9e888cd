"""Reconciliation through the real gRPC surface and the CLI, against the simulator's usage and costs APIs:
drift shows in the report, provisional fallback records get one adjustment each, re-running writes nothing."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from decimal import Decimal

import grpc
import pytest
from hiremeter.usage.v1 import usage_tracker_pb2 as pb

from services.common.config import REPO_ROOT
from tests.grpc.usage_tracker.tracker_helpers import track_request

UTC = dt.UTC


def _times() -> tuple[dt.datetime, dt.datetime]:
    """Two minutes of today, a few minutes ago (moved back when that would cross midnight)."""
    first = dt.datetime.now(UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=8)
    if first.date() != (first + dt.timedelta(minutes=9)).date() or first.hour == 23 and first.minute > 40:
        first -= dt.timedelta(minutes=30)
    return first, first + dt.timedelta(minutes=3)


def test_reconcile_reports_drift_and_trues_up_fallback_once(tracker_for, sim):
    exact_minute, fallback_minute = _times()
    day = exact_minute.date()
    tracker = tracker_for(sim, breaker_failures=100)
    # An exact operation whose usage OpenAI reports identically: no drift on its line.
    sim.inject_usage(
        model="gpt-4o-2024-08-06",
        time=int(exact_minute.timestamp()) + 5,
        input_text_tokens=1500,
        output_text_tokens=500,
    )
    exact = tracker.stub.Track(
        track_request(
            "exact",
            usage={"input_tokens": 1500, "output_tokens": 500},
            started=exact_minute,
            completed=exact_minute + dt.timedelta(seconds=20),
        )
    ).record
    # An operation tracked while the usage API is down: provisional fallback at $0.50.
    sim.set_fault("usage", "error")
    provisional = tracker.stub.Track(
        track_request(
            "provisional", started=fallback_minute, completed=fallback_minute + dt.timedelta(seconds=40)
        )
    ).record
    sim.clear_faults()
    assert provisional.source == pb.SOURCE_FALLBACK and provisional.base_cost == "0.5"
    # Its usage settles later; and usage nobody tracked (drift) appears on gpt-4o-mini.
    sim.inject_usage(
        model="gpt-4o-2024-08-06",
        time=int(fallback_minute.timestamp()) + 10,
        input_text_tokens=2000,
        output_text_tokens=100,
    )
    sim.inject_usage(
        model="gpt-4o-mini-2024-07-18", time=int(exact_minute.timestamp()) + 1, input_text_tokens=1000
    )
    rows_before = tracker.count()

    dry = tracker.stub.Reconcile(pb.ReconcileRequest(date=day.isoformat(), dry_run=True)).report
    assert (
        len(dry.adjustments) == 1
        and tracker.count() == rows_before
        and tracker.rows("reconciliation_reports") == []
    )

    report = tracker.stub.Reconcile(pb.ReconcileRequest(date=day.isoformat())).report
    [adjustment] = report.adjustments
    # Priced from usage: 2000 x 2.50 + 100 x 10 = 0.006; minus the fallback 0.5; margin 25% on the delta.
    assert (adjustment.base_cost, adjustment.cost, adjustment.margin) == ("-0.494", "-0.6175", "0.25")
    assert adjustment.source == pb.SOURCE_RECONCILIATION
    assert adjustment.adjusts_record_id == provisional.record_id
    assert adjustment.operation_id == f"adj:{day.isoformat()}:{provisional.record_id}"
    assert adjustment.completed_time == provisional.completed_time
    assert (adjustment.usage.input_tokens, adjustment.usage.output_tokens, adjustment.quantity) == (
        2000,
        100,
        "0",
    )
    assert report.unsettled_records == 0

    lines = {(line.openai_project_id, line.model): line for line in report.lines}
    gpt4o = lines[("proj_default", "gpt-4o")]
    assert (gpt4o.ledger_tokens, gpt4o.reported_tokens, gpt4o.token_drift) == (4100, 4100, 0)
    assert (gpt4o.ledger_base_cost, gpt4o.reported_cost, gpt4o.cost_drift) == ("0.01475", "0.01475", "0")
    mini = lines[("proj_default", "gpt-4o-mini")]
    assert (mini.ledger_tokens, mini.reported_tokens, mini.token_drift) == (0, 1000, 1000)
    assert (mini.reported_cost, mini.cost_drift) == ("0.00015", "0.00015")
    assert Decimal(report.reported_cost) == Decimal("0.0149") and exact.base_cost == "0.00875"

    rows_after, reports_after = tracker.count(), len(tracker.rows("reconciliation_reports"))
    assert rows_after == rows_before + 1 and reports_after == 1
    again = tracker.stub.Reconcile(pb.ReconcileRequest(date=day.isoformat())).report
    assert list(again.adjustments) == [] and list(again.lines) == list(report.lines)
    assert tracker.count() == rows_after and len(tracker.rows("reconciliation_reports")) == reports_after

    listed = tracker.stub.ListReconciliationReports(pb.ListReconciliationReportsRequest(page_size=1))
    assert [r.date for r in listed.reports] == [day.isoformat()] and listed.next_page_token == ""
    assert [a.record_id for a in listed.reports[0].adjustments] == [adjustment.record_id]

    rollups = [r for r in tracker.rows("usage_rollups") if r["source"] == "reconciliation"]
    assert len(rollups) == 1 and rollups[0]["adjustments"] == 1 and rollups[0]["operations"] == 0


def test_reconcile_shares_a_window_among_its_fallback_records_exactly(tracker_for, sim):
    """Three CV parses of the same minute fall back while the usage API fails; once the API reports their
    tokens (not divisible by three), reconciliation trues up each record to its share, and the three are
    billed together exactly the priced reported tokens: 1/3, then 1/2 of the rest, then the rest."""
    _, minute = _times()
    day = minute.date()
    tracker = tracker_for(sim, breaker_failures=100)
    sim.set_fault("usage", "error")
    records = [
        tracker.stub.Track(
            track_request(
                f"shared-{n}",
                started=minute + dt.timedelta(seconds=5),
                completed=minute + dt.timedelta(seconds=50),
            )
        ).record
        for n in range(3)
    ]
    sim.clear_faults()
    assert [(r.source, r.base_cost) for r in records] == [(pb.SOURCE_FALLBACK, "0.5")] * 3
    sim.inject_usage(
        model="gpt-4o-2024-08-06",
        time=int(minute.timestamp()) + 20,
        input_text_tokens=2001,
        output_text_tokens=101,
    )
    # gpt-4o: 2001 x 2.50 + 101 x 10.00 per million = 0.0060125; 25% margin on top.
    priced = Decimal("0.0060125")

    dry = tracker.stub.Reconcile(pb.ReconcileRequest(date=day.isoformat(), dry_run=True)).report
    report = tracker.stub.Reconcile(pb.ReconcileRequest(date=day.isoformat())).report
    adjustments = list(report.adjustments)
    assert sorted(a.adjusts_record_id for a in adjustments) == sorted(r.record_id for r in records)
    assert [(a.usage.input_tokens, a.usage.output_tokens) for a in adjustments] == [
        (667, 33),
        (667, 34),
        (667, 34),
    ]
    assert [(a.base_cost, a.usage.input_tokens) for a in dry.adjustments] == [
        (a.base_cost, a.usage.input_tokens) for a in adjustments
    ]
    base = sum(Decimal(r.base_cost) for r in records) + sum(Decimal(a.base_cost) for a in adjustments)
    billed = sum(Decimal(r.cost) for r in records) + sum(Decimal(a.cost) for a in adjustments)
    assert (base, billed) == (priced, priced * Decimal("1.25"))
    assert report.unsettled_records == 0
    gpt4o = {(line.openai_project_id, line.model): line for line in report.lines}[("proj_default", "gpt-4o")]
    assert (gpt4o.ledger_tokens, gpt4o.reported_tokens, gpt4o.ledger_base_cost) == (2102, 2102, "0.0060125")

    rows = tracker.count()
    again = tracker.stub.Reconcile(pb.ReconcileRequest(date=day.isoformat())).report
    assert list(again.adjustments) == [] and tracker.count() == rows


def test_reconcile_refuses_a_future_day(tracker_for, sim):
    tracker = tracker_for(sim)
    tomorrow = (dt.datetime.now(UTC) + dt.timedelta(days=1)).date().isoformat()
    with pytest.raises(grpc.RpcError) as error:
        tracker.stub.Reconcile(pb.ReconcileRequest(date=tomorrow))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "date" in error.value.details()


def _cli(database_url: str, sim, *args: str) -> dict | list:
    env = {
        **os.environ,
        "USAGE_DATABASE_URL": database_url,
        "OPENAI_BASE_URL": sim.base_url,
        "OPENAI_ADMIN_KEY": sim.admin_key,
        "OPENAI_DEFAULT_PROJECT_ID": "proj_default",
        "RECONCILE_SETTLE_SECONDS": "0",
    }
    env.pop("HIREMETER_SERVICE_TOKEN", None)  # jobs do not serve, so they must not need it
    done = subprocess.run(
        [sys.executable, "-m", "services.usage_tracker", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads("[" + done.stdout.replace("}\n{", "},\n{") + "]")


def test_cli_prices_margins_and_reconcile(usage_database_url, sim, tmp_path):
    [*versions] = _cli(usage_database_url, sim, "prices", "list")
    assert [v["version"] for v in versions] == ["2024-12-17"]
    assert {m["model"] for m in versions[0]["models"]} >= {"gpt-4o", "gpt-4o-mini", "gpt-realtime"}
    book = tmp_path / "prices.json"
    book.write_text(
        json.dumps(
            {
                "version": "2027-01",
                "effective_time": "2027-01-01T00:00:00Z",
                "models": [
                    {"model": "gpt-4o", "text_input": "2", "cached_text_input": "1", "text_output": "8"}
                ],
                "fallback_prices": {
                    "cv_parsing": "0.4",
                    "question_generation": "0.01",
                    "video_interview": "0.25",
                },
            }
        )
    )
    [added] = _cli(usage_database_url, sim, "prices", "add", "--file", str(book))
    assert added["version"] == "2027-01"
    [margin] = _cli(
        usage_database_url,
        sim,
        "margin",
        "set",
        "--company-id",
        "acme",
        "--margin",
        "0.3",
        "--effective",
        "2026-01-01T00:00:00Z",
    )
    assert margin["margin"] == "0.3"
    [got] = _cli(usage_database_url, sim, "margin", "get", "--company-id", "acme")
    assert got["margin"] == "0.3"
    [report] = _cli(usage_database_url, sim, "reconcile", "--date", dt.datetime.now(UTC).date().isoformat())
    assert report["date"] == dt.datetime.now(UTC).date().isoformat()
