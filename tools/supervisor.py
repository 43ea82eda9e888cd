"""`make run`: the whole suite on one machine, without Docker.

Migrates the databases, starts the local OpenAI simulator when OPENAI_API_KEY is unset, then the four
processes, each with its output prefixed; waits until each is healthy, prints where everything listens and
the billing page's link, and on Ctrl-C / SIGTERM stops them all (SIGTERM, then SIGKILL after a grace).
Children die with the supervisor even if it is killed outright (tools.die_with_parent), so nothing is orphaned.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.tokens import demo_link
from services.common.config import VAR_DIR
from tools import die_with_parent

REPO = Path(__file__).resolve().parents[1]
COLORS = ("\033[36m", "\033[35m", "\033[33m", "\033[32m", "\033[34m")
RESET = "\033[0m"


@dataclass
class Child:
    name: str
    argv: list[str]
    ready: str  # "grpc:PORT" or "http:URL"
    process: subprocess.Popen | None = None


def _dev_secrets() -> dict[str, str]:
    """Secrets for local runs, generated once and kept under var/ so demo links survive restarts."""
    path = VAR_DIR / "dev-secrets.json"
    VAR_DIR.mkdir(exist_ok=True)
    if path.exists():
        return json.loads(path.read_text())
    values = {
        "HIREMETER_SERVICE_TOKEN": secrets.token_urlsafe(24),
        "GATEWAY_JWT_SECRET": secrets.token_urlsafe(32),
    }
    path.write_text(json.dumps(values))
    path.chmod(0o600)
    return values


def _environment() -> tuple[dict[str, str], bool]:
    env = dict(os.environ)
    for key, value in _dev_secrets().items():
        env.setdefault(key, value)
    simulated = not env.get("OPENAI_API_KEY")
    if simulated:
        port = env.setdefault("OPENAI_SIM_PORT", "8099")
        env.update(
            OPENAI_BASE_URL=f"http://127.0.0.1:{port}/v1",
            OPENAI_API_KEY="sk-sim-local",
            OPENAI_ADMIN_KEY="sk-admin-sim-local",
            HIREMETER_OPENAI_SIMULATED="true",
        )
    env["PYTHONUNBUFFERED"] = "1"
    return env, simulated


def _pump(child: Child, color: str) -> None:
    assert child.process and child.process.stdout
    prefix = f"{color}{child.name:<13}|{RESET} " if sys.stdout.isatty() else f"{child.name:<13}| "
    for line in child.process.stdout:
        sys.stdout.write(prefix + line)
        sys.stdout.flush()


def _healthy(ready: str) -> bool:
    kind, _, where = ready.partition(":")
    try:
        if kind == "grpc":
            with grpc.insecure_channel(where) as channel:
                answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
                return answer.status == health_pb2.HealthCheckResponse.SERVING
        with urllib.request.urlopen(where, timeout=1) as response:
            return response.status == 200
    except Exception:  # noqa: BLE001 - not up yet
        return False


def _children(env: dict[str, str], simulated: bool) -> list[Child]:
    py = sys.executable
    children = []
    if simulated:
        port = env["OPENAI_SIM_PORT"]
        children.append(
            Child(
                "openai-sim",
                [py, "-m", "tools.openai_sim", "--port", port],
                f"http:http://127.0.0.1:{port}/_sim/stats",
            )
        )
    ports = {
        "usage_tracker": env.get("USAGE_TRACKER_PORT", "50052"),
        "billing": env.get("BILLING_PORT", "50053"),
        "recruiting": env.get("RECRUITING_PORT", "50051"),
    }
    env.setdefault("USAGE_TRACKER_TARGET", f"127.0.0.1:{ports['usage_tracker']}")
    env.setdefault("BILLING_TARGET", f"127.0.0.1:{ports['billing']}")
    env.setdefault("RECRUITING_TARGET", f"127.0.0.1:{ports['recruiting']}")
    for name, port in ports.items():
        children.append(Child(name, [py, "-m", f"services.{name}"], f"grpc:127.0.0.1:{port}"))
    gateway_port = env.get("GATEWAY_PORT", "8080")
    children.append(Child("gateway", [py, "-m", "gateway"], f"http:http://127.0.0.1:{gateway_port}/healthz"))
    return children


def _stop(children: list[Child], grace: float = 8.0) -> None:
    running = [c for c in children if c.process and c.process.poll() is None]
    for child in running:
        child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in running:
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()


def main() -> int:
    env, simulated = _environment()
    if simulated and importlib.util.find_spec("tools.openai_sim") is None:
        print("OPENAI_API_KEY is unset and the local simulator is missing", file=sys.stderr)
        return 2
    migrate = subprocess.run([sys.executable, "-m", "services.common.migrate"], env=env, cwd=REPO)
    if migrate.returncode != 0:
        return migrate.returncode

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    children = _children(env, simulated)
    for index, child in enumerate(children):
        child.process = subprocess.Popen(
            die_with_parent.wrap(child.argv),
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=_pump, args=(child, COLORS[index % len(COLORS)]), daemon=True).start()

    deadline = time.monotonic() + 60
    pending = list(children)
    while pending and not stop.is_set() and time.monotonic() < deadline:
        pending = [c for c in pending if not _healthy(c.ready)]
        if any(c.process.poll() is not None for c in children):
            break
        time.sleep(0.2)
    if pending or stop.is_set():
        failed = ", ".join(c.name for c in pending) or "interrupted"
        print(f"supervisor: not healthy: {failed}; stopping", file=sys.stderr)
        _stop(children)
        return 1

    _print_banner(env, simulated)
    while not stop.is_set():
        if any(c.process.poll() is not None for c in children):
            dead = [c.name for c in children if c.process.poll() is not None]
            print(f"supervisor: {', '.join(dead)} exited; stopping the suite", file=sys.stderr)
            _stop(children)
            return 1
        stop.wait(0.5)
    print("supervisor: stopping", flush=True)
    _stop(children)
    print("supervisor: stopped", flush=True)
    return 0


def _print_banner(env: dict[str, str], simulated: bool) -> None:
    gateway = f"http://127.0.0.1:{env.get('GATEWAY_PORT', '8080')}"
    link = demo_link(gateway, env)
    rows = [
        ("gateway (HTTP)", f"{gateway}   (GET /healthz, /openapi.json)"),
        ("recruiting (gRPC)", env["RECRUITING_TARGET"]),
        ("usage tracker (gRPC)", env["USAGE_TRACKER_TARGET"]),
        ("billing (gRPC)", env["BILLING_TARGET"]),
        (
            "OpenAI",
            env.get("OPENAI_BASE_URL", "https://api.openai.com/v1")
            + ("   (the local simulator: OpenAI is simulated)" if simulated else ""),
        ),
    ]
    lines = [
        "",
        "HireMeter is running:",
        *(f"  {name:<22}{where}" for name, where in rows),
        "",
        f"  Billing page: {link}",
        "",
        "Ctrl-C stops everything.",
        "",
    ]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
