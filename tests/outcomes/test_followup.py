"""`trials followup`: which follow-ups are due given the latest snapshot's as-of date."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from tests.outcomes.conftest import TRIAL, Person, write_csv
from trials import db
from trials.outcomes.followup import followup_status, reaches_on

JAN, JUN = dt.date(2025, 1, 6), dt.date(2025, 6, 2)


def test_reaches_on_counts_whole_weeks() -> None:
    assert reaches_on(JAN, 52) == dt.date(2026, 1, 5)
    assert reaches_on(JAN, 104) == dt.date(2027, 1, 4)


def _import(trials_cli, tmp_path: Path, as_of: str) -> None:
    path = write_csv(tmp_path / f"exits-{as_of}.csv", ["case_id", "exit_date", "exit_kind"],
                     [["A1", "2025-02-03", "job"]])
    trials_cli.ok("outcomes", "import", TRIAL, path, "--as-of", as_of)


def test_followup_moves_from_not_yet_possible_to_partial_to_complete(engine, enroll, trials_cli,
                                                                      tmp_path: Path) -> None:
    enroll([Person("A1", JAN), Person("A2", JAN), Person("B1", JUN)])
    with db.read_session(engine) as session:
        status = followup_status(session, TRIAL)
    assert status["snapshot"] is None and status["as_of"] is None and status["enrolled"] == 3
    assert [h["analysis"] for h in status["horizons"]] == ["not_yet_possible", "not_yet_possible"]

    _import(trials_cli, tmp_path, "2026-01-05")  # the January cases reach 52 weeks that day
    result = json.loads(trials_cli.ok("followup", TRIAL, "--json").stdout)
    assert result["as_of"] == "2026-01-05"
    one_year, two_years = result["horizons"]
    assert one_year == {"weeks": 52, "enrolled": 3, "reached": 2, "last_case_reaches_on": "2026-06-01",
                        "analysis": "partial"}
    assert two_years == {"weeks": 104, "enrolled": 3, "reached": 0, "last_case_reaches_on": "2027-05-31",
                         "analysis": "not_yet_possible"}

    _import(trials_cli, tmp_path, "2026-06-01")
    result = json.loads(trials_cli.ok("followup", TRIAL, "--json").stdout)
    assert [h["analysis"] for h in result["horizons"]] == ["complete", "not_yet_possible"]

    text = trials_cli.ok("followup", TRIAL).stdout
    assert "3 enrolled cases; outcomes as of 2026-06-01" in text
    assert "complete" in text and "not_yet_possible" in text


def test_followup_of_an_unknown_trial(trials_cli) -> None:
    result = trials_cli("followup", "nope")
    assert result.exit_code == 2 and "no trial 'nope'" in result.stderr
