"""The analysis frame and its CSV export."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

from tests.outcomes.conftest import TRIAL, Person, write_csv
from trials import db
from trials.outcomes.export import FIXED_COLUMNS, analysis_dataframe, analysis_frame, flatten_frozen

MONDAY = dt.date(2025, 1, 6)
COLUMNS_IN_ORDER = [
    "case_id", "arm", "stratum", "cluster", "benefit_type", "covariates_age", "months_unemployed",
    "primary_barrier", "stratum_months_band", "enrolled_on", "time_weeks", "event", "exit_kind",
    "weeks_on_support_52", "weeks_on_support_104", "status_52", "status_104", "relapses",
]


def test_flatten_frozen() -> None:
    flat = flatten_frozen({"barriers": ["social", "physical"], "covariates": {"age": 41}, "arm": "x", "n": 2.5})
    assert flat == {"barriers": "social|physical", "covariates_age": 41, "frozen_arm": "x", "n": 2.5}
    assert "arm" in FIXED_COLUMNS


def test_export_writes_one_row_per_randomized_case(engine, enroll, trials_cli, tmp_path: Path) -> None:
    enroll([Person("A1", MONDAY, arm="treatment"), Person("=cmd|x", MONDAY), Person("A3", MONDAY)])
    path = write_csv(tmp_path / "exits.csv", ["case_id", "exit_date", "exit_kind"], [
        ["A1", "2025-02-03", "ordinary_job"], ["A3", "2025-03-03", "fleksjob"],
    ])
    trials_cli.ok("outcomes", "import", TRIAL, path, "--as-of", "2025-12-29")
    out = tmp_path / "frame.csv"
    result = trials_cli.ok("outcomes", "export", TRIAL, "-o", out)
    assert "wrote 3 cases" in result.stdout
    with out.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == COLUMNS_IN_ORDER
    assert [r["case_id"] for r in rows] == ["A1", "'=cmd|x", "A3"]  # formula neutralised
    a1, censored, competing = rows
    assert (a1["arm"], a1["time_weeks"], a1["event"], a1["exit_kind"]) == ("treatment", "4", "1", "ordinary_job")
    assert (censored["time_weeks"], censored["event"], censored["exit_kind"]) == ("51", "0", "")
    assert (competing["time_weeks"], competing["event"], competing["exit_kind"]) == ("8", "0", "flexjob")
    assert a1["enrolled_on"] == "2025-01-06" and a1["stratum"] == "months_band=0-6"
    assert a1["weeks_on_support_52"] == "" and a1["status_52"] == ""  # week 52 not yet observed
    with db.read_session(engine) as session:
        frame = analysis_frame(session, TRIAL)
        dataframe = analysis_dataframe(session, TRIAL)
    assert [list(r) for r in frame] == [COLUMNS_IN_ORDER] * 3
    assert frame[0]["time_weeks"] == 4 and frame[0]["enrolled_on"] == MONDAY
    assert list(dataframe.columns) == COLUMNS_IN_ORDER
    assert dataframe["time_weeks"].tolist() == [4, 51, 8]
    assert dataframe["event"].sum() == 1


def test_a_case_enrolled_after_the_snapshot_has_empty_outcomes(engine, enroll, trials_cli, tmp_path: Path) -> None:
    enroll([Person("A1", MONDAY)])
    path = write_csv(tmp_path / "exits.csv", ["case_id", "exit_date", "exit_kind"], [["A1", "2025-02-03", "job"]])
    trials_cli.ok("outcomes", "import", TRIAL, path, "--as-of", "2025-03-03")
    enroll([Person("LATE", dt.date(2025, 3, 10))])
    with db.read_session(engine) as session:
        frame = analysis_frame(session, TRIAL)
    assert [(r["case_id"], r["time_weeks"], r["event"]) for r in frame] == [("A1", 4, 1), ("LATE", None, None)]
