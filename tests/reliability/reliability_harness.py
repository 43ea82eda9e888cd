"""The reliability suite's machinery: the four HireMeter processes and the OpenAI simulator as real
subprocesses, and a throwaway PostgreSQL cluster, each killable and restartable by a test.

Every process runs in its own process group (start_new_session) and dies with the test process
(tools.die_with_parent); stop() and the fixtures' finalizers SIGKILL the whole group, so a failing test leaves
no orphan. Everything listens on 127.0.0.1 only, on ports picked here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hiremeter.billing.v1 import billing_pb2_grpc
from hiremeter.recruiting.v1 import recruiting_pb2_grpc
from hiremeter.usage.v1 import usage_tracker_pb2_grpc

from gateway import tokens
from services.common import db
from services.common.grpc_client import service_channel
from services.common.migrate import RECRUITING_MIGRATIONS, USAGE_MIGRATIONS
from tools import die_with_parent
from tools.openai_sim.testing import SimulatorHandle

REPO = Path(__file__).resolve().parents[2]
SERVICE_TOKEN = "reliability-service-token"
JWT_SECRET = "reliability-jwt-secret-0123456789abcdef"
START_TIMEOUT = 30.0

_handed_out: set[int] = set()
_ports_lock = threading.Lock()


def free_port() -> int:
    """A loopback port nobody listens on, never handed out twice in this test process."""
    with _ports_lock:
        for _ in range(100):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise RuntimeError("no free loopback port")


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def wait_until(check: Callable[[], bool], *, timeout: float, interval: float = 0.05, what: str = "") -> float:
    """Polls check() until it is true; returns the seconds it took, or raises TimeoutError."""
    start = time.monotonic()
    while True:
        if check():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"not within {timeout:.0f} s: {what}")
        time.sleep(interval)


def grpc_serving(target: str) -> bool:
    try:
        with grpc.insecure_channel(target) as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=0.5)
            return answer.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as response:
            return response.status == 200
    except OSError:
        return False


# -- the suite as processes ------------------------------------------------------------------------------


@dataclass
class Process:
    name: str
    argv: list[str]
    port: int
    ready: Callable[[], bool]
    log_path: Path
    process: subprocess.Popen | None = None
    starts: int = 0
    kills: int = 0
    started_at: float = 0.0

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Suite:
    """The simulator, usage tracker, billing, recruiting and gateway as subprocesses on fixed ports.

    start() brings everything up (migrating the databases first); kill(name) SIGKILLs one process group;
    start_one(name) restarts it on the same port and returns how long it took to be healthy again.
    """

    workdir: Path
    usage_database_url: str
    recruiting_database_url: str
    env_overrides: dict[str, str] = field(default_factory=dict)
    processes: dict[str, Process] = field(default_factory=dict)
    _channels: list[grpc.Channel] = field(default_factory=list)
    _spawner: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="suite-spawner")
    )

    ORDER = ("openai_sim", "usage_tracker", "billing", "recruiting", "gateway")

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ports = {name: free_port() for name in self.ORDER}
        py = sys.executable
        self.sim = SimulatorHandle(f"http://127.0.0.1:{self.ports['openai_sim']}")
        self.gateway_url = f"http://127.0.0.1:{self.ports['gateway']}"
        argv = {
            "openai_sim": [
                py,
                "-m",
                "tools.openai_sim",
                "--port",
                str(self.ports["openai_sim"]),
                "--log-level",
                "warning",
            ],
            "usage_tracker": [py, "-m", "services.usage_tracker"],
            "billing": [py, "-m", "services.billing"],
            "recruiting": [py, "-m", "services.recruiting"],
            "gateway": [py, "-m", "gateway"],
        }
        for name in self.ORDER:
            port = self.ports[name]
            if name == "openai_sim":
                ready = lambda port=port: http_ok(f"http://127.0.0.1:{port}/_sim/health")  # noqa: E731
            elif name == "gateway":
                ready = lambda: http_ok(f"{self.gateway_url}/healthz")  # noqa: E731
            else:
                ready = lambda port=port: grpc_serving(f"127.0.0.1:{port}")  # noqa: E731
            self.processes[name] = Process(name, argv[name], port, ready, self.workdir / f"{name}.log")

    # -- environment -------------------------------------------------------------------------------------
    def environment(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("OPENAI_", "HIREMETER_", "GATEWAY_", "RECRUITING_", "USAGE_", "BILLING_"))
        }
        sim_base = self.sim.base_url
        env.update(
            PYTHONUNBUFFERED="1",
            HIREMETER_SERVICE_TOKEN=SERVICE_TOKEN,
            GATEWAY_JWT_SECRET=JWT_SECRET,
            HIREMETER_VAR_DIR=str(self.workdir / "var"),
            HIREMETER_LOG_LEVEL="WARNING",
            HIREMETER_SHUTDOWN_GRACE_SECONDS="1",
            HIREMETER_OPENAI_SIMULATED="true",
            USAGE_DATABASE_URL=self.usage_database_url,
            BILLING_DATABASE_URL=self.usage_database_url,
            RECRUITING_DATABASE_URL=self.recruiting_database_url,
            USAGE_TRACKER_PORT=str(self.ports["usage_tracker"]),
            BILLING_PORT=str(self.ports["billing"]),
            RECRUITING_PORT=str(self.ports["recruiting"]),
            GATEWAY_PORT=str(self.ports["gateway"]),
            USAGE_TRACKER_METRICS_PORT="0",
            BILLING_METRICS_PORT="0",
            RECRUITING_METRICS_PORT="0",
            USAGE_TRACKER_TARGET=f"127.0.0.1:{self.ports['usage_tracker']}",
            BILLING_TARGET=f"127.0.0.1:{self.ports['billing']}",
            RECRUITING_TARGET=f"127.0.0.1:{self.ports['recruiting']}",
            OPENAI_BASE_URL=sim_base,
            OPENAI_API_KEY=SimulatorHandle.api_key,
            OPENAI_ADMIN_KEY=SimulatorHandle.admin_key,
            OPENAI_MAX_RETRIES="0",
            OPENAI_TIMEOUT_SECONDS="10",
            # Fast recovery: the relay retries a dead tracker every 50 ms .. 1 s.
            RECRUITING_OUTBOX_BACKOFF_BASE_SECONDS="0.05",
            RECRUITING_OUTBOX_BACKOFF_MAX_SECONDS="1",
            RECRUITING_TRACK_TIMEOUT_SECONDS="2",
            # A reservation whose process died is released (billed from the usage API) 5 s after the call
            # began, not after the production default (the longest call: 10 s x 1 attempt + 30 s).
            RECRUITING_ORPHAN_GRACE_SECONDS="5",
        )
        env.update(self.env_overrides)
        return env

    # -- lifecycle ---------------------------------------------------------------------------------------
    def migrate(self) -> None:
        db.upgrade(self.usage_database_url, USAGE_MIGRATIONS)
        db.upgrade(self.recruiting_database_url, RECRUITING_MIGRATIONS)

    def start(self, names: tuple[str, ...] | None = None) -> dict[str, float]:
        """Migrates, then starts the named processes (all by default) in dependency order, in parallel
        where possible; returns each one's seconds to healthy."""
        self.migrate()
        names = names or self.ORDER
        for name in names:
            self._spawn(self.processes[name])
        return {name: self._await_ready(self.processes[name]) for name in names}

    def _spawn(self, proc: Process) -> None:
        if proc.alive():
            raise RuntimeError(f"{proc.name} is already running")
        log = proc.log_path.open("ab")
        log.write(f"\n--- start {proc.starts + 1} at {time.time():.3f} ---\n".encode())
        log.flush()
        # PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, so every child is forked by
        # one long-lived spawner thread, never by a short-lived fault-injection thread.
        proc.process = self._spawner.submit(
            subprocess.Popen,
            die_with_parent.wrap(proc.argv, signal.SIGKILL),
            cwd=REPO,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ).result()
        log.close()
        proc.starts += 1
        proc.started_at = time.monotonic()

    def _await_ready(self, proc: Process) -> float:
        deadline = proc.started_at + START_TIMEOUT
        while not proc.ready():
            if proc.process.poll() is not None:
                raise RuntimeError(
                    f"{proc.name} exited with {proc.process.returncode}:\n{self.tail(proc.name)}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{proc.name} not healthy within {START_TIMEOUT} s:\n{self.tail(proc.name)}"
                )
            time.sleep(0.05)
        return time.monotonic() - proc.started_at

    def start_one(self, name: str) -> float:
        """(Re)starts one process on its port; seconds until it is healthy."""
        proc = self.processes[name]
        self._spawn(proc)
        return self._await_ready(proc)

    def kill(self, name: str) -> None:
        """SIGKILL, no grace: the process group dies mid-whatever it was doing."""
        proc = self.processes[name]
        assert proc.alive(), f"{name} is not running"
        _kill_group(proc.process)
        proc.kills += 1

    def stop(self) -> None:
        for channel in self._channels:
            channel.close()
        self._channels.clear()
        for name in reversed(self.ORDER):
            proc = self.processes[name]
            if proc.process is not None:
                _kill_group(proc.process)
        self._spawner.shutdown(wait=False)

    def dead(self) -> list[str]:
        """The processes that were started and are no longer running."""
        return [
            name for name, proc in self.processes.items() if proc.process is not None and not proc.alive()
        ]

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.processes[name].log_path
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    # -- clients -----------------------------------------------------------------------------------------
    def target(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    def channel(self, name: str, token: str | None = SERVICE_TOKEN) -> grpc.Channel:
        if token is None:
            channel = grpc.insecure_channel(self.target(name))
        else:
            channel = service_channel(self.target(name), token)
        self._channels.append(channel)
        return channel

    def recruiting(self) -> recruiting_pb2_grpc.RecruitingStub:
        return recruiting_pb2_grpc.RecruitingStub(self.channel("recruiting"))

    def tracker(self) -> usage_tracker_pb2_grpc.UsageTrackerStub:
        return usage_tracker_pb2_grpc.UsageTrackerStub(self.channel("usage_tracker"))

    def billing(self) -> billing_pb2_grpc.BillingStub:
        return billing_pb2_grpc.BillingStub(self.channel("billing"))

    @staticmethod
    def token(company_id: str, **kwargs) -> str:
        return tokens.issue(JWT_SECRET, company_id, **kwargs)


# -- a throwaway PostgreSQL cluster ----------------------------------------------------------------------


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian layout), or None."""
    root = Path("/usr/lib/postgresql")
    versions = sorted(
        (p for p in root.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return versions[-1] if versions else None


class PostgresCluster:
    """initdb into a private temporary directory, served on a free loopback port with trust auth.

    PostgreSQL refuses to run as root, so when the tests run as root (CI) every server command runs as the
    `postgres` OS user via runuser, in a directory chown'ed to it (pytest's tmp_path is root-only 0700, so
    the cluster lives in its own mkdtemp directory instead). fsync is off: the tests crash the server
    with `pg_ctl stop -m immediate`, which still exercises WAL crash recovery; only a power loss would
    need fsync.
    """

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="hiremeter-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, user="postgres", group="postgres")
        self.stops = 0

    def _run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
        command = [str(self.bin / argv[0]), *argv[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")

    def start(self) -> float:
        """Starts the server and waits for it to accept connections; the seconds it took."""
        began = time.monotonic()
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c max_connections=200"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30", "-o", options, "start"
        )
        return time.monotonic() - began

    def stop(self, mode: str = "immediate") -> None:
        """`immediate` is a crash: no checkpoint, every connection cut, WAL recovery on the next start."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")
        self.stops += 1

    def running(self) -> bool:
        result = subprocess.run(
            [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"], check=False
        )
        return result.returncode == 0

    def create_database(self, name: str) -> str:
        self._run(
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-qc",
            f"CREATE DATABASE {name}",
        )
        return self.url(name)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            if (self.data / "postmaster.pid").exists():
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
