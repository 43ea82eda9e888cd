"""`python -m services.common.migrate`: brings every service database to its newest schema.

Run by `make run` before the services start and by the one-shot `migrate` service of docker-compose.
"""

from __future__ import annotations

from pathlib import Path

from services.common import db
from services.common.config import Env
from services.recruiting.config import recruiting_database_url
from services.usage_tracker.config import usage_database_url

SERVICES = Path(__file__).resolve().parents[1]
USAGE_MIGRATIONS = SERVICES / "usage_tracker" / "storage" / "migrations"
RECRUITING_MIGRATIONS = SERVICES / "recruiting" / "storage" / "migrations"


def migrate_all(env: Env) -> None:
    db.upgrade(usage_database_url(env), USAGE_MIGRATIONS)
    db.upgrade(recruiting_database_url(env), RECRUITING_MIGRATIONS)


if __name__ == "__main__":
    migrate_all(Env())
    print("migrations: usage and recruiting databases are at head")
