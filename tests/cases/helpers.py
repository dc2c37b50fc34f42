"""Helpers shared by the case-pool tests (imported as `tests.cases.helpers`)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from trials import db
from trials.models import AuditEvent, Case, CaseHistory

TABLES = {"cases": Case, "case_history": CaseHistory, "audit_event": AuditEvent}


def row_counts(engine: Engine) -> dict[str, int]:
    """Rows in the tables an import writes: compared before and after a rejected import."""
    with db.read_session(engine) as session:
        return {name: session.scalar(select(func.count()).select_from(model)) or 0 for name, model in TABLES.items()}


def csv_text(header: Sequence[str], rows: Sequence[Sequence[object]], delimiter: str = ",") -> str:
    lines = [delimiter.join(header)] + [delimiter.join(str(c) for c in row) for row in rows]
    return "\n".join(lines) + "\n"
