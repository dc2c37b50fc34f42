"""Shared fixtures: every database test runs on SQLite and on PostgreSQL.

PostgreSQL comes from TRIALS_TEST_POSTGRES_URL (default: the local server). Each test run
gets its own schema, dropped afterwards; each test starts from empty tables. Under CI=true
an unreachable server fails the run instead of skipping.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text
from sqlalchemy.engine import Engine

from trials import db
from trials.pseudonym import create_key_file

POSTGRES_URL = os.environ.get(
    "TRIALS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BACKENDS = ("sqlite", "postgresql")


def _schema_url(schema: str) -> str:
    joiner = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{joiner}options=-csearch_path%3D{schema}"


class PostgresServer:
    """Creates and drops private schemas on the test server."""

    def __init__(self) -> None:
        self.admin = db.make_engine(POSTGRES_URL, pool_pre_ping=True)
        self.schemas: list[str] = []

    def new_schema(self) -> str:
        schema = f"trials_test_{secrets.token_hex(6)}"
        with self.admin.begin() as connection:
            connection.execute(text(f"CREATE SCHEMA {schema}"))
        self.schemas.append(schema)
        return _schema_url(schema)

    def drop_all(self) -> None:
        with self.admin.begin() as connection:
            for schema in self.schemas:
                connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        self.admin.dispose()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer()
        with server.admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to connect
        message = f"PostgreSQL at {POSTGRES_URL} is unreachable: {exc.__class__.__name__}: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: PostgreSQL is required)", pytrace=False)
        pytest.skip(message)
    yield server
    server.drop_all()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file, copied for every test (migrating each time would be slow)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_migrated(postgres: PostgresServer) -> str:
    url = postgres.new_schema()
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    return url


def _empty_postgres_tables(url: str) -> None:
    engine = db.make_engine(url)
    with engine.begin() as connection:
        # Replica mode switches off the append-only triggers for this cleanup only.
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        tables = connection.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'alembic_version'")
        ).scalars().all()
        if tables:
            connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a migrated, empty database on the test's backend."""
    if backend == "sqlite":
        path = tmp_path / "trials.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("postgres_migrated")
        _empty_postgres_tables(url)
        yield url
        _empty_postgres_tables(url)


@pytest.fixture
def empty_db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a database with no schema at all (for migration and init tests)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_schema()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = db.make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "trials.key"
    create_key_file(path)
    return path


class Cli:
    """Runs `trials` in-process against the test database, like a user at a terminal."""

    def __init__(self, db_url: str, key_file: Path, cwd: Path):
        self.db_url = db_url
        self.key_file = key_file
        self.cwd = cwd

    def __call__(self, *args: Any, input: str | None = None) -> Result:
        from cli import main

        runner = CliRunner()
        argv = ["--db", self.db_url, "--key-file", str(self.key_file), *map(str, args)]
        old = Path.cwd()
        os.chdir(self.cwd)
        try:
            return runner.invoke(main, argv, input=input, catch_exceptions=False)
        finally:
            os.chdir(old)

    def ok(self, *args: Any) -> Result:
        """Run and assert exit 0, showing stderr when it was not."""
        result = self(*args)
        assert result.exit_code == 0, f"exit {result.exit_code}: {result.stderr}{result.stdout}"
        return result


@pytest.fixture
def trials_cli(db_url: str, key_file: Path, tmp_path: Path) -> Cli:
    return Cli(db_url, key_file, tmp_path)


@pytest.fixture
def protocols_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "protocols"
