"""Operation to billing: recruiting, the usage tracker, billing and the OpenAI simulator as subprocesses on
PostgreSQL. One caller parses text CVs through Recruiting.ParseResume, one after another; from the moment
each ParseResume returns (the operation is complete and committed with its outbox row) the caller polls
Billing.GetUsageSummary every 2 ms until the company's cv_parsing operations count includes it. The figure
is that delay: the relay's hand-off, Track's durable write, billing's read of the rollups.

Baseline: the poll itself (one GetUsageSummary call), measured in the same run.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
import uuid
from pathlib import Path

import grpc
from hiremeter.billing.v1 import billing_pb2, billing_pb2_grpc
from hiremeter.recruiting.v1 import recruiting_pb2, recruiting_pb2_grpc

from bench.economy import SIM_ADMIN_KEY, SIM_API_KEY, simulator_argv
from bench.load import percentile
from bench.processes import TOKEN, drop_schema, free_port, fresh_schema, http_service, service

METADATA = (("authorization", f"Bearer {TOKEN}"),)
CV = (
    "Jane Doe\njane@example.com\nSenior Python engineer, 8 years.\n"
    "Experience: Acme Corp, Backend engineer, 2019-2024: payments, PostgreSQL, gRPC.\n"
    "Education: MSc Computer Science, 2016.\nSkills: Python, SQL, Kubernetes.\n"
)


def run(operations: int, log_dir: Path) -> dict:
    suffix = uuid.uuid4().hex[:8]
    usage_schema, recruiting_schema = f"bench_e2e_usage_{suffix}", f"bench_e2e_recruiting_{suffix}"
    usage_url = fresh_schema(usage_schema)
    recruiting_url = fresh_schema(recruiting_schema, recruiting=True)
    ports = {name: free_port() for name in ("sim", "tracker", "billing", "recruiting")}
    origin = f"http://127.0.0.1:{ports['sim']}"
    env = {
        "USAGE_DATABASE_URL": usage_url,
        "BILLING_DATABASE_URL": usage_url,
        "RECRUITING_DATABASE_URL": recruiting_url,
        "USAGE_TRACKER_PORT": str(ports["tracker"]),
        "BILLING_PORT": str(ports["billing"]),
        "RECRUITING_PORT": str(ports["recruiting"]),
        "USAGE_TRACKER_METRICS_PORT": "0",
        "BILLING_METRICS_PORT": "0",
        "RECRUITING_METRICS_PORT": "0",
        "USAGE_TRACKER_TARGET": f"127.0.0.1:{ports['tracker']}",
        "OPENAI_BASE_URL": origin + "/v1",
        "OPENAI_API_KEY": SIM_API_KEY,
        "OPENAI_ADMIN_KEY": SIM_ADMIN_KEY,
        "HIREMETER_OPENAI_SIMULATED": "true",
    }
    company = f"company-e2e-{suffix}"
    today = dt.datetime.now(dt.UTC).date().isoformat()
    summary_request = billing_pb2.GetUsageSummaryRequest(
        company_id=company, period=billing_pb2.Period(start_date=today, end_date=today)
    )
    delays: list[float] = []
    polls: list[float] = []
    peaks: dict[str, float] = {}
    try:
        with (
            http_service("openai_sim", simulator_argv(ports["sim"]), origin + "/_sim/health", log_dir) as sim,
            service(
                "usage_tracker", ["-m", "services.usage_tracker"], env, ports["tracker"], log_dir
            ) as tracker,
            service("billing", ["-m", "services.billing"], env, ports["billing"], log_dir) as billing,
            service(
                "recruiting", ["-m", "services.recruiting"], env, ports["recruiting"], log_dir
            ) as recruiting,
            grpc.insecure_channel(recruiting.target) as recruiting_channel,
            grpc.insecure_channel(billing.target) as billing_channel,
        ):
            parse = recruiting_pb2_grpc.RecruitingStub(recruiting_channel).ParseResume
            summary = billing_pb2_grpc.BillingStub(billing_channel).GetUsageSummary

            def operations_billed() -> int:
                answer = summary(summary_request, metadata=METADATA, timeout=10)
                return sum(c.operations for c in answer.categories)

            for index in range(operations + 3):  # the first three warm every path up
                request = recruiting_pb2.ParseResumeRequest(
                    company_id=company, job_id="job-e2e", file_name="cv.txt", content=CV.encode()
                )
                parse(request, metadata=METADATA, timeout=30)
                done = time.perf_counter()
                while True:
                    began = time.perf_counter()
                    billed = operations_billed()
                    polls.append(time.perf_counter() - began)
                    if billed >= index + 1:
                        break
                    if time.perf_counter() - done > 30:
                        raise TimeoutError(f"operation {index} not billed after 30 s")
                    time.sleep(0.002)
                if index >= 3:
                    delays.append(time.perf_counter() - done)
            for name, process in (
                ("openai_sim", sim),
                ("usage_tracker", tracker),
                ("billing", billing),
                ("recruiting", recruiting),
            ):
                peaks[name] = process.peak_rss_mib()
    finally:
        drop_schema(usage_schema)
        drop_schema(recruiting_schema)
    return {
        "operations": operations,
        "p50_ms": round(statistics.median(delays) * 1000, 1),
        "p99_ms": round(percentile(delays, 0.99) * 1000, 1),
        "max_ms": round(max(delays) * 1000, 1),
        "poll_p50_ms": round(statistics.median(polls) * 1000, 2),
        "peak_rss_mib": peaks,
    }
