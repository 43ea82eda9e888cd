"""`make test`: every test, on SQLite and PostgreSQL.

When TEST_DATABASE_URL is unset and a PostgreSQL answers on 127.0.0.1:5432 (as on the development and CI
machines), it is used; its `test` database holds one throwaway schema per test.
"""

from __future__ import annotations

import os
import socket
import sys

import pytest

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def _postgres_listening() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def main(argv: list[str]) -> int:
    if not os.environ.get("TEST_DATABASE_URL") and _postgres_listening():
        os.environ["TEST_DATABASE_URL"] = LOCAL_POSTGRES
    print(f"make test: PostgreSQL {os.environ.get('TEST_DATABASE_URL') or 'not available (its tests skip)'}")
    return pytest.main(["-p", "no:cacheprovider", *argv])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
