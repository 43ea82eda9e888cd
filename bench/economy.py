"""Usage-API economy: operations without usage (which the tracker must price from OpenAI's usage API)
arriving at an even pace for a minute, against the local OpenAI simulator; the figure is how many usage-API
calls the tracker made (the simulator's own request counter, /_sim/stats). The simulator reports every
operation's tokens in its minute, so the operations are priced from the API, not fallen back.

Baseline: the seed's design makes one usage-API call per operation (1,000).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from hiremeter.usage.v1 import usage_tracker_pb2 as pb

from bench.processes import TOKEN, drop_schema, free_port, fresh_schema, http_service, service

SIM_API_KEY = "sk-sim-bench-0123456789abcdef"
SIM_ADMIN_KEY = "sk-admin-sim-bench-0123456789abcdef"
METADATA = (("authorization", f"Bearer {TOKEN}"),)


def _sim(origin: str, method: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        origin + path, data=data, method=method, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback simulator
        return json.loads(answer.read())


def simulator_argv(port: int) -> list[str]:
    return ["-m", "tools.openai_sim", "--port", str(port), "--log-level", "warning"]


def _request(operation_id: str, completed: float) -> pb.TrackRequest:
    started, done = Timestamp(), Timestamp()
    started.FromNanoseconds(int((completed - 1) * 1e9))
    done.FromNanoseconds(int(completed * 1e9))
    return pb.TrackRequest(
        operation_id=operation_id,
        category=pb.CATEGORY_CV_PARSING,
        company_id="company-economy",
        model="gpt-4o-2024-08-06",
        started_time=started,
        completed_time=done,
        quantity="1",
    )


async def _paced(target: str, operations: int, seconds: float, sim_origin: str) -> tuple[Counter, list]:
    sources: Counter = Counter()
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(target) as channel:
        track = channel.unary_unary(
            "/hiremeter.usage.v1.UsageTracker/Track",
            request_serializer=pb.TrackRequest.SerializeToString,
            response_deserializer=pb.TrackResponse.FromString,
        )
        run = uuid.uuid4().hex[:8]
        began = time.time()

        async def one(index: int) -> None:
            await asyncio.sleep(max(0.0, began + index * seconds / operations - time.time()))
            completed = time.time()
            # What OpenAI would report for this operation, in its minute.
            await asyncio.to_thread(
                _sim,
                sim_origin,
                "POST",
                "/_sim/usage",
                {
                    "model": "gpt-4o-2024-08-06",
                    "time": int(completed),
                    "input_text_tokens": 1500,
                    "output_text_tokens": 500,
                },
            )
            start = time.perf_counter()
            answer = await track(_request(f"{run}-{index}", completed), metadata=METADATA, timeout=120)
            latencies.append(time.perf_counter() - start)
            sources[pb.Source.Name(answer.record.source)] += 1

        await asyncio.gather(*(one(index) for index in range(operations)))
    return sources, latencies


def run(operations: int, seconds: float, log_dir: Path) -> dict:
    schema = f"bench_economy_{uuid.uuid4().hex[:8]}"
    url = fresh_schema(schema)
    sim_port, port = free_port(), free_port()
    origin = f"http://127.0.0.1:{sim_port}"
    env = {
        "USAGE_DATABASE_URL": url,
        "USAGE_TRACKER_PORT": str(port),
        "USAGE_TRACKER_METRICS_PORT": "0",
        "OPENAI_BASE_URL": origin + "/v1",
        "OPENAI_ADMIN_KEY": SIM_ADMIN_KEY,
    }
    try:
        with (
            http_service("openai_sim", simulator_argv(sim_port), origin + "/_sim/health", log_dir),
            service("usage_tracker", ["-m", "services.usage_tracker"], env, port, log_dir) as tracker,
        ):
            before = _sim(origin, "GET", "/_sim/stats")["requests"]
            began = time.perf_counter()
            sources, latencies = asyncio.run(_paced(tracker.target, operations, seconds, origin))
            elapsed = time.perf_counter() - began
            after = _sim(origin, "GET", "/_sim/stats")["requests"]
            peak = tracker.peak_rss_mib()
    finally:
        drop_schema(schema)
    latencies.sort()
    return {
        "operations": operations,
        "seconds": round(elapsed, 1),
        "usage_api_calls": after.get("usage", 0) - before.get("usage", 0),
        "sources": dict(sources),
        "track_p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "track_max_ms": round(latencies[-1] * 1000, 1),
        "baseline_calls": operations,
        "tracker_peak_rss_mib": peak,
    }
