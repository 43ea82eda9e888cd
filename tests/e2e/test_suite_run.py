"""`make run`'s supervisor, as a user runs it: every process comes up healthy, reflection lists the
hiremeter services, the gateway answers, the banner prints the billing page's link, and SIGTERM stops
everything within 10 s with no process left behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
PORT_VARIABLES = (
    "GATEWAY_PORT",
    "RECRUITING_PORT",
    "USAGE_TRACKER_PORT",
    "BILLING_PORT",
    "RECRUITING_METRICS_PORT",
    "USAGE_TRACKER_METRICS_PORT",
    "BILLING_METRICS_PORT",
    "OPENAI_SIM_PORT",
)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except FileNotFoundError:
            continue
        for child in map(int, children):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.fixture
def suite(tmp_path):
    ports = dict(zip(PORT_VARIABLES, map(str, _free_ports(len(PORT_VARIABLES))), strict=True))
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OPENAI_", "HIREMETER_", "GATEWAY_")) and not key.endswith("_DATABASE_URL")
    }
    env.update(ports, HIREMETER_VAR_DIR=str(tmp_path / "var"))
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.supervisor"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    banner = threading.Event()

    def read() -> None:
        for line in process.stdout:
            lines.append(line)
            if "Billing page:" in line:
                banner.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        if not banner.wait(120):
            pytest.fail("the suite did not come up within 120 s:\n" + "".join(lines[-60:]))
        yield process, ports, lines
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_make_run_brings_up_the_suite_and_stops_cleanly(suite):
    process, ports, lines = suite
    output = "".join(lines)
    link = next(line for line in lines if "Billing page:" in line).split("Billing page:")[1].strip()
    assert link.startswith(f"http://127.0.0.1:{ports['GATEWAY_PORT']}/dashboard/settings/billing?tab=usage")
    assert "OpenAI is simulated" in output

    expected = {
        ports["RECRUITING_PORT"]: "hiremeter.recruiting.v1.Recruiting",
        ports["USAGE_TRACKER_PORT"]: "hiremeter.usage.v1.UsageTracker",
        ports["BILLING_PORT"]: "hiremeter.billing.v1.Billing",
    }
    for port, service in expected.items():
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=5
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            replies = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
            )
            names = {entry.name for reply in replies for entry in reply.list_services_response.service}
            assert service in names
    with urllib.request.urlopen(f"http://127.0.0.1:{ports['GATEWAY_PORT']}/healthz", timeout=5) as response:
        assert response.status == 200
    with urllib.request.urlopen(
        f"http://127.0.0.1:{ports['OPENAI_SIM_PORT']}/_sim/stats", timeout=5
    ) as response:
        assert response.status == 200

    children = _descendants(process.pid)
    assert len(children) >= 5, children  # the simulator, three services and the gateway
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0
    assert time.monotonic() - started < 10
    deadline = time.monotonic() + 2
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in children if _alive(pid)], "orphan processes after SIGTERM"
