"""Track throughput and latency next to a bare gRPC echo server (same client, same payloads, same run), and
bulk ingest through TrackBatch. Every Track is acknowledged only once durable in PostgreSQL."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp
from hiremeter.usage.v1 import usage_tracker_pb2 as pb

from bench.load import closed_loop
from bench.processes import TOKEN, cpu_seconds, db_engine, drop_schema, free_port, fresh_schema, service

METADATA = (("authorization", f"Bearer {TOKEN}"),)
TRACK = "/hiremeter.usage.v1.UsageTracker/Track"
ECHO = "/bench.Echo/Echo"
TRACK_BATCH = "/hiremeter.usage.v1.UsageTracker/TrackBatch"


def track_request(operation_id: str, company: int) -> pb.TrackRequest:
    now = time.time()
    started, completed = Timestamp(), Timestamp()
    started.FromNanoseconds(int((now - 2) * 1e9))
    completed.FromNanoseconds(int(now * 1e9))
    return pb.TrackRequest(
        operation_id=operation_id,
        category=pb.CATEGORY_CV_PARSING,
        company_id=f"company-{company}",
        job_id="job-1",
        candidate_id=f"cand-{operation_id}",
        model="gpt-4o-2024-08-06",
        usage=pb.TokenUsage(input_tokens=1500, output_tokens=500, cached_input_tokens=256),
        started_time=started,
        completed_time=completed,
        quantity="1",
    )


def _tracker_env(url: str, port: int) -> dict[str, str]:
    return {"USAGE_DATABASE_URL": url, "USAGE_TRACKER_PORT": str(port), "USAGE_TRACKER_METRICS_PORT": "0"}


def run_track(concurrencies: list[int], seconds: float, log_dir: Path) -> dict:
    run = uuid.uuid4().hex[:8]
    schema = f"bench_track_{run}"
    url = fresh_schema(schema)
    sample = track_request("sample", 0).SerializeToString()
    results: dict = {"levels": []}
    try:
        echo_port, tracker_port = free_port(), free_port()
        echo_args = ["-m", "bench.echo_server", "--port", str(echo_port), "--response-bytes", "420"]
        with (
            service("echo", echo_args, {}, echo_port, log_dir) as echo,
            service(
                "usage_tracker",
                ["-m", "services.usage_tracker"],
                _tracker_env(url, tracker_port),
                tracker_port,
                log_dir,
            ) as tracker,
        ):
            for concurrency in concurrencies:
                closed_loop(echo.target, ECHO, lambda i: sample, concurrency=concurrency, seconds=0.5)
                echo_cpu = cpu_seconds(echo.process.pid)
                baseline = closed_loop(
                    echo.target,
                    ECHO,
                    lambda i: sample,
                    concurrency=concurrency,
                    seconds=seconds,
                    warmup_seconds=0.0,
                )
                echo_cpu = cpu_seconds(echo.process.pid) - echo_cpu
                prefix = f"{run}-c{concurrency}-"
                make = lambda i, prefix=prefix: track_request(f"{prefix}{i}", i % 100).SerializeToString()  # noqa: E731
                closed_loop(
                    tracker.target, TRACK, make, concurrency=concurrency, seconds=0.5, metadata=METADATA
                )
                cpu_before = cpu_seconds(tracker.process.pid)
                measured = closed_loop(
                    tracker.target,
                    TRACK,
                    lambda i, make=make: make(i + 10_000_000),  # not the warm-up's operation ids
                    concurrency=concurrency,
                    seconds=seconds,
                    metadata=METADATA,
                    warmup_seconds=0.0,
                )
                cpu = cpu_seconds(tracker.process.pid) - cpu_before
                results["levels"].append(
                    {
                        "concurrency": concurrency,
                        "tracker_cpu_ms_per_call": round(cpu / max(1, measured.calls) * 1000, 3),
                        "echo_cpu_ms_per_call": round(echo_cpu / max(1, baseline.calls) * 1000, 3),
                        "echo": baseline.as_dict(),
                        "track": measured.as_dict(),
                        "ratio": round(measured.throughput / baseline.throughput, 3),
                    }
                )
            results["tracker_peak_rss_mib"] = tracker.peak_rss_mib()
    finally:
        drop_schema(schema)
    return results


def run_batch(batch_size: int, concurrency: int, seconds: float, log_dir: Path) -> dict:
    """Closed-loop TrackBatch calls of `batch_size` fresh operations each; an event counts once its batch
    is acknowledged (committed). The batches are made by stamping a batch number into one serialized
    template (same length, so still a valid message), so the client's own cost stays small."""
    run = uuid.uuid4().hex[:8]
    schema = f"bench_batch_{run}"
    url = fresh_schema(schema)
    marker = b"B0000000"
    template = pb.TrackBatchRequest(
        requests=[track_request(f"{run}-{marker.decode()}-{j:05d}", j % 100) for j in range(batch_size)]
    ).SerializeToString()
    try:
        port = free_port()
        with service(
            "usage_tracker", ["-m", "services.usage_tracker"], _tracker_env(url, port), port, log_dir
        ) as tracker:
            cpu_before = cpu_seconds(tracker.process.pid)
            measured = closed_loop(
                tracker.target,
                TRACK_BATCH,
                lambda i: template.replace(marker, b"B%07d" % i),
                concurrency=concurrency,
                seconds=seconds,
                metadata=METADATA,
                warmup_seconds=0.0,
            )
            cpu = cpu_seconds(tracker.process.pid) - cpu_before
            peak = tracker.peak_rss_mib()
            with db_engine(url) as engine, engine.connect() as connection:
                stored = connection.exec_driver_sql("SELECT count(*) FROM usage_records").scalar_one()
    finally:
        drop_schema(schema)
    events = measured.calls * batch_size
    if stored < events:
        raise AssertionError(f"{events} events acknowledged but only {stored} stored")
    return {
        "batch_size": batch_size,
        "concurrency": concurrency,
        "batches": measured.as_dict(),
        "events_per_second": round(measured.throughput * batch_size, 1),
        "tracker_cpu_ms_per_1000_events": round(cpu / max(1, stored) * 1e6, 1),
        "tracker_peak_rss_mib": peak,
    }
