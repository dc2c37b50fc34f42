"""PostgreSQL auditor role: reads the record, cannot write, cannot see cases or the seed."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from tests.conftest import POSTGRES_URL
from trials import db
from trials.errors import Refused
from trials.protocol import parse_protocol, register
from trials.roles import grant_auditor


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_auditor_reads_the_record_and_nothing_else(db_url: str, trials_cli, protocols_dir) -> None:  # type: ignore[no-untyped-def]
    engine = db.make_engine(db_url)
    with db.write_session(engine) as session:
        register(session, parse_protocol((protocols_dir / "street-walker.toml").read_text()))
    role = f"trials_auditor_{secrets.token_hex(4)}"
    admin = db.make_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE ROLE {role} LOGIN"))
    try:
        result = trials_cli.ok("db", "grant-auditor", role)
        assert f"GRANT SELECT ON audit_event TO {role}" in result.stdout
        with engine.connect() as connection:
            connection.execute(text(f"SET ROLE {role}"))
            assert connection.execute(text("SELECT count(*) FROM audit_event")).scalar() == 1
            assert connection.execute(text("SELECT seed_commitment FROM trial")).scalar()
            for forbidden in ("SELECT * FROM cases", "SELECT seed FROM trial", "SELECT * FROM outcome",
                              "SELECT frozen FROM enrollment", "INSERT INTO audit_event (seq) VALUES (99)",
                              "UPDATE trial SET title = 'x'"):
                savepoint = connection.begin_nested()
                with pytest.raises(ProgrammingError, match="permission denied"):
                    connection.execute(text(forbidden))
                savepoint.rollback()
            connection.rollback()
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP OWNED BY {role}"))
            connection.execute(text(f"DROP ROLE {role}"))
        admin.dispose()
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_sqlite_has_no_roles(db_url: str) -> None:
    with pytest.raises(Refused, match="only on PostgreSQL"):
        grant_auditor(db.make_engine(db_url), "auditor")
