"""Fixtures shared by every test: databases on both backends, and real gRPC servers on 127.0.0.1.

Storage tests take the `database_url` fixture (or the migrated `usage_database_url` /
`recruiting_database_url`): each runs once on SQLite and once on PostgreSQL. PostgreSQL comes from
TEST_DATABASE_URL; every test gets its own schema, dropped afterwards. Without TEST_DATABASE_URL the
PostgreSQL cases skip locally, and fail in CI (CI=true): a CI run that skips them is not a pass.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from services.common import db
from services.common.config import ServerSettings
from services.common.migrate import RECRUITING_MIGRATIONS, USAGE_MIGRATIONS
from tools.openai_sim.testing import SimulatorHandle, running_simulator

SERVICE_TOKEN = "test-service-token"
IN_CI = os.environ.get("CI", "").lower() == "true"
BACKENDS = ("sqlite", pytest.param("postgres", marks=pytest.mark.postgres))


def _postgres_base_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL", "")
    if not url:
        if IN_CI:
            pytest.fail("TEST_DATABASE_URL must be set in CI: PostgreSQL tests may not be skipped")
        pytest.skip("TEST_DATABASE_URL is not set")
    return url


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@contextlib.contextmanager
def fresh_database(backend: str, tmp_path: Path, name: str) -> Iterator[str]:
    """An empty database on a backend: a SQLite file, or a fresh PostgreSQL schema dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / f'{name}.db'}"
        return
    base = _postgres_base_url()
    schema = f"{name}_{uuid.uuid4().hex[:16]}"
    admin = db.make_engine(base, pool_size=1)
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database on the test's backend."""
    with fresh_database(backend, tmp_path, "usage") as url:
        yield url


@pytest.fixture
def usage_database_url(database_url: str) -> str:
    """The usage tracker's database, migrated to head."""
    db.upgrade(database_url, USAGE_MIGRATIONS)
    return database_url


@pytest.fixture
def recruiting_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """Recruiting's own database, migrated, on the same backend as the test's usage database."""
    with fresh_database(backend, tmp_path, "recruiting") as url:
        db.upgrade(url, RECRUITING_MIGRATIONS)
        yield url


@pytest.fixture
def engine_for() -> Iterator[Callable[[str], sa.Engine]]:
    """Engines for URLs, disposed after the test."""
    engines: list[sa.Engine] = []

    def make(url: str) -> sa.Engine:
        engine = db.make_engine(url, pool_size=4)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()


SERVER_SETTINGS = ServerSettings(
    host="127.0.0.1", port=0, metrics_port=0, service_token=SERVICE_TOKEN, grace_seconds=1.0
)


@pytest.fixture
def server_settings() -> ServerSettings:
    """Settings for an in-process server on a free loopback port with the test service token."""
    return replace(SERVER_SETTINGS)


@pytest.fixture(scope="session")
def simulator() -> Iterator[SimulatorHandle]:
    """One local OpenAI simulator for the session (tools/openai_sim), on a free loopback port."""
    with running_simulator() as handle:
        yield handle


@pytest.fixture
def sim(simulator: SimulatorHandle) -> Iterator[SimulatorHandle]:
    """The session's simulator, forgotten before each test (usage, faults, counters, clock)."""
    simulator.reset()
    yield simulator
    simulator.clear_faults()
