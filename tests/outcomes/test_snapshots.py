"""Snapshots: every import is kept, a newer one never changes an older one, and an analysis
that names a snapshot gets the same rows whenever it asks."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DatabaseError

from tests.outcomes.conftest import TRIAL, Person, write_csv
from trials import db
from trials.errors import NotFound
from trials.models import AuditEvent, Outcome, OutcomeSnapshot
from trials.outcomes.export import analysis_frame
from trials.outcomes.snapshots import (
    get_snapshot,
    latest_snapshot,
    list_snapshots,
    snapshot_outcomes,
)

MONDAY = dt.date(2025, 1, 6)


def test_a_second_import_is_a_second_snapshot_and_the_first_is_unchanged(engine, enroll, trials_cli,
                                                                         tmp_path: Path) -> None:
    enroll([Person("A1", MONDAY), Person("A2", MONDAY)])
    header = ["case_id", "exit_date", "exit_kind"]
    early = write_csv(tmp_path / "early.csv", header, [["A1", "2025-03-03", "job"]])
    late = write_csv(tmp_path / "late.csv", header, [["A1", "2025-03-03", "job"], ["A2", "2025-06-02", "flexjob"]])
    first = json.loads(trials_cli.ok("outcomes", "import", TRIAL, early, "--as-of", "2025-04-01", "--json").stdout)
    with db.read_session(engine) as session:
        before = snapshot_outcomes(session, first["snapshot_id"])
        frame_before = analysis_frame(session, TRIAL, first["snapshot_id"])
    second = json.loads(trials_cli.ok("outcomes", "import", TRIAL, late, "--as-of", "2025-12-01", "--json").stdout)
    assert second["snapshot_id"] != first["snapshot_id"]
    assert first["source_sha256"] != second["source_sha256"]
    with db.read_session(engine) as session:
        assert snapshot_outcomes(session, first["snapshot_id"]) == before
        assert analysis_frame(session, TRIAL, first["snapshot_id"]) == frame_before
        assert analysis_frame(session, TRIAL) != frame_before  # the latest is the second
        latest = latest_snapshot(session, TRIAL)
        assert latest is not None and latest.id == second["snapshot_id"]
        assert [s["id"] for s in list_snapshots(session, TRIAL)] == [first["snapshot_id"], second["snapshot_id"]]
        snapshots = session.scalars(select(OutcomeSnapshot).order_by(OutcomeSnapshot.id)).all()
        assert [s.as_of for s in snapshots] == [dt.date(2025, 4, 1), dt.date(2025, 12, 1)]
        assert snapshots[0].options["definition"]["consecutive_weeks"] == 4
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "outcomes_imported")).all()
        assert [json.loads(e.payload)["snapshot_id"] for e in events] == [first["snapshot_id"], second["snapshot_id"]]
    # censored at the first as-of (12 whole weeks), a competing exit in the second
    a2 = [row for row in frame_before if row["case_id"] == "A2"][0]
    assert (a2["time_weeks"], a2["event"]) == (12, 0)


def test_snapshot_rows_cannot_be_changed(engine, enroll, trials_cli, tmp_path: Path) -> None:
    enroll([Person("A1", MONDAY)])
    path = write_csv(tmp_path / "exits.csv", ["case_id", "exit_date", "exit_kind"], [["A1", "2025-03-03", "job"]])
    trials_cli.ok("outcomes", "import", TRIAL, path, "--as-of", "2025-04-01")
    for statement in ("UPDATE outcome SET event = 0", "DELETE FROM outcome_snapshot"):
        with pytest.raises(DatabaseError):
            with db.write_session(engine) as session:
                session.execute(text(statement))
    with db.read_session(engine) as session:
        assert session.scalars(select(Outcome.event)).all() == [1]


def test_unknown_snapshots_are_not_found(engine, enroll, trials_cli) -> None:
    enroll([Person("A1", MONDAY)])
    with db.read_session(engine) as session:
        assert latest_snapshot(session, TRIAL) is None
        with pytest.raises(NotFound, match="no outcome snapshot yet"):
            get_snapshot(session, TRIAL)
        with pytest.raises(NotFound, match="no outcome snapshot 99"):
            get_snapshot(session, TRIAL, 99)
    result = trials_cli("outcomes", "export", TRIAL, "-o", "out.csv")
    assert result.exit_code == 2 and "no outcome snapshot yet" in result.stderr


def test_snapshots_command_lists_every_import(enroll, trials_cli, tmp_path: Path) -> None:
    enroll([Person("A1", MONDAY)])
    assert "no outcome snapshot yet" in trials_cli.ok("outcomes", "snapshots", TRIAL).stdout
    path = write_csv(tmp_path / "exits.csv", ["case_id", "exit_date", "exit_kind"], [["A1", "2025-03-03", "job"]])
    trials_cli.ok("outcomes", "import", TRIAL, path, "--as-of", "2025-04-01")
    trials_cli.ok("outcomes", "import", TRIAL, path, "--as-of", "2025-05-01")
    listed = json.loads(trials_cli.ok("outcomes", "snapshots", TRIAL, "--json").stdout)
    assert [(s["kind"], s["as_of"], s["source_name"]) for s in listed] == [
        ("exits", "2025-04-01", "exits.csv"), ("exits", "2025-05-01", "exits.csv")]
    assert listed[0]["source_sha256"] == listed[1]["source_sha256"]
    assert "2025-05-01" in trials_cli.ok("outcomes", "snapshots", TRIAL).stdout
