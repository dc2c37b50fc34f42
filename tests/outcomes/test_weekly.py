"""`trials outcomes import-weekly`: long-format weekly histories, validation, chunked reading,
and the same outcome as from the equivalent exit file."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from tests.outcomes.conftest import TRIAL, Person, write_csv
from trials import db
from trials.errors import InputError
from trials.models import Outcome, OutcomeSnapshot
from trials.outcomes.mapping import load_mapping, parse_mapping
from trials.outcomes.weekly import import_weekly, parse_week, week_label, week_number
from trials.pseudonym import load_key

MONDAY = dt.date(2025, 1, 6)  # ISO week 2025-W02
MAPPING = """
[codes]
"" = "self_supporting"
"890" = "sickness_benefit"
"740" = "cash_assistance"
"JOB" = "ordinary_job"
"SU" = "education"
"FLEX" = "flexjob"
"UDV" = "moved"
"""
HEADER = ["case_id", "week", "status"]


def history(case: str, codes: list[str], start: dt.date = MONDAY, iso: bool = True) -> list[list[str]]:
    rows = []
    for t, code in enumerate(codes):
        monday = start + dt.timedelta(weeks=t)
        week = week_label(week_number(monday)) if iso else monday.isoformat()
        rows.append([case, week, code])
    return rows


def outcomes(engine: Engine, snapshot: int | None = None) -> dict[int, Outcome]:
    with db.read_session(engine) as session:
        query = select(Outcome)
        if snapshot is not None:
            query = query.where(Outcome.snapshot_id == snapshot)
        return {o.case_id: o for o in session.scalars(query)}


@pytest.fixture
def mapping_file(tmp_path: Path) -> Path:
    path = tmp_path / "codes.toml"
    path.write_text(MAPPING, encoding="utf-8")
    return path


def test_weeks_are_iso_weeks_or_mondays() -> None:
    assert parse_week("2025-W02") == week_number(MONDAY) == parse_week("2025-01-06") == parse_week("06-01-2025")
    assert parse_week("2025W2") == week_number(MONDAY)
    assert parse_week("2025-W02") - parse_week("2024-W52") == 2  # 2024 has 52 ISO weeks
    assert parse_week("2026-W53") - parse_week("2026-W52") == 1
    assert "not a Monday" in str(parse_week("2025-01-07"))
    assert "not an ISO week" in str(parse_week("2025-W53"))
    assert "not a week" in str(parse_week("week 7"))


def test_weekly_histories_give_the_outcome(engine, enroll, trials_cli, tmp_path: Path, mapping_file: Path) -> None:
    ids = enroll([Person("S3", MONDAY), Person("EV", MONDAY), Person("CO", MONDAY), Person("RE", MONDAY)])
    rows = (
        history("S3", ["890"] * 5 + [""] * 3 + ["890"] * 20)  # 3-week spell, K = 4: no exit
        + history("EV", ["890"] * 5 + ["SU"] + [""] * 22)  # education then self-supporting: event at 5
        + history("CO", ["890"] * 2 + ["FLEX"] * 2 + ["JOB"] * 24)  # competing exit first
        + history("RE", ["740"] + ["JOB"] * 6 + ["740"] + [""] * 2 + ["890"] + [""] * 17)  # two relapses
    )
    path = write_csv(tmp_path / "weekly.csv", HEADER, rows)
    # data through week 27; as-of is the Monday after, so no row is after it
    as_of = MONDAY + dt.timedelta(weeks=28)
    result = trials_cli.ok("outcomes", "import-weekly", TRIAL, path, "--as-of", as_of, "--mapping", mapping_file,
                           "--json")
    assert json.loads(result.stdout)["events"] == 2
    got = outcomes(engine)
    s3, ev, co, re_ = (got[i] for i in ids)
    assert (s3.time_weeks, s3.event, s3.exit_kind, s3.weeks_observed) == (28, 0, None, 28)
    assert (ev.time_weeks, ev.event, ev.exit_kind) == (5, 1, "education")
    assert (co.time_weeks, co.event, co.exit_kind) == (2, 0, "flexjob")
    assert (re_.time_weeks, re_.event, re_.relapses) == (1, 1, 2)


def test_censoring_at_the_horizon_and_weekly_measures(engine, enroll, trials_cli, tmp_path, mapping_file) -> None:
    (case,) = enroll([Person("H1", MONDAY)])
    codes = ["890"] * 60 + ["740"] * 50  # never self-supporting, 110 weeks observed
    path = write_csv(tmp_path / "weekly.csv", HEADER, history("H1", codes, iso=False))
    trials_cli.ok("outcomes", "import-weekly", TRIAL, path, "--as-of", MONDAY + dt.timedelta(weeks=120),
                  "--mapping", mapping_file)
    row = outcomes(engine)[case]
    assert (row.time_weeks, row.event, row.exit_kind) == (104, 0, None)
    assert (row.weeks_on_support_52, row.weeks_on_support_104) == (52, 104)
    assert (row.status_52, row.status_104) == ("sickness_benefit", "cash_assistance")


def test_the_same_outcome_from_an_exit_file_and_the_equivalent_weekly_file(
    engine, enroll, trials_cli, tmp_path: Path, mapping_file: Path
) -> None:
    """Enrollment on a Monday, exits on Mondays, as-of a Monday: both scales agree week for week."""
    ids = enroll([Person(name, MONDAY) for name in ("E1", "E2", "E3", "E4", "E5")])
    weeks = 70
    timeline = {  # week -> state, as the exit file states it
        "E1": {6: "ordinary_job"},
        "E2": {3: "ordinary_job", 5: "sickness_benefit", 20: "education", 40: "cash_assistance"},
        "E3": {10: "flexjob"},
        "E4": {},
        "E5": {12: "moved"},
    }
    code = {"ordinary_job": "JOB", "education": "SU", "flexjob": "FLEX", "sickness_benefit": "890",
            "cash_assistance": "740", "moved": "UDV"}
    exit_rows, weekly_rows = [], []
    for case, changes in timeline.items():
        state = "sickness_benefit"
        codes = []
        for t in range(weeks):
            if t in changes:
                state = changes[t]
                exit_rows.append([case, (MONDAY + dt.timedelta(weeks=t)).isoformat(), state])
            codes.append(code[state])
            if state == "moved":
                break
        weekly_rows += history(case, codes)
    as_of = (MONDAY + dt.timedelta(weeks=weeks)).isoformat()
    exits = write_csv(tmp_path / "exits.csv", ["case_id", "exit_date", "exit_kind"], exit_rows)
    weekly = write_csv(tmp_path / "weekly.csv", HEADER, weekly_rows)
    first = json.loads(trials_cli.ok("outcomes", "import", TRIAL, exits, "--as-of", as_of, "--json").stdout)
    second = json.loads(trials_cli.ok("outcomes", "import-weekly", TRIAL, weekly, "--as-of", as_of,
                                      "--mapping", mapping_file, "--json").stdout)
    from_exits, from_weeks = outcomes(engine, first["snapshot_id"]), outcomes(engine, second["snapshot_id"])
    columns = ("time_weeks", "event", "exit_kind", "weeks_on_support_52", "weeks_on_support_104", "status_52",
               "status_104", "relapses", "weeks_observed")
    for case in ids:
        assert [getattr(from_exits[case], c) for c in columns] == [getattr(from_weeks[case], c) for c in columns]
    assert (from_weeks[ids[0]].time_weeks, from_weeks[ids[0]].event) == (6, 1)
    assert (from_weeks[ids[1]].time_weeks, from_weeks[ids[1]].relapses) == (20, 1)
    assert from_weeks[ids[2]].exit_kind == "flexjob" and from_weeks[ids[4]].exit_kind == "moved"


def test_every_problem_is_listed_and_nothing_is_written(engine, enroll, trials_cli, tmp_path, mapping_file) -> None:
    enroll([Person("A1", MONDAY), Person("A2", MONDAY), Person("A3", MONDAY), Person("A4", MONDAY)])
    enroll([Person("B1", MONDAY)], _other_protocol())
    rows = [
        ["A1", "2025-W02", "890"],  # 2 fine
        ["A1", "2025-W03", "999"],  # 3 unknown benefit code
        ["A1", "2025-W03", "890"],  # 4 week 3 again, another code: conflicting rows
        ["A1", "2025-W05", "890"],  # 5 gap (week 2025-W04 missing)
        ["A1", "2025-W04", "890"],  # 6 non-monotone
        ["A1", "2025-W05", "890"],  # 7 duplicate of week 5
        ["A2", "2025-01-07", "890"],  # 8 not a Monday
        ["A2", "2025-W99", "890"],  # 9 malformed
        ["A2", "2025-W40", "890"],  # 10 after --as-of
        ["ZZ", "2025-W02", "890"],  # 11 unknown case
        ["B1", "2025-W02", "890"],  # 12 not enrolled in this trial
        ["B1", "2025-W03", "890"],  # (same case: reported once)
        ["A3", "2025-W02", "890"],  # fine
    ]
    path = write_csv(tmp_path / "weekly.csv", HEADER, rows)
    as_of = "2025-02-10"  # 2025-W07
    result = trials_cli("outcomes", "import-weekly", TRIAL, path, "--as-of", as_of, "--mapping", mapping_file)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    expected_rows = {
        3: "unknown benefit code", 4: "conflicting rows", 5: "gap in the weekly history", 6: "weeks must increase",
        7: "duplicate (case, week)", 8: "not a Monday", 9: "not an ISO week", 10: "after --as-of",
        11: "unknown case", 12: "not enrolled in trial outcome-test (2 rows)",
    }
    by_row = {int(line.split(", row ")[1].split(",")[0]): line for line in lines if ", row " in line}
    assert sorted(by_row) == sorted(expected_rows)
    for row, text in expected_rows.items():
        assert text in by_row[row], by_row[row]
        assert by_row[row].startswith(f"error: weekly.csv, row {row}, column ")
    # A4 has no rows at all: reported without a row
    assert any("case 'A4' is enrolled but has no weeks" in line for line in lines)
    # A3's history ends early: that is censoring, not an error
    assert not any("'A3'" in line for line in lines)
    with db.read_session(engine) as session:
        assert session.scalar(select(func.count()).select_from(OutcomeSnapshot)) == 0


def test_gaps_as_censoring_censors_at_the_first_gap(engine, enroll, trials_cli, tmp_path, mapping_file) -> None:
    gap, absent = enroll([Person("G1", MONDAY), Person("G2", MONDAY)])
    rows = history("G1", ["890"] * 3) + history("G1", [""] * 10, start=MONDAY + dt.timedelta(weeks=5))
    path = write_csv(tmp_path / "weekly.csv", HEADER, rows)
    as_of = MONDAY + dt.timedelta(weeks=16)
    result = trials_cli("outcomes", "import-weekly", TRIAL, path, "--as-of", as_of, "--mapping", mapping_file)
    assert result.exit_code == 2 and "gap in the weekly history: weeks 2025-W05 to 2025-W06" in result.stderr
    trials_cli.ok("outcomes", "import-weekly", TRIAL, path, "--as-of", as_of, "--mapping", mapping_file,
                  "--gaps-as-censoring")
    got = outcomes(engine)
    assert (got[gap].time_weeks, got[gap].event, got[gap].weeks_observed) == (3, 0, 3)
    assert (got[absent].time_weeks, got[absent].event) == (0, 0)


def test_weeks_before_enrollment_are_ignored_and_cpr_is_pseudonymised(engine, enroll, trials_cli, tmp_path,
                                                                       mapping_file) -> None:
    cpr = "010190-1235"
    (case,) = enroll([Person(cpr, MONDAY, cpr=True)])
    rows = history("0101901235", ["890"] * 4 + ["JOB"] * 8, start=MONDAY - dt.timedelta(weeks=2))
    path = write_csv(tmp_path / "weekly.csv", ["CPR", "uge", "ydelseskode"], rows, delimiter=";")
    trials_cli.ok("outcomes", "import-weekly", TRIAL, path, "--as-of", MONDAY + dt.timedelta(weeks=10),
                  "--mapping", mapping_file)
    row = outcomes(engine)[case]
    assert (row.time_weeks, row.event, row.exit_kind) == (2, 1, "ordinary_job")


def test_windows_1252_and_the_default_mapping(engine, enroll, trials_cli, tmp_path: Path) -> None:
    (case,) = enroll([Person("Ø1", MONDAY)])
    rows = history("Ø1", ["890"] * 3 + [""] * 5)
    text = "\n".join(";".join(r) for r in [["sagsnummer", "uge", "kode"], *rows]) + "\n"
    path = tmp_path / "weekly.csv"
    path.write_bytes(text.encode("cp1252"))
    trials_cli.ok("outcomes", "import-weekly", TRIAL, path, "--as-of", MONDAY + dt.timedelta(weeks=8))
    row = outcomes(engine)[case]
    assert (row.time_weeks, row.event, row.exit_kind) == (3, 1, "self_supporting")


def test_small_chunks_give_the_same_outcomes(engine, enroll, key_file, tmp_path, mapping_file) -> None:
    people = [Person(f"C{i}", MONDAY + dt.timedelta(days=7 * (i % 3))) for i in range(12)]
    enroll(people)
    rows = []
    for i, person in enumerate(people):
        codes = ["890"] * (i % 7) + [""] * (i % 5) + ["740"] * 3 + ["JOB"] * 5
        rows += history(person.ident, codes, start=person.enrolled_on)
    rows.sort(key=lambda r: (r[1], r[0]))  # interleaved cases, each in week order
    path = write_csv(tmp_path / "weekly.csv", HEADER, rows)
    mapping = load_mapping(mapping_file)
    key = load_key(key_file)
    results = []
    for chunk_rows in (5, 100_000):
        with db.write_session(engine) as session:
            snapshot = import_weekly(session, TRIAL, path, MONDAY + dt.timedelta(weeks=30), key, mapping,
                                     chunk_rows=chunk_rows).snapshot_id
        results.append({k: (o.time_weeks, o.event, o.exit_kind, o.relapses, o.weeks_on_support_52)
                        for k, o in outcomes(engine, snapshot).items()})
    assert results[0] == results[1]


def test_mapping_files_are_validated(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        parse_mapping('[codes]\n"1" = "holiday"\n"2" = 3\n', "bad.toml")
    text = "\n".join(caught.value.lines())
    assert "bad.toml, key codes.1: unknown category 'holiday'" in text
    assert "bad.toml, key codes.2: the category must be a string" in text
    with pytest.raises(InputError):
        parse_mapping("codes = 1\n", "bad.toml")
    default = load_mapping()
    assert default.category("") == "self_supporting"
    assert set(default.codes.values()) <= set(parse_mapping(MAPPING, "m").codes.values()) | {
        "unemployment_insurance", "flexjob_waiting", "education_assistance", "rehabilitation", "resource_course",
        "disability_pension", "job_clarification", "died"}


def test_bad_files_exit_2(enroll, trials_cli, tmp_path: Path, mapping_file: Path) -> None:
    enroll([Person("A1", MONDAY)])
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\x00\x01\x02garbage")
    result = trials_cli("outcomes", "import-weekly", TRIAL, binary, "--as-of", "2025-03-03")
    assert result.exit_code == 2 and "binary data" in result.stderr
    no_status = write_csv(tmp_path / "cols.csv", ["case_id", "week"], [["A1", "2025-W02"]])
    result = trials_cli("outcomes", "import-weekly", TRIAL, no_status, "--as-of", "2025-03-03")
    assert result.exit_code == 2 and "needs a column status" in result.stderr
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("case_id,week,status\nA1,2025-W02,890\nA1,2025-W03,890,extra\n")
    result = trials_cli("outcomes", "import-weekly", TRIAL, ragged, "--as-of", "2025-03-03", "--mapping", mapping_file)
    assert result.exit_code == 2 and "row 3" in result.stderr


def _other_protocol() -> str:
    from tests.outcomes.conftest import PROTOCOL

    return PROTOCOL.replace('"outcome-test"', '"other-trial"')


def test_short_and_long_rows_are_reported_with_their_line(enroll, trials_cli, tmp_path: Path, mapping_file) -> None:
    enroll([Person("A1", MONDAY)])
    path = tmp_path / "cut.csv"
    path.write_text("case_id,week,status\r\nA1,2025-W02,890\r\n\r\nA1,2025-W03\r\nA1,2025-W04,890,1\r\nA1,2025-W05")
    result = trials_cli("outcomes", "import-weekly", TRIAL, path, "--as-of", "2025-03-03", "--mapping", mapping_file)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: cut.csv, row 4: has 2 fields, the header has 3",
        "error: cut.csv, row 5: has 4 fields, the header has 3",
        "error: cut.csv, row 6: has 2 fields, the header has 3 (is the file cut short?)",
    ]


def test_field_counts_across_read_blocks(tmp_path: Path) -> None:
    """Lines that straddle the reader's 4 MiB blocks are counted once, with the right number."""
    from trials.outcomes.weekly import WeeklyReader

    rows = ["case_id,week,status"] + [f"C{i},2025-W02,890" for i in range(400_000)]
    rows[300_000] = "C1,2025-W02"
    path = tmp_path / "big.csv"
    path.write_text("\n".join(rows) + "\n")
    reader = WeeklyReader.__new__(WeeklyReader)
    reader.path = path
    with pytest.raises(InputError) as caught:
        reader._check_fields(",")
    assert caught.value.lines() == ["big.csv, row 300001: has 2 fields, the header has 3"]


