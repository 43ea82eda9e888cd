"""Track throughput and latency next to a bare gRPC echo server (same client, same payloads, same run), and
bulk ingest through TrackBatch. Every Track is acknowledged only once durable in PostgreSQL."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp
from hiremeter.usage.v1 import usage_tracker_pb2 as pb

from bench.load import closed_loop
from bench.processes import TOKEN, drop_schema, free_port, fresh_schema, service

METADATA = (("authorization", f"Bearer {TOKEN}"),)
TRACK = "/hiremeter.usage.v1.UsageTracker/Track"
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
                baseline = closed_loop(
                    echo.target,
                    "/bench.Echo/Echo",
                    lambda i: sample,
                    concurrency=concurrency,
                    seconds=seconds,
                )
                prefix = f"{run}-c{concurrency}-"
                measured = closed_loop(
                    tracker.target,
                    TRACK,
                    lambda i, prefix=prefix: track_request(f"{prefix}{i}", i % 100).SerializeToString(),
                    concurrency=concurrency,
                    seconds=seconds,
                    metadata=METADATA,
                )
                results["levels"].append(
                    {
                        "concurrency": concurrency,
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
    run = uuid.uuid4().hex[:8]
    schema = f"bench_batch_{run}"
    url = fresh_schema(schema)
    try:
        port = free_port()
        with service(
            "usage_tracker", ["-m", "services.usage_tracker"], _tracker_env(url, port), port, log_dir
        ) as tracker:

            def make(i: int) -> bytes:
                requests = [track_request(f"{run}-b{i}-{j}", j % 100) for j in range(batch_size)]
                return pb.TrackBatchRequest(requests=requests).SerializeToString()

            measured = closed_loop(
                tracker.target, TRACK_BATCH, make, concurrency=concurrency, seconds=seconds, metadata=METADATA
            )
            peak = tracker.peak_rss_mib()
    finally:
        drop_schema(schema)
    return {
        "batch_size": batch_size,
        "concurrency": concurrency,
        "batches": measured.as_dict(),
        "events_per_second": round(measured.throughput * batch_size, 1),
        "tracker_peak_rss_mib": peak,
    }
