"""`make bench` (`python -m bench`): HireMeter's benchmarks against PostgreSQL, each next to a baseline
measured in the same run. Prints a table and writes the figures as JSON under bench/results/.

Quick mode (the default) finishes in a few minutes; `--full` uses the issue's larger sizes (10M ledger rows).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from bench import e2e, economy, ingest, summary

RESULTS = Path(__file__).resolve().parent / "results"
SCENARIOS = ("track", "batch", "summary", "economy", "e2e")


def _machine() -> dict:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--full", action="store_true", help="the issue's sizes: 1M and 10M ledger rows, longer runs"
    )
    parser.add_argument("--only", choices=SCENARIOS, action="append", help="run only these scenarios")
    parser.add_argument("--seconds", type=float, help="seconds per throughput measurement")
    parser.add_argument("--rows", type=int, action="append", help="ledger sizes for the summary benchmark")
    parser.add_argument("--reload", action="store_true", help="rebuild the bulk-loaded ledgers")
    args = parser.parse_args()
    chosen = args.only or list(SCENARIOS)
    seconds = args.seconds or (10.0 if args.full else 4.0)
    rows = args.rows or ([1_000_000, 10_000_000] if args.full else [1_000_000])
    log_dir = RESULTS / "logs"
    report: dict = {
        "machine": _machine(),
        "mode": "full" if args.full else "quick",
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }

    if "track" in chosen:
        report["track"] = ingest.run_track([1, 16, 64], seconds, log_dir)
    if "batch" in chosen:
        report["batch"] = [
            ingest.run_batch(batch_size=1000, concurrency=4, seconds=seconds, log_dir=log_dir),
            ingest.run_batch(batch_size=10_000, concurrency=2, seconds=seconds + 2, log_dir=log_dir),
        ]
    if "summary" in chosen:
        report["summary"] = [summary.run(n, calls=500, reload=args.reload, log_dir=log_dir) for n in rows]
    if "economy" in chosen:
        report["economy"] = economy.run(operations=1000, seconds=60.0, log_dir=log_dir)
    if "e2e" in chosen:
        report["e2e"] = e2e.run(operations=100, log_dir=log_dir)

    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"bench-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.json"
    path.write_text(json.dumps(report, indent=2))
    print(render(report))
    print(f"\nwritten: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return 0


def render(report: dict) -> str:
    machine = report["machine"]
    lines = [
        f"HireMeter benchmarks ({report['mode']}, {report['started']}) on {machine['cpu']}, "
        f"{machine['cores']} cores, {machine['memory_gib']} GiB, Python {machine['python']}",
        "",
        "| measure | HireMeter | baseline (same run) | ratio | target |",
        "|---|---|---|---|---|",
    ]
    for level in report.get("track", {}).get("levels", []):
        track, echo = level["track"], level["echo"]
        lines.append(
            f"| Track, {level['concurrency']} callers: calls/s (p50 / p99 ms) | {track['throughput']:.0f} "
            f"({track['p50_ms']:.2f} / {track['p99_ms']:.2f}) | echo {echo['throughput']:.0f} "
            f"({echo['p50_ms']:.2f} / {echo['p99_ms']:.2f}) | {level['ratio']:.2f} | ≥ 0.8 |"
        )
    for batch in report.get("batch", []):
        lines.append(
            f"| TrackBatch, {batch['batch_size']:,} per call, {batch['concurrency']} callers: durable events/s "
            f"| {batch['events_per_second']:,.0f} | peer: 10,000 | {batch['events_per_second'] / 10000:.2f} "
            "| ≥ 20,000 |"
        )
    for entry in report.get("summary", []):
        lines.append(
            f"| GetUsageSummary, {entry['rows']:,} rows: p50 / p99 ms | {entry['summary']['p50_ms']:.2f} / "
            f"{entry['summary']['p99_ms']:.2f} | plain GROUP BY {entry['plain_group_by']['p50_ms']:.2f} / "
            f"{entry['plain_group_by']['p99_ms']:.2f} | {entry['speedup_p99']:.2f}x | p99 ≤ 10 ms, ≥ 100x |"
        )
        if "plain_group_by_full_scan" in entry:
            scan = entry["plain_group_by_full_scan"]
            lines.append(
                f"| (same summary) vs the plain GROUP BY as a full ledger scan, {entry['rows']:,} rows | "
                f"{entry['summary']['p99_ms']:.2f} | scan {scan['p50_ms']:.0f} / {scan['p99_ms']:.0f} | "
                f"{entry['speedup_p99_vs_full_scan']:.0f}x | ≥ 100x |"
            )
    if "economy" in report:
        economy = report["economy"]
        lines.append(
            f"| Usage API calls for {economy['operations']:,} operations without usage in "
            f"{economy['seconds']:.0f} s | {economy['usage_api_calls']} | seed design: {economy['baseline_calls']:,} "
            f"| {economy['usage_api_calls'] / economy['baseline_calls']:.3f} | ≤ 5 |"
        )
    if "e2e" in report:
        e2e = report["e2e"]
        lines.append(
            f"| Operation to billing, {e2e['operations']} ParseResume: p50 / p99 ms | {e2e['p50_ms']:.1f} / "
            f"{e2e['p99_ms']:.1f} | one summary poll p50 {e2e['poll_p50_ms']:.2f} | | p99 < 1,000 ms |"
        )
    memory = []
    if "track" in report:
        memory.append(f"usage_tracker {report['track']['tracker_peak_rss_mib']} MiB (Track load)")
    for batch in report.get("batch", []):
        memory.append(
            f"usage_tracker {batch['tracker_peak_rss_mib']} MiB (TrackBatch of {batch['batch_size']:,})"
        )
    for entry in report.get("summary", []):
        memory.append(f"billing {entry['billing_peak_rss_mib']} MiB ({entry['rows']:,} rows)")
    if "economy" in report:
        memory.append(f"usage_tracker {report['economy']['tracker_peak_rss_mib']} MiB (usage-API economy)")
    if "e2e" in report:
        memory += [
            f"{name} {mib} MiB (operation to billing)" for name, mib in report["e2e"]["peak_rss_mib"].items()
        ]
    if memory:
        lines += ["", "Peak RSS (VmHWM): " + "; ".join(memory)]
    cpu = [
        f"{level['concurrency']} callers: Track {level['tracker_cpu_ms_per_call']:.2f} ms, "
        f"echo {level['echo_cpu_ms_per_call']:.2f} ms"
        for level in report.get("track", {}).get("levels", [])
        if "echo_cpu_ms_per_call" in level
    ]
    if cpu:
        lines += ["", "Server CPU per call: " + "; ".join(cpu)]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
