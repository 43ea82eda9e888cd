"""Reservations on SQLite and PostgreSQL, against the real usage tracker: an OpenAI call is metered even when
recruiting's database fails after OpenAI answered, or recruiting dies before it can store the answer; and a
database that is down BEFORE the call means OpenAI is never called.

How the failures are made real:
- the result's transaction fails on a lock the test holds (SQLite: BEGIN EXCLUSIVE from another connection;
  PostgreSQL: LOCK TABLE resumes), the repository only shortening its wait for that lock to ~0 (a subclass);
- recruiting dies: a `python -m services.recruiting` process is SIGKILLed after OpenAI answered, while its
  result's transaction waits on such a lock;
- the database is down: recruiting is pointed at one that cannot be reached (no such directory / closed port).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from hiremeter.recruiting.v1 import recruiting_pb2, recruiting_pb2_grpc

from services.common.db import make_engine
from services.common.errors import Unavailable
from services.common.grpc_client import service_channel
from services.recruiting.bootstrap import start as start_recruiting
from services.recruiting.clients.openai_client import OpenAIClient
from services.recruiting.clients.usage_tracker import UsageTrackerClient
from services.recruiting.outbox.relay import OutboxRelay, RelaySettings
from services.recruiting.service import RecruitingService
from services.recruiting.storage.repository import SqlRepository, _complete
from services.recruiting.storage.tables import outbox, resumes
from tests.conftest import SERVICE_TOKEN
from tests.support.recruiting import recruiting_settings

ROOT = Path(__file__).resolve().parents[3]
CV = b"Jane Doe\njane@example.com\nSenior Python engineer, 8 years.\nSkills: Python, PostgreSQL, gRPC\n"
FAST = RelaySettings(
    backoff_base_seconds=0.05, backoff_max_seconds=0.5, track_timeout_seconds=10, idle_poll_seconds=0.2
)


def wait_for(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def outbox_state(engine: sa.Engine) -> list[tuple[str, str, bool]]:
    """(operation_id, state, released as an orphan) of every row."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(outbox.c.operation_id, outbox.c.state, outbox.c.orphaned_at).order_by(outbox.c.id)
        ).all()
    return [(row.operation_id, row.state, row.orphaned_at is not None) for row in rows]


def chat_records(sim) -> list[dict]:
    return [r for r in sim.requests() if r.get("source", "chat") == "chat"]


class LockSensitiveRepository(SqlRepository):
    """The real repository, waiting ~0 for a lock in the result's transaction (a held lock fails it at once)."""

    def add_resume(self, resume, item):
        with self._engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            raw = connection.connection.driver_connection  # below SQLAlchemy's autobegin (BEGIN IMMEDIATE)
            if sqlite:
                raw.execute("PRAGMA busy_timeout = 0")
            try:
                with connection.begin():
                    if not sqlite:
                        connection.exec_driver_sql("SET LOCAL lock_timeout = '50ms'")
                    connection.execute(resumes.insert().values(**vars(resume)))
                    return _complete(connection, item)
            finally:
                if sqlite:
                    raw.execute("PRAGMA busy_timeout = 30000")


