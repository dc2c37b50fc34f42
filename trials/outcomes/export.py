"""The analysis frame: one row per randomized case with its arm, stratum, cluster, covariates
frozen at enrollment, and its outcome under one snapshot.

`analysis_frame` is what the analysis engine builds its data from; `outcomes export` writes the
same rows as CSV, so an analyst can take them to R or Stata and get the same numbers.
"""

from __future__ import annotations

import csv
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from trials.models import Assignment, Case, Enrollment
from trials.outcomes.snapshots import get_snapshot, snapshot_outcomes
from trials.tabular import neutralise_formula

if TYPE_CHECKING:
    import pandas as pd

HEAD_COLUMNS = ("case_id", "arm", "stratum", "cluster")
OUTCOME_COLUMNS = (
    "enrolled_on", "time_weeks", "event", "exit_kind", "weeks_on_support_52", "weeks_on_support_104",
    "status_52", "status_104", "relapses",
)
FIXED_COLUMNS = HEAD_COLUMNS + OUTCOME_COLUMNS


def flatten_frozen(frozen: dict[str, Any]) -> dict[str, Any]:
    """Frozen covariates as flat columns: nested tables become `<table>_<key>`, lists are joined
    with `|`; a name that would clash with a fixed column gets the prefix `frozen_`."""
    flat: dict[str, Any] = {}

    def put(name: str, value: Any) -> None:
        if isinstance(value, dict):
            for sub, inner in value.items():
                put(f"{name}_{sub}", inner)
            return
        if isinstance(value, (list, tuple)):
            value = "|".join(str(v) for v in value)
        flat[f"frozen_{name}" if name in FIXED_COLUMNS else name] = value

    for name, value in (frozen or {}).items():
        put(str(name), value)
    return flat


def frame_columns(rows: list[dict[str, Any]]) -> list[str]:
    """The column order: case id, arm, stratum, cluster, frozen covariates (sorted), outcome."""
    covariates = sorted({name for row in rows for name in row} - set(FIXED_COLUMNS))
    return [*HEAD_COLUMNS, *covariates, *OUTCOME_COLUMNS]


def analysis_frame(session: Session, trial_id: str, snapshot_id: int | None = None) -> list[dict[str, Any]]:
    """One dict per randomized (enrolled) case, in enrollment order, under the named snapshot
    (the latest when None). Every row has every column of `frame_columns`; a case enrolled after
    the snapshot was imported has empty outcome columns."""
    snapshot = get_snapshot(session, trial_id, snapshot_id)
    outcomes = snapshot_outcomes(session, snapshot.id)
    # Plain rows, not ORM objects: a trial can have a million cases.
    query = (
        select(Enrollment.case_id, Enrollment.arm, Enrollment.cluster, Enrollment.frozen, Enrollment.enrolled_on,
               Case.case_key, Assignment.stratum_label)
        .join(Case, Case.id == Enrollment.case_id)
        .join(Assignment, Assignment.id == Enrollment.assignment_id)
        .where(Enrollment.trial_id == trial_id)
        .order_by(Enrollment.sequence)
    )
    rows: list[dict[str, Any]] = []
    for enrollment in session.execute(query):
        key_value, stratum = enrollment.case_key, enrollment.stratum_label
        outcome = outcomes.get(enrollment.case_id, {})
        row: dict[str, Any] = {
            "case_id": key_value, "arm": enrollment.arm, "stratum": stratum, "cluster": enrollment.cluster,
            **flatten_frozen(enrollment.frozen),
            "enrolled_on": enrollment.enrolled_on,
        }
        for name in OUTCOME_COLUMNS[1:]:
            row[name] = outcome.get(name)
        rows.append(row)
    columns = frame_columns(rows)
    return [{name: row.get(name) for name in columns} for row in rows]


def analysis_dataframe(session: Session, trial_id: str, snapshot_id: int | None = None) -> pd.DataFrame:
    """`analysis_frame` as a pandas DataFrame (nullable integer columns for the weekly measures)."""
    import pandas as pd

    rows = analysis_frame(session, trial_id, snapshot_id)
    frame = pd.DataFrame(rows, columns=frame_columns(rows))
    for name in ("time_weeks", "event", "weeks_on_support_52", "weeks_on_support_104", "relapses"):
        frame[name] = frame[name].astype("Int64")
    return frame


@dataclass(frozen=True)
class Written:
    path: Path
    rows: int
    snapshot_id: int


def export_csv(session: Session, trial_id: str, path: Path, snapshot_id: int | None = None) -> Written:
    """Write the analysis frame as UTF-8 CSV (dates ISO, empty for none), atomically."""
    snapshot = get_snapshot(session, trial_id, snapshot_id)
    rows = analysis_frame(session, trial_id, snapshot.id)
    columns = frame_columns(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for row in rows:
                writer.writerow([_cell(row[name]) for name in columns])
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return Written(path, len(rows), snapshot.id)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return neutralise_formula(str(value))
