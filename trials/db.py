"""Engines, transactions and the alembic schema, driven from code.

Every write goes through `write_session`, which serialises writers: SQLite takes its write
lock up front (BEGIN IMMEDIATE) and PostgreSQL takes one transaction-scoped advisory lock,
so sequence numbers, block state and the audit hash chain never race.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from typing import Any

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from trials.errors import DatabaseNotReady

# The advisory lock every PostgreSQL writer takes: (this constant, a hash of the schema), so
# that several trials installations in one database (one per schema) do not wait on each other.
WRITE_LOCK_KEY = 0x7472  # "tr"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`; SQLite gets foreign keys, WAL, and explicit BEGIN control."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself so that writers can ask for BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA busy_timeout = 60000")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get("trials_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """One serialised write transaction: commit on success, roll back on any exception."""
    with engine.connect() as connection:
        connection = connection.execution_options(trials_write=True)
        with connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key, hashtext(current_schema()))"), {"key": WRITE_LOCK_KEY}
                )
            session = Session(bind=connection, expire_on_commit=False)
            try:
                yield session
                session.flush()
            finally:
                session.close()


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A session for reading; nothing it does is committed."""
    with Session(engine) as session:
        yield session


# --- alembic -----------------------------------------------------------------------------


def migrations_location() -> str:
    """The installed migrations folder (the checkout's `migrations/`, mapped into the package)."""
    return str(files("trials.migrations"))


def alembic_config(connection: Connection | None = None) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", migrations_location())
    if connection is not None:
        config.attributes["connection"] = connection
    return config


# The newest migration. Kept here so that checking a database needs no alembic import (a
# third of `trials enroll`'s start-up); tests/test_db.py checks it against the migrations.
SCHEMA_HEAD = "0002"


def head_revision() -> str:
    return SCHEMA_HEAD


def migrations_head() -> str | None:
    """The head revision as alembic finds it in the shipped migrations."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for a database never migrated."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), revision)


def require_head(engine: Engine) -> None:
    """Refuse to work on a database that is missing or at another schema revision."""
    try:
        current = current_revision(engine)
    except OperationalError as exc:
        raise DatabaseNotReady(
            f"cannot open the database {engine.url.render_as_string(hide_password=True)}: "
            f"{str(exc.orig).splitlines()[0]}"
        ) from None
    if current is None:
        raise DatabaseNotReady(
            f"{engine.url.render_as_string(hide_password=True)} is not a trials database: "
            "run `trials init` first"
        )
    if current != head_revision():
        raise DatabaseNotReady(
            f"the database is at schema revision {current}, this version of trials needs "
            f"{head_revision()}: run `trials db upgrade`"
        )
