"""Summary latency: GetUsageSummary for one company and one month over a bulk-loaded ledger (many companies,
three months), next to a plain GROUP BY over the ledger for the same company and month, in the same run.

The ledger and its rollups are generated inside PostgreSQL (generate_series), deterministic, and kept in a
schema named after the row count so later runs reuse them (--reload rebuilds).
"""

from __future__ import annotations

import statistics
import time
from decimal import Decimal
from pathlib import Path

import grpc
import sqlalchemy as sa
from hiremeter.billing.v1 import billing_pb2, billing_pb2_grpc

from bench.load import percentile
from bench.processes import TOKEN, free_port, fresh_schema, schema_url, service
from services.common import db

COMPANIES = 1000
COMPANY = "company-7"
PERIOD = ("2026-10-01", "2026-10-31")

_LOAD_RECORDS = """
INSERT INTO usage_records (record_id, operation_id, kind, category, company_id, job_id, candidate_id, model,
  priced_model, openai_project_id, input_tokens, output_tokens, quantity, unit, base_cost, margin, cost, source,
  price_version, payload_hash, started_at, completed_at, created_at)
SELECT 'rec_' || g, 'op_' || g, 'record',
  (ARRAY['cv_parsing','question_generation','video_interview'])[1 + g % 3],
  'company-' || (g % {companies}), 'job-' || (g % 5000), 'cand-' || g, 'gpt-4o-2024-08-06', 'gpt-4o', 'proj_default',
  1000 + g % 2000, 200 + g % 500,
  (ARRAY[1, 5, 4.5])[1 + g % 3]::numeric, (ARRAY['cv','question','minute'])[1 + g % 3],
  ((1000 + g % 2000) * 2.5 + (200 + g % 500) * 10) / 1000000.0,
  0.25,
  ((1000 + g % 2000) * 2.5 + (200 + g % 500) * 10) / 1000000.0 * 1.25,
  'response_usage', '2024-08-06', md5(g::text) || md5(g::text),
  t, t, t
FROM generate_series(:lo, :hi) AS g,
     LATERAL (SELECT timestamptz '2026-09-01 00:00:00+00' + ((g::bigint * 7919) % (91 * 86400)) * interval '1 second' AS t) AS ts
"""

_LOAD_ROLLUPS = """
INSERT INTO usage_rollups
SELECT company_id, date_trunc('hour', completed_at), category, source,
  count(*) FILTER (WHERE kind = 'record'), count(*) FILTER (WHERE kind = 'adjustment'),
  sum(quantity), sum(base_cost), sum(cost), sum(input_tokens), sum(output_tokens)
FROM usage_records GROUP BY 1, 2, 3, 4
"""

PLAIN_QUERY = sa.text(
    "SELECT category, count(*), sum(quantity), sum(base_cost), sum(cost) FROM usage_records "
    "WHERE company_id = :company AND completed_at >= :lo AND completed_at < :hi GROUP BY category"
)


# Its own text, so that psycopg's prepared plan of PLAIN_QUERY (cached with the index) is not reused.
SCAN_QUERY = sa.text("/* full scan */ " + PLAIN_QUERY.text)


def _loaded(url: str, rows: int) -> bool:
    engine = db.make_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text("SELECT count(*) FROM usage_records")).scalar_one() == rows
    except sa.exc.DBAPIError:
        return False
    finally:
        engine.dispose()


def load(rows: int, *, reload: bool) -> tuple[str, float | None]:
    """The URL of a schema holding `rows` ledger rows and their rollups; the load time when it loaded."""
    schema = f"bench_ledger_{rows}"
    url = schema_url(schema)
    if not reload and _loaded(url, rows):
        return url, None
    url = fresh_schema(schema)
    engine = db.make_engine(url, pool_size=1)
    began = time.perf_counter()
    step = 1_000_000
    with engine.connect() as connection:
        connection.exec_driver_sql("SET TIME ZONE 'UTC'")
        for lo in range(1, rows + 1, step):
            connection.execute(
                sa.text(_LOAD_RECORDS.format(companies=COMPANIES)), {"lo": lo, "hi": min(rows, lo + step - 1)}
            )
            connection.commit()
        connection.exec_driver_sql(_LOAD_ROLLUPS)
        connection.commit()
        connection.exec_driver_sql("ANALYZE")
        connection.commit()
    engine.dispose()
    return url, time.perf_counter() - began


