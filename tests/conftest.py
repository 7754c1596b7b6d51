"""Shared fixtures: real SQLite and PostgreSQL stores, and a real daemon process."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from tests.support import PG_ADMIN_URL, pg_available

pytest_plugins: list[str] = []


@pytest.fixture
def pg_url():
    """A fresh, empty PostgreSQL database on the server on this machine, dropped afterwards."""
    if not pg_available():
        if os.environ.get("MONITORD_REQUIRE_PG"):
            pytest.fail("PostgreSQL at 127.0.0.1:5432 is required (MONITORD_REQUIRE_PG) but down")
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not running")
    import psycopg

    name = f"monitord_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/monitord.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path: Path) -> str:
    """The same test on the embedded default and on the production database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/monitord.db"
    return request.getfixturevalue("pg_url")
