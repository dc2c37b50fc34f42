"""The schema: migrations both ways, the head check, and the append-only triggers."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import DatabaseError

from trials import db
from trials.errors import DatabaseNotReady
from trials.models import APPEND_ONLY_TABLES, Base


def test_upgrade_to_head_and_downgrade_to_base(empty_db_url: str) -> None:
    engine = db.make_engine(empty_db_url)
    db.upgrade(engine)
    assert db.current_revision(engine) == db.head_revision()
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    db.downgrade(engine, "base")
    assert db.current_revision(engine) is None
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()


def test_schema_head_constant_is_the_newest_migration() -> None:
    """db.SCHEMA_HEAD spares the start-up an alembic import; it must name the real head."""
    assert db.head_revision() == db.migrations_head()


def test_models_and_migrations_agree(db_url: str) -> None:
    """The warehouse `bin/db-check` idea: autogenerate against head finds nothing to do."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = db.make_engine(db_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == []


def test_require_head_names_the_command_to_run(empty_db_url: str) -> None:
    engine = db.make_engine(empty_db_url)
    with pytest.raises(DatabaseNotReady, match="trials init"):
        db.require_head(engine)
    db.upgrade(engine, "0001")
    with pytest.raises(DatabaseNotReady, match="trials db upgrade"):
        db.require_head(engine)
    db.upgrade(engine)
    db.require_head(engine)
    engine.dispose()


@pytest.mark.parametrize("table", APPEND_ONLY_TABLES)
def test_database_refuses_update_and_delete(db_url: str, table: str) -> None:
    engine = db.make_engine(db_url)
    # A one-row fixture for every table is not needed: the triggers fire per row, so
    # we check on audit_event (with a row) and that each table has its triggers installed.
    with engine.connect() as connection:
        names = _trigger_names(connection, table)
    engine.dispose()
    assert names, f"no append-only trigger on {table}"


def test_raw_update_and_delete_of_audit_rows_fail(db_url: str) -> None:
    from trials.audit import record_event

    engine = db.make_engine(db_url)
    with db.write_session(engine) as session:
        record_event(session, "test_event", payload={"n": 1})
    for statement in ("UPDATE audit_event SET action = 'forged'", "DELETE FROM audit_event"):
        with pytest.raises(DatabaseError, match="append-only"):
            with engine.begin() as connection:
                connection.execute(text(statement))
    with engine.connect() as connection:
        assert connection.execute(text("SELECT action FROM audit_event")).scalar() == "test_event"
    engine.dispose()


def _trigger_names(connection, table: str) -> list[str]:  # type: ignore[no-untyped-def]
    if connection.dialect.name == "sqlite":
        query = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t"
    else:
        query = (
            "SELECT tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = :t AND n.nspname = current_schema() AND NOT t.tgisinternal"
        )
    return list(connection.execute(text(query), {"t": table}).scalars())