def _stats(samples: list[float]) -> dict:
    return {
        "samples": len(samples),
        "p50_ms": round(statistics.median(samples) * 1000, 3),
        "p99_ms": round(percentile(samples, 0.99) * 1000, 3),
    }


def run(rows: int, *, calls: int, reload: bool, log_dir: Path) -> dict:
    url, load_seconds = load(rows, reload=reload)
    port = free_port()
    env = {"BILLING_DATABASE_URL": url, "BILLING_PORT": str(port), "BILLING_METRICS_PORT": "0"}
    request = billing_pb2.GetUsageSummaryRequest(
        company_id=COMPANY, period=billing_pb2.Period(start_date=PERIOD[0], end_date=PERIOD[1])
    )
    with service("billing", ["-m", "services.billing"], env, port, log_dir) as billing:
        with grpc.insecure_channel(billing.target) as channel:
            stub = billing_pb2_grpc.BillingStub(channel)
            metadata = (("authorization", f"Bearer {TOKEN}"),)
            for _ in range(20):
                stub.GetUsageSummary(request, metadata=metadata, timeout=30)
            summary_samples = []
            for _ in range(calls):
                began = time.perf_counter()
                answer = stub.GetUsageSummary(request, metadata=metadata, timeout=30)
                summary_samples.append(time.perf_counter() - began)
        peak = billing.peak_rss_mib()

    engine = db.make_engine(url, pool_size=1)
    bounds = {"company": COMPANY, "lo": "2026-10-01T00:00:00+00:00", "hi": "2026-11-01T00:00:00+00:00"}
    plain_samples = []
    with engine.connect() as connection:
        for _ in range(3):
            connection.execute(PLAIN_QUERY, bounds).all()
        for _ in range(max(10, calls // 10)):
            began = time.perf_counter()
            plain = connection.execute(PLAIN_QUERY, bounds).all()
            plain_samples.append(time.perf_counter() - began)
        # The same query as a scan of the whole ledger (what "a plain GROUP BY over the ledger" costs
        # without the (company_id, completed_at) index): a few samples, it is slow by design.
        connection.exec_driver_sql("SET enable_indexscan = off")
        connection.exec_driver_sql("SET enable_bitmapscan = off")
        scan_samples = []
        for _ in range(5):
            began = time.perf_counter()
            connection.execute(SCAN_QUERY, bounds).all()
            scan_samples.append(time.perf_counter() - began)
        connection.exec_driver_sql("RESET enable_indexscan")
        connection.exec_driver_sql("RESET enable_bitmapscan")
        plan = "\n".join(row[0] for row in connection.execute(sa.text("EXPLAIN " + PLAIN_QUERY.text), bounds))
    engine.dispose()

    plain_cost = sum((row[4] for row in plain), Decimal(0))
    if plain_cost != Decimal(answer.total_cost):
        raise AssertionError(
            f"the summary ({answer.total_cost}) disagrees with the plain query ({plain_cost})"
        )
    summary, baseline = _stats(summary_samples), _stats(plain_samples)
    return {
        "rows": rows,
        "load_seconds": None if load_seconds is None else round(load_seconds, 1),
        "company_month_operations": sum(row[1] for row in plain),
        "summary": summary,
        "plain_group_by": baseline,
        "speedup_p50": round(baseline["p50_ms"] / summary["p50_ms"], 2),
        "speedup_p99": round(baseline["p99_ms"] / summary["p99_ms"], 2),
        "plain_group_by_full_scan": _stats(scan_samples),
        "speedup_p99_vs_full_scan": round(_stats(scan_samples)["p99_ms"] / summary["p99_ms"], 1),
        "billing_peak_rss_mib": peak,
        "plain_plan": plan,
        "plain_uses_company_completed_index": "ix_usage_records_company_completed" in plan,
    }
