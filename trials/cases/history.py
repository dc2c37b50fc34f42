"""Every categorisation a case has had: the revision a trial enrolled can always be shown.

An import that changes a case writes a new revision to `case_history` (append-only) and
leaves the earlier ones; enrollments record the revision they froze (`case_revision`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from trials.errors import NotFound
from trials.models import Case, CaseHistory


def _revision_dict(row: CaseHistory) -> dict[str, Any]:
    return {
        "revision": row.revision,
        "primary_barrier": row.primary_barrier,
        "barriers": list(row.barriers),
        "months_unemployed": row.months_unemployed,
        "benefit_type": row.benefit_type,
        "caseworker": row.caseworker,
        "team": row.team,
        "as_of": row.as_of,
        "covariates": dict(row.covariates or {}),
        "recorded_at": row.recorded_at,
        "source_sha256": row.source_sha256,
    }


def case_history(session: Session, case_key: str) -> list[dict[str, Any]]:
    """All revisions of the case with this key (case id or pseudonym), oldest first."""
    case_id = session.scalar(select(Case.id).where(Case.case_key == case_key))
    if case_id is None:
        raise NotFound(f"no case {case_key!r} in the case pool")
    rows = session.scalars(select(CaseHistory).where(CaseHistory.case_id == case_id).order_by(CaseHistory.revision))
    return [_revision_dict(row) for row in rows]


def categorisation_at(session: Session, case_id: int, revision: int) -> dict[str, Any]:
    """One revision of a case by its database id (as an enrollment's `case_id`, `case_revision`)."""
    row = session.scalars(
        select(CaseHistory).where(CaseHistory.case_id == case_id, CaseHistory.revision == revision)
    ).first()
    if row is None:
        raise NotFound(f"case {case_id} has no revision {revision}")
    return _revision_dict(row)
