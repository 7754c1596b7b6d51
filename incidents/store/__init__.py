"""The incident store: SQLite (WAL, the embedded default) or PostgreSQL (psycopg 3).

`open_store` builds the engine with the settings that make every acknowledged commit durable,
and `Store.migrate` runs the Alembic migrations (also at daemon start, serialised between
daemons)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from monitord.config import Storage
from monitord.secrets import Secret

log = logging.getLogger("monitord.store")
MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 7_277_001  # pg_advisory_xact_lock key: one migrating daemon at a time


class StoreError(Exception):
    """The database cannot be reached or refused a write (outage, full disk, lock)."""


@dataclass
class Store:
    engine: Engine
    sessions: sessionmaker[Session]

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def migrate(self) -> None:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as connection:
            if self.dialect == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                   {"key": _MIGRATION_LOCK})
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "heads")

    @staticmethod
    def head_revisions() -> str:
        """The migration heads, sorted and comma-joined. Issues developed side by side each
        branch their migration from the last landed one; `heads` applies them all."""
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        return ",".join(sorted(ScriptDirectory.from_config(cfg).get_heads()))

    def current_revision(self) -> str | None:
        with self.engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
            return ",".join(sorted(rows)) or None

    def close(self) -> None:
        self.engine.dispose()


def database_url(storage: Storage, password: Secret | None = None) -> Any:
    url = make_url(storage.url)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    if password is not None:
        url = url.set(password=password.reveal())
    return url


def open_store(storage: Storage, password: Secret | None = None) -> Store:
    url = database_url(storage, password)
    if url.get_backend_name() == "sqlite":
        engine = _sqlite_engine(url, storage.sqlite_synchronous)
    else:
        engine = create_engine(url, pool_size=storage.pool_size, max_overflow=2,
                               pool_pre_ping=True, hide_parameters=True,
                               connect_args={"connect_timeout": 10,
                                             "application_name": "monitord"})
    return Store(engine, sessionmaker(engine, expire_on_commit=False))


def _sqlite_engine(url: Any, synchronous: str) -> Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when a transaction begins (see "begin").
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous.upper()}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Take the write lock up front: two writers never deadlock upgrading a read lock.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
