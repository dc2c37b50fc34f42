"""Database roles on PostgreSQL: a read-only auditor who sees the record, not the cases.

`grant_auditor` gives a role SELECT on the audit log, the protocol tables (without the
trial's secret seed column) and the assignment tables, and nothing else: no case data, no
outcomes, no writes. The seed reaches an auditor through the audit log once the trial is
closed.
"""

from __future__ import annotations

import re

from sqlalchemy import text
from sqlalchemy.engine import Engine

from trials.errors import InputError, Refused

ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
AUDITOR_TABLES = ("audit_event", "protocol_version", "assignment", "enrollment_event", "alembic_version")
# Readable columns of tables that also hold something the auditor must not see.
AUDITOR_COLUMNS = {
    "trial": ("id", "title", "unit", "seed_commitment", "seed_source", "registered_at", "closed_at"),
    "enrollment": ("id", "trial_id", "case_id", "assignment_id", "arm", "cluster", "sequence", "case_revision",
                   "enrolled_on", "enrolled_at"),
}


def grant_auditor(engine: Engine, role: str) -> list[str]:
    """Grant `role` (which must exist) read-only access to the record; returns the statements run."""
    if engine.dialect.name != "postgresql":
        raise Refused("database roles exist only on PostgreSQL; on SQLite give the auditor a copy of the file "
                      "or an audit bundle (`trials audit export`)")
    if not ROLE_NAME.match(role):
        raise InputError([f"{role!r} is not a plain role name (lower-case letters, digits, '_')"])
    statements = []
    with engine.begin() as connection:
        exists = connection.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar()
        if not exists:
            raise InputError([f"role {role!r} does not exist (CREATE ROLE {role} LOGIN first)"])
        schema = connection.execute(text("SELECT current_schema()")).scalar()
        statements.append(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        statements += [f"GRANT SELECT ON {table} TO {role}" for table in AUDITOR_TABLES]
        statements += [f"GRANT SELECT ({', '.join(columns)}) ON {table} TO {role}"
                       for table, columns in AUDITOR_COLUMNS.items()]
        for statement in statements:
            connection.execute(text(statement))
    return statements
