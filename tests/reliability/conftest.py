"""Fixtures of the reliability suite: the whole suite as real processes, and a throwaway PostgreSQL.

- `make_suite(usage_url=..., recruiting_url=..., env=...)` starts the simulator and the four processes on
  free loopback ports (SQLite files under tmp_path unless URLs are given); every process group is SIGKILLed
  when the test ends, whatever happened.
- `shared_suite` is one such suite for the whole session, for tests that only read or send bad input.
- `pg_cluster` is a PostgreSQL cluster of our own (initdb on a free port), so a test may crash and restart
  it; the shared PostgreSQL on 5432 is never touched. Without PostgreSQL binaries it skips (fails in CI).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.reliability.reliability_harness import PostgresCluster, Suite, postgres_bin

IN_CI = os.environ.get("CI", "").lower() == "true"


def _new_suite(workdir: Path, usage_url: str | None, recruiting_url: str | None, env: dict | None) -> Suite:
    return Suite(
        workdir=workdir,
        usage_database_url=usage_url or f"sqlite:///{workdir / 'usage.db'}",
        recruiting_database_url=recruiting_url or f"sqlite:///{workdir / 'recruiting.db'}",
        env_overrides=dict(env or {}),
    )


@pytest.fixture
def make_suite(tmp_path: Path) -> Iterator[Callable[..., Suite]]:
    suites: list[Suite] = []

    def make(
        *, usage_url: str | None = None, recruiting_url: str | None = None, env: dict | None = None
    ) -> Suite:
        suite = _new_suite(tmp_path / f"suite{len(suites)}", usage_url, recruiting_url, env)
        suites.append(suite)
        suite.start()
        return suite

    yield make
    for suite in suites:
        suite.stop()


@pytest.fixture(scope="session")
def shared_suite(tmp_path_factory) -> Iterator[Suite]:
    suite = _new_suite(tmp_path_factory.mktemp("shared-suite"), None, None, None)
    try:
        suite.start()
        yield suite
    finally:
        suite.stop()


@pytest.fixture
def pg_cluster() -> Iterator[PostgresCluster]:
    bin_dir = postgres_bin()
    if bin_dir is None:
        message = "no PostgreSQL server binaries under /usr/lib/postgresql"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    cluster = PostgresCluster(bin_dir)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


FIGURES: dict = {}


@pytest.fixture(scope="session")
def figures(tmp_path_factory) -> Iterator[dict]:
    """Measured figures (for docs/reliability.md), written to <basetemp>/reliability-figures.json."""
    yield FIGURES
    path = tmp_path_factory.getbasetemp() / "reliability-figures.json"
    path.write_text(json.dumps(FIGURES, indent=2, default=str))
    print(f"\nreliability figures: {path}")


def pytest_terminal_summary(terminalreporter) -> None:
    if FIGURES:
        terminalreporter.write_sep("-", "reliability figures")
        terminalreporter.write_line(json.dumps(FIGURES, indent=2, default=str))