@contextlib.contextmanager
def database_locked(url: str):
    """Holds a lock the result's transaction needs, until the block ends."""
    if url.startswith("sqlite"):
        holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None, timeout=5)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as connection, connection.begin():
            connection.exec_driver_sql("LOCK TABLE resumes IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        engine.dispose()


def test_a_result_the_database_refuses_is_billed_once_with_its_exact_usage(
    stack, server_settings, recruiting_database_url, engine_for
):
    engine = engine_for(recruiting_database_url)
    repository = LockSensitiveRepository(engine)
    tracker = UsageTrackerClient(f"127.0.0.1:{stack.tracker_port}", SERVICE_TOKEN)
    relay = OutboxRelay(repository, tracker.track, FAST)
    settings = recruiting_settings(
        server_settings, recruiting_database_url, "", base_url=stack.sim.base_url, api_key=stack.sim.api_key
    )
    openai_client = OpenAIClient(settings.openai)
    service = RecruitingService(
        repository, openai_client, on_commit=relay.notify, settle_later=relay.settle_later
    )
    relay.start()
    stack.sim.set_fault("chat", "slow", seconds=1.0, count=1)
    outcome: dict = {}

    def call() -> None:
        try:
            service.parse_resume(
                company_id="acme", job_id="job-1", candidate_id="cand-db", file_name="cv.txt", content=CV
            )
        except Unavailable as error:
            outcome["error"] = error

    try:
        thread = threading.Thread(target=call)
        thread.start()
        [(operation_id, state, _)] = wait_for(lambda: outbox_state(engine), 5, "the reservation")
        assert state == "reserved"
        with database_locked(recruiting_database_url):
            thread.join(10)
            assert "metered as " + operation_id in str(outcome.get("error")), outcome
            assert relay.settlements_waiting() <= 1
        # The lock is gone: the relay completes the reservation with the usage OpenAI reported, and sends it.
        [record] = stack.wait_for_ledger([operation_id])
        [served] = chat_records(stack.sim)
        assert record.source == "response_usage"
        assert (
            record.input_tokens == served["input_tokens"] and record.output_tokens == served["output_tokens"]
        )
        wait_for(lambda: outbox_state(engine) == [(operation_id, "sent", False)], 5, "the row to be sent")
        with engine.connect() as connection:
            assert connection.execute(sa.select(sa.func.count()).select_from(resumes)).scalar() == 0
        assert len(stack.ledger()) == 1
    finally:
        relay.stop()
        tracker.close()
        openai_client.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_answer_lost_with_its_process_is_billed_once_from_the_usage_api(stack, recruiting_database_url):
    port = _free_port()
    process = _recruiting_process(stack, recruiting_database_url, port, grace="4")  # its own release time
    engine = make_engine(recruiting_database_url, pool_size=1)
    channel = service_channel(f"127.0.0.1:{port}", SERVICE_TOKEN)
    try:
        grpc.channel_ready_future(channel).result(timeout=20)
        stack.sim.set_fault("chat", "slow", seconds=1.0, count=1)
        future = recruiting_pb2_grpc.RecruitingStub(channel).ParseResume.future(
            recruiting_pb2.ParseResumeRequest(
                company_id="acme", job_id="job-1", candidate_id="cand-lost", content=CV
            ),
            timeout=20,
        )
        [(operation_id, _, _)] = wait_for(lambda: outbox_state(engine), 10, "the reservation")
        with database_locked(recruiting_database_url):  # the result's transaction waits on the lock...
            wait_for(lambda: chat_records(stack.sim), 10, "OpenAI to have answered")
            time.sleep(0.3)
            os.killpg(process.pid, signal.SIGKILL)  # ...and recruiting dies with OpenAI's answer in hand
            process.wait(5)
        with pytest.raises(grpc.RpcError):
            future.result()
        # The surviving recruiting (the stack's, same database) releases the orphan after its grace.
        [record] = stack.wait_for_ledger([operation_id], seconds=30)
        [served] = chat_records(stack.sim)
        assert record.source == "usage_api", record.fallback_reason
        assert (
            record.input_tokens == served["input_tokens"] and record.output_tokens == served["output_tokens"]
        )
        assert record.candidate_id == "cand-lost" and record.category == "cv_parsing"
        wait_for(lambda: outbox_state(engine) == [(operation_id, "sent", True)], 5, "the orphan to be sent")
        time.sleep(0.5)
        assert len(stack.ledger()) == 1
    finally:
        channel.close()
        engine.dispose()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def _recruiting_process(stack, recruiting_database_url: str, port: int, grace: str) -> subprocess.Popen:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OPENAI_", "RECRUITING_", "USAGE_", "HIREMETER_"))
    } | {
        "HIREMETER_SERVICE_TOKEN": SERVICE_TOKEN,
        "RECRUITING_HOST": "127.0.0.1",
        "RECRUITING_PORT": str(port),
        "RECRUITING_METRICS_PORT": "0",
        "RECRUITING_DATABASE_URL": recruiting_database_url,
        "USAGE_TRACKER_TARGET": f"127.0.0.1:{stack.tracker_port}",
        "OPENAI_API_KEY": stack.sim.api_key,
        "OPENAI_BASE_URL": stack.sim.base_url,
        "OPENAI_MAX_RETRIES": "0",
        "OPENAI_TIMEOUT_SECONDS": "10",
        "RECRUITING_ORPHAN_GRACE_SECONDS": grace,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "services.recruiting"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def test_orphans_of_one_minute_are_released_together_and_share_the_usage_api_window(
    stack, recruiting_database_url
):
    """Three answers lost with their process, reserved moments apart: the surviving relay releases them
    together, in one TrackBatch, so they share their window's unattributed tokens (1/3, 1/2 of the rest, the
    rest) instead of the first taking everything and the others falling back."""
    # One window for all three: the calls start and are released (4 s later) within the same minute.
    second = time.gmtime().tm_sec
    if second > 45:
        time.sleep(61 - second)
    port = _free_port()
    process = _recruiting_process(stack, recruiting_database_url, port, grace="4")
    engine = make_engine(recruiting_database_url, pool_size=1)
    channel = service_channel(f"127.0.0.1:{port}", SERVICE_TOKEN)
    candidates = [f"cand-orphan-{i}" for i in range(3)]
    try:
        grpc.channel_ready_future(channel).result(timeout=20)
        stack.sim.set_fault("chat", "slow", seconds=1.0, count=3)
        stub = recruiting_pb2_grpc.RecruitingStub(channel)
        futures = [
            stub.ParseResume.future(
                recruiting_pb2.ParseResumeRequest(
                    company_id="acme", job_id="job-1", candidate_id=candidate, content=CV
                ),
                timeout=20,
            )
            for candidate in candidates
        ]
        wait_for(lambda: len(outbox_state(engine)) == 3, 10, "the reservations")
        operation_ids = [operation_id for operation_id, _, _ in outbox_state(engine)]
        with database_locked(recruiting_database_url):  # the results' transactions wait on the lock...
            wait_for(lambda: len(chat_records(stack.sim)) == 3, 10, "OpenAI to have answered")
            time.sleep(0.3)
            os.killpg(process.pid, signal.SIGKILL)  # ...and recruiting dies with OpenAI's answers in hand
            process.wait(5)
        for future in futures:
            with pytest.raises(grpc.RpcError):
                future.result()
        # The stack's recruiting (same database) releases the three orphans together after their grace.
        records = stack.wait_for_ledger(operation_ids, seconds=30)
        served = chat_records(stack.sim)
        assert len(served) == 3
        assert [r.source for r in records] == ["usage_api"] * 3, [r.fallback_reason for r in records]
        assert sum(r.input_tokens for r in records) == sum(s["input_tokens"] for s in served)
        assert sum(r.output_tokens for r in records) == sum(s["output_tokens"] for s in served)
        assert all(r.input_tokens > 0 and r.output_tokens > 0 for r in records)  # each took a share
        assert sorted(r.candidate_id for r in records) == candidates
        wait_for(
            lambda: sorted(outbox_state(engine)) == sorted((o, "sent", True) for o in operation_ids),
            5,
            "the orphans to be sent",
        )
        assert stack.recruiting.relay.stats.orphans == 3
        time.sleep(0.5)
        assert len(stack.ledger()) == 3
    finally:
        channel.close()
        engine.dispose()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def test_a_database_down_before_the_call_means_openai_is_never_called(
    stack, server_settings, recruiting_database_url, tmp_path
):
    if recruiting_database_url.startswith("sqlite"):
        unreachable = f"sqlite:///{tmp_path / 'no-such-directory' / 'recruiting.db'}"
    else:
        unreachable = f"postgresql://postgres@127.0.0.1:{_free_port()}/test"  # nothing listens there
    before = stack.sim.stats()["requests"]
    running = start_recruiting(
        recruiting_settings(
            server_settings,
            unreachable,
            f"127.0.0.1:{stack.tracker_port}",
            base_url=stack.sim.base_url,
            api_key=stack.sim.api_key,
        )
    )
    channel = service_channel(f"127.0.0.1:{running.port}", SERVICE_TOKEN)
    try:
        with pytest.raises(grpc.RpcError) as info:
            recruiting_pb2_grpc.RecruitingStub(channel).ParseResume(
                recruiting_pb2.ParseResumeRequest(
                    company_id="acme", job_id="job-1", candidate_id="cand-down", content=CV
                ),
                timeout=20,
            )
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "database" in info.value.details()
        assert stack.sim.stats()["requests"] == before
        assert stack.sim.requests() == []
        assert stack.ledger() == []
    finally:
        channel.close()
        running.stop()
