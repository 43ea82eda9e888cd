"""Processes and databases for benchmarks: a PostgreSQL schema of its own, services started as real
subprocesses on free loopback ports, and their peak memory (VmHWM) read from /proc."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common import db
from services.common.migrate import RECRUITING_MIGRATIONS, USAGE_MIGRATIONS

REPO = Path(__file__).resolve().parents[1]
TOKEN = "bench-service-token"


def postgres_base_url() -> str:
    return os.environ.get("BENCH_DATABASE_URL") or os.environ.get(
        "TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
    )


def schema_url(schema: str) -> str:
    base = postgres_base_url()
    return f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"


def fresh_schema(schema: str, *, recruiting: bool = False) -> str:
    """Drops and recreates a schema, migrated; returns its URL."""
    admin = db.make_engine(postgres_base_url(), pool_size=1)
    with admin.begin() as connection:
        connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    admin.dispose()
    url = schema_url(schema)
    db.upgrade(url, RECRUITING_MIGRATIONS if recruiting else USAGE_MIGRATIONS)
    return url


@contextlib.contextmanager
def db_engine(url: str) -> Iterator:
    engine = db.make_engine(url, pool_size=1)
    try:
        yield engine
    finally:
        engine.dispose()


def drop_schema(schema: str) -> None:
    admin = db.make_engine(postgres_base_url(), pool_size=1)
    with admin.begin() as connection:
        connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    admin.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Service:
    name: str
    process: subprocess.Popen
    port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
        return float("nan")


def wait_serving(target: str, deadline_seconds: float = 60) -> None:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        try:
            with grpc.insecure_channel(target) as channel:
                status = (
                    health_pb2_grpc.HealthStub(channel)
                    .Check(health_pb2.HealthCheckRequest(), timeout=1)
                    .status
                )
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return
        except grpc.RpcError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{target} did not become healthy")


@contextlib.contextmanager
def service(name: str, module: list[str], env: dict[str, str], port: int, log_dir: Path) -> Iterator[Service]:
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"{name}.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, *module],
            cwd=REPO,
            env={**os.environ, "HIREMETER_SERVICE_TOKEN": TOKEN, "HIREMETER_LOG_LEVEL": "WARNING", **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_serving(f"127.0.0.1:{port}")
            yield Service(name, process, port)
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def http_service(name: str, module: list[str], health_url: str, log_dir: Path) -> Iterator[Service]:
    """A non-gRPC subprocess (the OpenAI simulator), ready once `health_url` answers 200."""
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"{name}.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, *module], cwd=REPO, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(health_url, timeout=1) as answer:  # noqa: S310 - loopback
                        if answer.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    raise TimeoutError(f"{name} did not become healthy")
                time.sleep(0.1)
            yield Service(name, process, 0)
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
