"""A closed-loop load generator: C concurrent callers (asyncio tasks on one grpc.aio channel) issue unary
calls back to back for a fixed time; each call's latency is recorded. The same generator drives the
baseline and the system under test, so their ratio cancels the client's own cost."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc


@dataclass(frozen=True)
class LoadResult:
    concurrency: int
    calls: int
    errors: int
    seconds: float
    throughput: float  # successful calls per second
    p50_ms: float
    p99_ms: float

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _run(
    target: str,
    method: str,
    make_request: Callable[[int], bytes],
    concurrency: int,
    seconds: float,
    metadata: tuple,
    warmup_seconds: float,
) -> LoadResult:
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(method)
        counter = 0
        latencies: list[float] = []
        errors = 0
        measuring = False

        async def caller(deadline: float) -> None:
            nonlocal counter, errors
            while time.perf_counter() < deadline:
                counter += 1
                request = make_request(counter)
                start = time.perf_counter()
                try:
                    await call(request, metadata=metadata, timeout=30)
                except grpc.aio.AioRpcError:
                    errors += measuring
                    continue
                if measuring:
                    latencies.append(time.perf_counter() - start)

        warm_until = time.perf_counter() + warmup_seconds
        await asyncio.gather(*(caller(warm_until) for _ in range(concurrency)))
        measuring = True
        began = time.perf_counter()
        await asyncio.gather(*(caller(began + seconds) for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return LoadResult(
        concurrency=concurrency,
        calls=len(latencies),
        errors=errors,
        seconds=round(elapsed, 3),
        throughput=round(len(latencies) / elapsed, 1),
        p50_ms=round(statistics.median(latencies) * 1000, 3) if latencies else float("nan"),
        p99_ms=round(percentile(latencies, 0.99) * 1000, 3),
    )


def closed_loop(
    target: str,
    method: str,
    make_request: Callable[[int], bytes],
    *,
    concurrency: int,
    seconds: float,
    metadata: tuple = (),
    warmup_seconds: float = 0.5,
) -> LoadResult:
    return asyncio.run(_run(target, method, make_request, concurrency, seconds, metadata, warmup_seconds))