def test_xlsx_weekly_files_and_cpr_never_echoed(engine, enroll, trials_cli, tmp_path: Path, mapping_file) -> None:
    from openpyxl import Workbook

    cpr = "010190-1235"
    (case,) = enroll([Person(cpr, MONDAY, cpr=True)])
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["cpr", "week", "status"])
    for row in history(cpr, ["890"] * 2 + ["JOB"] * 5):
        sheet.append(row)
    path = tmp_path / "weekly.xlsx"
    workbook.save(path)
    trials_cli.ok("outcomes", "import-weekly", TRIAL, path, "--as-of", MONDAY + dt.timedelta(weeks=7),
                  "--mapping", mapping_file)
    assert (outcomes(engine)[case].time_weeks, outcomes(engine)[case].event) == (2, 1)

    unknown, invalid = "020290-2345", "320190-1235"
    bad = write_csv(tmp_path / "bad.csv", ["cpr", "week", "status"], [
        [unknown, "2025-W02", "890"], [invalid, "2025-W02", "890"], [cpr, "2025-W02", "nope"],
    ])
    result = trials_cli("outcomes", "import-weekly", TRIAL, bad, "--as-of", "2025-03-03", "--mapping", mapping_file)
    assert result.exit_code == 2
    assert "row 2, column cpr: unknown case: this case is not in the case pool" in result.stderr
    assert "row 3, column cpr: not a valid CPR number" in result.stderr
    for value in (cpr, unknown, invalid):
        assert value not in result.stderr and value.replace("-", "") not in result.stderr


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=20), st.integers(min_value=-3, max_value=3),
                  st.lists(st.sampled_from(["890", "740", "", "JOB", "SU", "FLEX"]), max_size=30)),
        min_size=1, max_size=6,
    ),
    st.integers(min_value=1, max_value=40),
    st.booleans(),
)
def test_reading_a_file_gives_the_matrix_it_was_written_from(tmp_path_factory, people, chunk_rows, iso) -> None:
    """Round trip: random histories (enrollment dates, rows before enrollment, interleaving by
    week) written as a CSV and read back in chunks give exactly the status matrix they encode."""
    from trials.outcomes.derive import MISSING, Categories, Definition
    from trials.outcomes.snapshots import EnrolledCase
    from trials.outcomes.weekly import WeeklyReader

    definition = Definition(("ordinary_job", "education"), ("flexjob",), 4, 104)
    mapping = parse_mapping(MAPPING, "m.toml")
    categories = Categories(definition, mapping.codes.values())
    cases, rows, expected = [], [], np.full((len(people), definition.width), MISSING, dtype=np.int16)
    for i, (offset, lead, codes) in enumerate(people):
        enrolled_on = MONDAY + dt.timedelta(days=7 * offset + offset % 5)
        cases.append(EnrolledCase(i + 1, f"P{i}", "case_id", enrolled_on, "sickness_benefit"))
        week_zero = enrolled_on - dt.timedelta(days=enrolled_on.weekday())
        start = week_zero + dt.timedelta(weeks=lead)
        rows += history(f"P{i}", codes, start=start, iso=iso)
        for t, code in enumerate(codes):
            if 0 <= lead + t < definition.width:
                expected[i, lead + t] = categories.code(mapping.codes[code])
    if not rows:
        return
    rows.sort(key=lambda r: parse_week(r[1]))  # interleave the cases, each in week order
    path = write_csv(tmp_path_factory.mktemp("roundtrip") / "weekly.csv", HEADER, rows)
    reader = WeeklyReader(None, path, TRIAL, cases, MONDAY + dt.timedelta(weeks=60), b"k" * 32,  # type: ignore[arg-type]
                          mapping, categories, definition.width, gaps_as_censoring=True, chunk_rows=chunk_rows)
    matrix, scan = reader.read()
    assert scan.problem_count == 0, scan.problems
    assert (matrix == expected).all()


def test_a_header_without_rows_is_refused(enroll, trials_cli, tmp_path: Path) -> None:
    enroll([Person("A1", MONDAY)])
    path = tmp_path / "empty.csv"
    path.write_text("sagsnummer;uge;kode\n\n")
    result = trials_cli("outcomes", "import-weekly", TRIAL, path, "--as-of", "2025-03-03")
    assert result.exit_code == 2
    assert "empty.csv: has a header but no data rows" in result.stderr
    assert "empty.csv, column sagsnummer: case 'A1' is enrolled but has no weeks" in result.stderr
