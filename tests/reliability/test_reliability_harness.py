"""The harness the fault tests stand on: every process comes up healthy, each can be SIGKILLed and restarted
on the same port, nothing outlives the suite, and the throwaway PostgreSQL survives a crash-restart."""

from __future__ import annotations

import os
import time

import sqlalchemy as sa

from services.common import db
from tests.reliability.reliability_harness import wait_until


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_each_process_restarts_on_its_port_and_none_outlives_the_suite(make_suite):
    suite = make_suite()
    pids = []
    for name in ("usage_tracker", "recruiting", "billing", "gateway"):
        old = suite.processes[name].process.pid
        suite.kill(name)
        assert not suite.processes[name].ready()
        seconds = suite.start_one(name)
        assert seconds < 15, f"{name} took {seconds:.1f} s to come back"
        assert suite.processes[name].process.pid != old
        pids.append(suite.processes[name].process.pid)
    pids.append(suite.processes["openai_sim"].process.pid)
    suite.stop()
    wait_until(lambda: all(_gone(pid) for pid in pids), timeout=10, what="every process gone")


def test_throwaway_postgres_survives_a_crash_restart(pg_cluster):
    url = pg_cluster.create_database("probe")
    engine = db.make_engine(url, pool_size=1)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE t (x int)")
            connection.exec_driver_sql("INSERT INTO t VALUES (1)")
        pg_cluster.stop("immediate")
        assert not pg_cluster.running()
        started = time.monotonic()
        pg_cluster.start()
        assert time.monotonic() - started < 20
        # pool_pre_ping replaces the pooled connection the crash killed.
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT count(*) FROM t")).scalar_one() == 1
    finally:
        engine.dispose()
