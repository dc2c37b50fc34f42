"""Outcome snapshots: every import is kept as it was, with its derived outcomes.

A snapshot records the source file's SHA-256, the as-of date and the options of the import;
its Outcome rows (one per enrolled case) and, for exit files, its ExitRecord rows are written
with it in one transaction, together with an `outcomes_imported` audit event. Snapshots are
never changed or removed (the tables are append-only), so an analysis that names a snapshot
gives the same numbers whenever it is re-run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, NamedTuple

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from trials.audit import record_event
from trials.errors import NotFound
from trials.models import Case, Enrollment, ExitRecord, Outcome, OutcomeSnapshot, Trial, utcnow

OUTCOME_COLUMNS = (
    "time_weeks", "event", "exit_kind", "weeks_on_support_52", "weeks_on_support_104", "status_52",
    "status_104", "relapses", "weeks_observed",
)


class EnrolledCase(NamedTuple):
    """What the outcome side needs of one enrolled case."""

    case_id: int  # cases.id
    case_key: str
    id_kind: str
    enrolled_on: dt.date
    baseline: str  # the benefit type at enrollment


def require_trial(session: Session, trial_id: str) -> Trial:
    trial = session.get(Trial, trial_id)
    if trial is None:
        raise NotFound(f"no trial {trial_id!r} is registered (see `trials protocol list`)")
    return trial


def enrolled_cases(session: Session, trial_id: str) -> list[EnrolledCase]:
    """Every case enrolled in the trial, in enrollment order."""
    frozen_benefit = Enrollment.frozen["benefit_type"].as_string()
    rows = session.execute(
        select(Enrollment.case_id, Case.case_key, Case.id_kind, Enrollment.enrolled_on, frozen_benefit,
               Case.benefit_type)
        .join(Case, Case.id == Enrollment.case_id)
        .where(Enrollment.trial_id == trial_id)
        .order_by(Enrollment.sequence)
    )
    return [
        EnrolledCase(case_id, key_value, id_kind, enrolled_on, str(frozen or benefit))
        for case_id, key_value, id_kind, enrolled_on, frozen, benefit in rows
    ]


def known_case_keys(session: Session, keys: Iterable[str]) -> set[str]:
    """Which of these case keys exist in the case pool (queried in batches)."""
    wanted = list(dict.fromkeys(keys))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        batch = wanted[start:start + 500]
        found.update(session.scalars(select(Case.case_key).where(Case.case_key.in_(batch))))
    return found


def create_snapshot(
    session: Session,
    *,
    trial_id: str,
    kind: str,
    source_name: str,
    source_sha256: str,
    as_of: dt.date,
    options: dict[str, Any],
    outcome_batches: Iterable[list[dict[str, Any]]],
    mapping_sha256: str | None = None,
    exit_records: Iterable[tuple[int, dt.date, str]] = (),
) -> OutcomeSnapshot:
    """Write one snapshot with its outcomes (dicts with `case_id` and OUTCOME_COLUMNS) and exit
    records (case_id, exit_date, exit_kind), and the audit event. Call inside a write session."""
    snapshot = OutcomeSnapshot(
        trial_id=trial_id, kind=kind, source_name=source_name, source_sha256=source_sha256,
        mapping_sha256=mapping_sha256, as_of=as_of, options=options, imported_at=utcnow(),
    )
    session.add(snapshot)
    session.flush()
    counts = {"cases": 0, "events": 0, "competing": 0, "exit_records": 0}
    competing = set(options.get("definition", {}).get("competing_exits", ()))
    names = ("snapshot_id", "case_id", *OUTCOME_COLUMNS)
    connection = session.connection()
    placeholder = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    # Straight to the driver's executemany: a million rows through the SQL expression layer
    # would take most of an import's time.
    statement = (f"INSERT INTO {Outcome.__tablename__} ({', '.join(names)}) "
                 f"VALUES ({', '.join([placeholder] * len(names))})")
    for batch in outcome_batches:
        if not batch:
            continue
        for row in batch:
            row["snapshot_id"] = snapshot.id
            counts["events"] += int(row["event"])
            counts["competing"] += int(not row["event"] and row["exit_kind"] in competing)
        counts["cases"] += len(batch)
        connection.exec_driver_sql(statement, [tuple(row[name] for name in names) for row in batch])
    exits = [
        {"snapshot_id": snapshot.id, "case_id": case_id, "exit_date": date, "exit_kind": exit_kind}
        for case_id, date, exit_kind in exit_records
    ]
    for start in range(0, len(exits), 10_000):
        session.execute(insert(ExitRecord), exits[start:start + 10_000])
    counts["exit_records"] = len(exits)
    record_event(session, "outcomes_imported", trial_id=trial_id, payload={
        "snapshot_id": snapshot.id, "kind": kind, "source_name": source_name, "source_sha256": source_sha256,
        "mapping_sha256": mapping_sha256, "as_of": as_of.isoformat(), "options": options, **counts,
    })
    return snapshot


def latest_snapshot(session: Session, trial_id: str) -> OutcomeSnapshot | None:
    """The most recently imported snapshot of the trial, or None."""
    return session.scalars(
        select(OutcomeSnapshot).where(OutcomeSnapshot.trial_id == trial_id).order_by(OutcomeSnapshot.id.desc())
    ).first()


def get_snapshot(session: Session, trial_id: str, snapshot_id: int | None = None) -> OutcomeSnapshot:
    """The named snapshot of the trial, or its latest; NotFound if there is none."""
    require_trial(session, trial_id)
    if snapshot_id is None:
        snapshot = latest_snapshot(session, trial_id)
        if snapshot is None:
            raise NotFound(f"trial {trial_id!r} has no outcome snapshot yet (see `trials outcomes import`)")
        return snapshot
    snapshot = session.get(OutcomeSnapshot, snapshot_id)
    if snapshot is None or snapshot.trial_id != trial_id:
        raise NotFound(f"trial {trial_id!r} has no outcome snapshot {snapshot_id}")
    return snapshot


def list_snapshots(session: Session, trial_id: str) -> list[dict[str, Any]]:
    require_trial(session, trial_id)
    return [
        {"id": s.id, "kind": s.kind, "source_name": s.source_name, "source_sha256": s.source_sha256,
         "as_of": s.as_of, "imported_at": s.imported_at}
        for s in session.scalars(
            select(OutcomeSnapshot).where(OutcomeSnapshot.trial_id == trial_id).order_by(OutcomeSnapshot.id)
        )
    ]


def snapshot_outcomes(session: Session, snapshot_id: int) -> dict[int, dict[str, Any]]:
    """case_id -> the derived outcome columns of that case in the snapshot."""
    columns = [getattr(Outcome, name) for name in OUTCOME_COLUMNS]
    result: dict[int, dict[str, Any]] = {}
    for row in session.execute(select(Outcome.case_id, *columns).where(Outcome.snapshot_id == snapshot_id)):
        values = dict(zip(OUTCOME_COLUMNS, row[1:], strict=True))
        values["time_weeks"] = int(values["time_weeks"])
        result[row.case_id] = values
    return result
