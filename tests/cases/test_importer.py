"""The case importer: every accepted format and spelling, every kind of malformed file, and
what an import writes (new / updated / unchanged, history, audit) - never a CPR number."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from tests.cases.helpers import csv_text
from trials import db
from trials.cases import columns as col
from trials.cases.importer import (
    CaseFile,
    import_cases,
    parse_case_data,
    read_case_file,
    write_cases,
)
from trials.errors import InputError
from trials.models import AuditEvent, Case, CaseHistory
from trials.pseudonym import pseudonymise
from trials.vocab import BARRIERS, BENEFIT_TYPES

HEADER = ["case_id", "primary_barrier", "barriers", "months_unemployed", "benefit_type", "caseworker", "team",
          "as_of", "age", "note"]
ROWS = [
    ["A1", "physical", "physical|social", "12.5", "cash_assistance", "SB01", "Kontanthjælp", "2025-01-31", "41",
     "første samtale"],
    ["A2", "none", "", "0", "sickness_benefit", "", "", "", "", ""],
    ["A3", "substance", "social|substance", "130", "resource_course", "SB02", "Ressourceforløb", "2025-01-31", "29",
     "x"],
]
EXPECTED = [
    {"case_key": "A1", "primary_barrier": "physical", "barriers": ["physical", "social"], "months_unemployed": 12.5,
     "benefit_type": "cash_assistance", "caseworker": "SB01", "team": "Kontanthjælp",
     "as_of": dt.date(2025, 1, 31), "covariates": {"age": 41, "note": "første samtale"}},
    {"case_key": "A2", "primary_barrier": "none", "barriers": ["none"], "months_unemployed": 0.0,
     "benefit_type": "sickness_benefit", "caseworker": None, "team": None, "as_of": None,
     "covariates": {"age": None, "note": None}},
    {"case_key": "A3", "primary_barrier": "substance", "barriers": ["substance", "social"], "months_unemployed": 130.0,
     "benefit_type": "resource_course", "caseworker": "SB02", "team": "Ressourceforløb",
     "as_of": dt.date(2025, 1, 31), "covariates": {"age": 29, "note": "x"}},
]
KEY = b"k" * 32


def records(case_file: CaseFile) -> list[dict[str, Any]]:
    return [{name: getattr(r, name) for name in EXPECTED[0]} for r in case_file.records]


def _xlsx(rows: list[list[Any]]) -> bytes:
    import io

    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _quoted(delimiter: str) -> str:
    return "\n".join(delimiter.join(f'"{c}"' for c in row) for row in [HEADER, *ROWS]) + "\n"


def _xlsx_typed() -> bytes:
    """Cells as a spreadsheet types them: numbers as numbers, dates as dates, blanks as None."""
    typed: list[list[Any]] = [HEADER]
    for row in ROWS:
        typed.append([
            row[0], row[1], row[2], float(row[3]), row[4], row[5] or None, row[6] or None,
            dt.datetime.fromisoformat(row[7]) if row[7] else None, int(row[8]) if row[8] else None, row[9] or None,
        ])
    return _xlsx(typed)


FORMATS: dict[str, Callable[[], bytes]] = {
    "comma": lambda: csv_text(HEADER, ROWS).encode(),
    "semicolon_decimal_comma": lambda: csv_text(
        HEADER, [[c.replace(".", ",") if i == 3 else c for i, c in enumerate(r)] for r in ROWS], ";").encode(),
    "utf8_bom": lambda: b"\xef\xbb\xbf" + csv_text(HEADER, ROWS, ";").encode(),
    "cp1252": lambda: csv_text(HEADER, ROWS, ";").encode("cp1252"),
    "crlf": lambda: csv_text(HEADER, ROWS).replace("\n", "\r\n").encode(),
    "quoted_comma": lambda: _quoted(",").encode(),
    "quoted_semicolon": lambda: _quoted(";").encode("cp1252"),
    "blank_lines": lambda: ("\n" + csv_text(HEADER, ROWS).replace("\n", "\n\n", 1)).encode(),
    "danish_dates": lambda: csv_text(
        HEADER, [[c.replace("2025-01-31", "31-01-2025") for c in r] for r in ROWS], ";").encode(),
    "xlsx_text": lambda: _xlsx([HEADER, *ROWS]),
    "xlsx_typed": _xlsx_typed,
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_reads_to_the_same_cases(fmt: str) -> None:
    case_file = parse_case_data(FORMATS[fmt](), f"cases.{fmt}", KEY)
    assert case_file.id_column == "case_id"
    assert records(case_file) == EXPECTED
    assert case_file.covariate_names == ("age", "note")


def test_decimal_comma_and_thousands_in_months() -> None:
    rows = [["B1", "social", "1.234,5", "other"], ["B2", "social", "7,25", "other"], ["B3", "social", " 3 ", "other"]]
    data = csv_text(["case_id", "primary_barrier", "months_unemployed", "benefit_type"], rows, ";").encode()
    with pytest.raises(InputError, match="1234.5 months is more than 600"):
        parse_case_data(data, "f.csv", KEY)
    rows[0][2] = "100,0"
    months = [r.months_unemployed for r in parse_case_data(
        csv_text(["case_id", "primary_barrier", "months_unemployed", "benefit_type"], rows, ";").encode(),
        "f.csv", KEY).records]
    assert months == [100.0, 7.25, 3.0]


def _alias_cases() -> list[tuple[str, str]]:
    cases = []
    for canonical in col.CANONICAL:
        for spelling in col.spellings(canonical):
            cases.append((canonical, spelling))
            cases.append((canonical, spelling.upper().replace(" ", "_")))
    return cases


@pytest.mark.parametrize(("canonical", "spelling"), _alias_cases())
def test_every_column_alias_is_accepted(canonical: str, spelling: str) -> None:
    values = {"case_id": "C1", "cpr": "010190-1234", "primary_barrier": "social", "barriers": "social|substance",
              "months_unemployed": "4", "benefit_type": "other", "caseworker": "SB9", "team": "Unge",
              "as_of": "2025-03-01"}
    id_column = "cpr" if canonical == "cpr" else "case_id"
    names = [id_column, "primary_barrier", "months_unemployed", "benefit_type"]
    if canonical not in names:
        names.append(canonical)
    header = [spelling if name == canonical else name for name in names]
    data = csv_text(header, [[values[name] for name in names]], ";").encode()
    case_file = parse_case_data(data, "alias.csv", KEY)
    record = case_file.records[0]
    assert case_file.covariate_names == ()
    expected = {
        "case_id": ("case_key", "C1"), "cpr": ("case_key", pseudonymise("0101901234", KEY)),
        "primary_barrier": ("primary_barrier", "social"), "barriers": ("barriers", ["social", "substance"]),
        "months_unemployed": ("months_unemployed", 4.0), "benefit_type": ("benefit_type", "other"),
        "caseworker": ("caseworker", "SB9"), "team": ("team", "Unge"), "as_of": ("as_of", dt.date(2025, 3, 1)),
    }[canonical]
    assert getattr(record, expected[0]) == expected[1]


def _vocabulary_spellings(vocabulary: Any) -> list[tuple[str, str]]:
    return [(term.id, spelling) for term in vocabulary.terms
            for spelling in dict.fromkeys((term.id, term.da, term.en, *term.aliases, term.da.upper()))]


@pytest.mark.parametrize(("term", "spelling"), _vocabulary_spellings(BARRIERS))
def test_every_barrier_spelling_is_accepted(term: str, spelling: str) -> None:
    data = csv_text(["case_id", "primary_barrier", "months_unemployed", "benefit_type"],
                    [["C1", f'"{spelling}"', "1", "other"]], ";").encode()
    assert parse_case_data(data, "f.csv", KEY).records[0].primary_barrier == term


@pytest.mark.parametrize(("term", "spelling"), _vocabulary_spellings(BENEFIT_TYPES))
def test_every_benefit_type_spelling_is_accepted(term: str, spelling: str) -> None:
    data = csv_text(["case_id", "primary_barrier", "months_unemployed", "ydelse"],
                    [["C1", "social", "1", spelling]], ";").encode("cp1252")
    assert parse_case_data(data, "f.csv", KEY).records[0].benefit_type == term


def test_cpr_with_and_without_dash_is_one_person_named_by_its_pseudonym() -> None:
    data = csv_text(["CPR-nummer", "primær barriere", "måneder på ledighed", "ydelse"],
                    [["010190-1234", "fysiske lidelser", "3", "kontanthjælp"]], ";").encode()
    dashless = data.replace(b"010190-1234", b"0101901234")
    first = parse_case_data(data, "a.csv", KEY).records[0]
    second = parse_case_data(dashless, "b.csv", KEY).records[0]
    assert first.case_key == second.case_key == pseudonymise("0101901234", KEY)
    assert parse_case_data(data, "a.csv", b"o" * 32).records[0].case_key != first.case_key


def test_the_key_is_loaded_only_for_cpr_files() -> None:
    def no_key() -> bytes:
        raise AssertionError("the key was loaded for a case_id file")

    assert len(parse_case_data(csv_text(HEADER, ROWS).encode(), "f.csv", no_key).records) == 3


def test_covariates_are_numbers_when_every_value_is_one() -> None:
    header = ["case_id", "primary_barrier", "months_unemployed", "benefit_type", "score", "postnr", "mixed", "code"]
    rows = [["C1", "social", "1", "other", "1,5", "4200", "12", "007"],
            ["C2", "social", "1", "other", "", "4400", "ukendt", "008"]]
    covariates = [r.covariates for r in parse_case_data(csv_text(header, rows, ";").encode(), "f", KEY).records]
    assert covariates == [{"score": 1.5, "postnr": 4200, "mixed": "12", "code": "007"},
                          {"score": None, "postnr": 4400, "mixed": "ukendt", "code": "008"}]


# --- malformed files: each names file, row and column, exits 2 and writes nothing ---------

GOOD = csv_text(["case_id", "primary_barrier", "months_unemployed", "benefit_type"],
                [["G1", "social", "3", "other"], ["G2", "physical", "10", "sickness_benefit"]])


def _cpr_file(*cprs: str) -> str:
    return csv_text(["cpr", "primary_barrier", "months_unemployed", "benefit_type"],
                    [[c, "social", "3", "other"] for c in cprs])


def _base(**change: str) -> str:
    row = {"case_id": "M1", "primary_barrier": "social", "months_unemployed": "3", "benefit_type": "other"}
    row.update(change)
    first = {"case_id": "M0", "primary_barrier": "physical", "months_unemployed": "1", "benefit_type": "other"}
    return csv_text(list(row), [[first.get(name, "") for name in row], list(row.values())])


# name -> (file content, file name, fragments every one of which the error output contains)
MALFORMED: dict[str, tuple[str | bytes, str, list[str]]] = {
    "missing_column": (csv_text(["case_id", "primary_barrier", "months_unemployed"], [["X", "social", "1"]]),
                       "m.csv", ["m.csv, row 1: the column benefit_type is missing", "ydelse"]),
    "two_id_columns": (csv_text(["case_id", "cpr", "primary_barrier", "months_unemployed", "benefit_type"],
                                [["X", "010190-1234", "social", "1", "other"]]),
                       "m.csv", ["m.csv, row 1: has both a case_id and a cpr column"]),
    "no_id_column": (csv_text(["primary_barrier", "months_unemployed", "benefit_type"], [["social", "1", "other"]]),
                     "m.csv", ["row 1: has no case_id or cpr column"]),
    "same_column_twice_by_alias": (
        csv_text(["case_id", "primary_barrier", "Barriere", "months_unemployed", "benefit_type"],
                 [["X", "social", "social", "1", "other"]]),
        "m.csv", ["row 1, column Barriere: the columns 'primary_barrier' and 'Barriere' both mean primary_barrier"]),
    "duplicate_header": (csv_text(["case_id", "primary_barrier", "months_unemployed", "benefit_type", "age", "AGE"],
                                  [["X", "social", "1", "other", "1", "2"]]),
                         "m.csv", ["m.csv, row 1: the column 'AGE' appears twice"]),
    "duplicate_ids": (csv_text(["case_id", "primary_barrier", "months_unemployed", "benefit_type"],
                               [["D1", "social", "1", "other"], ["D2", "social", "1", "other"],
                                ["D1", "physical", "2", "other"]]),
                      "m.csv", ["m.csv, row 4, column case_id: the same case as row 2"]),
    "duplicate_cpr_dash_and_not": (_cpr_file("010190-1234", "0101901234"), "m.csv",
                                   ["m.csv, row 3, column cpr: the same person as row 2"]),
    "bad_cpr_date": (_cpr_file("010190-1234", "320190-1234"), "m.csv",
                     ["m.csv, row 3, column cpr: is not a valid CPR number"]),
    "cpr_lost_leading_zero": (_cpr_file("101901234"), "m.csv",
                              ["row 2, column cpr: is not a valid CPR number", "leading zero"]),
    "cpr_letters": (_cpr_file("01019O-1234"), "m.csv", ["row 2, column cpr: is not a valid CPR number"]),
    # Arabic-Indic digits used to pass the CPR pattern and crash the pseudonymisation
    "cpr_non_ascii_digits": (_cpr_file("٠١٠١٩٠-١٢٣٤"), "m.csv", ["row 2, column cpr: is not a valid CPR number"]),
    "negative_months": (_base(months_unemployed="-2"), "m.csv",
                        ["m.csv, row 3, column months_unemployed: must be 0 or more"]),
    "non_numeric_months": (_base(months_unemployed="tre"), "m.csv",
                           ["row 3, column months_unemployed: 'tre' is not a number"]),
    "empty_months": (_base(months_unemployed=""), "m.csv", ["row 3, column months_unemployed: is empty"]),
    "months_in_days": (_base(months_unemployed="900"), "m.csv",
                       ["row 3, column months_unemployed: 900 months is more than 600"]),
    "unknown_barrier": (_base(primary_barrier="heartbreak"), "m.csv",
                        ["row 3, column primary_barrier: unknown barrier 'heartbreak'; accepted: physical, "
                         "mild_mental, mental_illness, cognitive, social, substance, lifestyle, diffuse, none"]),
    "unknown_barrier_in_list": (_base(barriers="social|gæld"), "m.csv",
                                ["row 3, column barriers: unknown barrier 'gæld'; accepted: physical"]),
    "none_with_other_barriers": (_base(primary_barrier="none", barriers="social"), "m.csv",
                                 ["row 3, column barriers: 'none' cannot be combined"]),
    "unknown_benefit": (_base(benefit_type="dagpenge"), "m.csv",
                        ["row 3, column benefit_type: unknown benefit type 'dagpenge'; accepted: cash_assistance, "
                         "education_assistance, sickness_benefit, job_clarification, resource_course, "
                         "flexjob_waiting, rehabilitation, other"]),
    "empty_barrier": (_base(primary_barrier=""), "m.csv", ["row 3, column primary_barrier: is empty"]),
    "empty_case_id": (_base(case_id=""), "m.csv", ["row 3, column case_id: is empty"]),
    "bad_as_of": (_base(as_of="31-02-2025"), "m.csv", ["row 3, column as_of: '31-02-2025' is not a date"]),
    "case_id_is_a_cpr": (_base(case_id="010190-1234"), "m.csv",
                         ["row 3, column case_id: looks like a CPR number; name the column cpr"]),
    "cpr_in_a_covariate": (_base(notat="ring 0101901234 tilbage"), "m.csv",
                           ["row 3, column notat: looks like a CPR number"]),
    "caseworker_too_long": (_base(caseworker="x" * 129), "m.csv",
                            ["row 3, column caseworker: is longer than 128 characters"]),
    "empty_file": (b"", "m.csv", ["m.csv: the file is empty"]),
    "only_blank_lines": (b"\n\r\n  \n", "m.csv", ["m.csv: the file is empty"]),
    "header_only": ("case_id,primary_barrier,months_unemployed,benefit_type\n", "m.csv",
                    ["m.csv: has a header but no data rows"]),
    "wrong_encoding_utf16": (GOOD.encode("utf-16"), "m.csv", ["m.csv: binary data, not a text CSV file"]),
    "wrong_encoding_undecodable": (GOOD.encode() + b"G3,\x81\x8d,1,other\n", "m.csv",
                                   ["m.csv: not UTF-8 or Windows-1252 text"]),
    "ragged_rows": (GOOD + "G3,social,3\n" + "G4,social,3,other,extra\n", "m.csv",
                    ["m.csv, row 4: has 3 fields, the header has 4", "m.csv, row 5: has 5 fields, the header has 4"]),
    "unterminated_quote": (GOOD + 'G3,"social,3,other\n', "m.csv", ["m.csv, row 4: cannot be read as CSV"]),
    "damaged_xlsx": (b"PK\x03\x04" + b"\x00garbage" * 20, "m.xlsx", ["m.xlsx: not a readable XLSX workbook"]),
    "xlsx_values_beyond_header": (
        _xlsx([["case_id", "primary_barrier", "months_unemployed", "benefit_type"],
               ["X1", "social", 1, "other", "stray"]]),
        "m.xlsx", ["m.xlsx, row 2: has values beyond the 4 header columns"]),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_file_is_refused_with_its_location_and_nothing_is_written(
    name: str, trials_cli: Any, write: Callable[..., Path], counts: Callable[[], dict[str, int]]
) -> None:
    trials_cli.ok("cases", "import", write("good.csv", GOOD))
    before = counts()
    content, file_name, fragments = MALFORMED[name]
    result = trials_cli("cases", "import", write(file_name, content))
    assert result.exit_code == 2, result.stdout
    for fragment in fragments:
        assert fragment in result.stderr
    assert all(line.startswith("error: ") for line in result.stderr.splitlines())
    assert result.stdout == ""
    assert counts() == before


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    rows = [["E1", "heartbreak", "1", "other"], ["E2", "social", "-1", "other"], ["E3", "social", "1", "dagpenge"],
            ["E1", "social", "1", "other"]]
    with pytest.raises(InputError) as caught:
        parse_case_data(csv_text(["case_id", "primary_barrier", "months_unemployed", "benefit_type"], rows).encode(),
                        "f.csv", KEY)
    lines = caught.value.lines()
    assert [(p.row, p.column) for p in caught.value.problems] == [
        (2, "primary_barrier"), (3, "months_unemployed"), (4, "benefit_type"), (5, "case_id")]
    assert len(lines) == 4


def test_a_thoroughly_wrong_file_lists_the_first_problems_and_counts_the_rest() -> None:
    rows = [[f"E{i}", "heartbreak", "-1", "other"] for i in range(700)]
    with pytest.raises(InputError) as caught:
        parse_case_data(csv_text(["case_id", "primary_barrier", "months_unemployed", "benefit_type"], rows).encode(),
                        "f.csv", KEY)
    lines = caught.value.lines()
    assert len(lines) == 1001
    assert lines[-1] == "f.csv: 400 more problems not shown (the first 1000 are listed); nothing was imported"


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        read_case_file(tmp_path / "nope.csv", KEY)
    with pytest.raises(InputError, match="is a folder"):
        read_case_file(tmp_path, KEY)


# --- what an import writes ----------------------------------------------------------------


def _import(engine: Engine, path: Path, key: bytes, **kwargs: Any) -> Any:
    with db.write_session(engine) as session:
        return import_cases(session, path, key, **kwargs)


def test_new_updated_unchanged_with_history_and_audit(engine: Engine, write: Callable[..., Path],
                                                       key: bytes) -> None:
    first = write("pool.csv", csv_text(HEADER, ROWS))
    result = _import(engine, first, key)
    assert (result.rows, result.new, result.updated, result.unchanged) == (3, 3, 0, 0)
    again = _import(engine, first, key)
    assert (again.new, again.updated, again.unchanged) == (0, 0, 3)

    changed = [list(r) for r in ROWS] + [["A4", "social", "", "2", "other", "", "", "", "", ""]]
    changed[0][1], changed[0][2] = "mental_illness", ""  # A1 re-categorised
    changed[2][3] = "131"  # A3 one month later
    second = write("pool2.csv", csv_text(HEADER, changed))
    result = _import(engine, second, key)
    assert (result.rows, result.new, result.updated, result.unchanged) == (4, 1, 2, 1)

    with db.read_session(engine) as session:
        cases = {c.case_key: c for c in session.scalars(select(Case))}
        assert cases["A1"].revision == 2 and cases["A1"].primary_barrier == "mental_illness"
        assert cases["A1"].barriers == ["mental_illness"]
        assert cases["A2"].revision == 1 and cases["A4"].revision == 1
        history = session.execute(
            select(CaseHistory.case_id, CaseHistory.revision, CaseHistory.primary_barrier,
                   CaseHistory.months_unemployed, CaseHistory.source_sha256).order_by(CaseHistory.id)
        ).all()
        by_case = {(h.case_id, h.revision): h for h in history}
        assert len(history) == 6  # 3 first revisions, A1 and A3 revised, A4 new
        assert by_case[(cases["A1"].id, 1)].primary_barrier == "physical"  # the earlier categorisation is kept
        assert by_case[(cases["A1"].id, 2)].primary_barrier == "mental_illness"
        assert by_case[(cases["A3"].id, 2)].months_unemployed == 131
        assert by_case[(cases["A4"].id, 1)].source_sha256 == result.sha256
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
    assert [e.action for e in events] == ["cases_imported"] * 3
    payload = json.loads(events[-1].payload)
    assert payload == {"source": "pool2.csv", "sha256": result.sha256, "id_column": "case_id", "rows": 4, "new": 1,
                       "updated": 2, "unchanged": 1, "covariates": ["age", "note"]}
    import hashlib

    assert result.sha256 == hashlib.sha256(second.read_bytes()).hexdigest()
    assert events[-1].seq == result.audit_seq


def test_columns_absent_from_a_later_file_keep_their_values(engine: Engine, write: Callable[..., Path],
                                                             key: bytes) -> None:
    _import(engine, write("full.csv", csv_text(HEADER, ROWS)), key)
    short = write("short.csv", csv_text(["case_id", "primary_barrier", "months_unemployed", "benefit_type", "risk"],
                                        [["A1", "physical", "13", "cash_assistance", "high"]]))
    result = _import(engine, short, key, as_of=dt.date(2025, 2, 28))
    assert (result.updated, result.unchanged) == (1, 0)
    with db.read_session(engine) as session:
        a1 = session.scalars(select(Case).where(Case.case_key == "A1")).one()
    assert (a1.caseworker, a1.team, a1.as_of) == ("SB01", "Kontanthjælp", dt.date(2025, 2, 28))
    assert a1.covariates == {"age": 41, "note": "første samtale", "risk": "high"}
    assert a1.barriers == ["physical"]  # without a barriers column a case has its primary barrier only


def test_as_of_option_fills_rows_without_a_date(engine: Engine, write: Callable[..., Path], key: bytes,
                                                trials_cli: Any) -> None:
    result = trials_cli.ok("cases", "import", write("pool.csv", csv_text(HEADER, ROWS)), "--as-of", "2025-06-30")
    assert result.stdout.startswith("imported pool.csv: 3 rows, 3 new, 0 updated, 0 unchanged (sha256 ")
    with db.read_session(engine) as session:
        dates = dict(session.execute(select(Case.case_key, Case.as_of)).all())
    assert dates == {"A1": dt.date(2025, 1, 31), "A2": dt.date(2025, 6, 30), "A3": dt.date(2025, 1, 31)}
    bad = trials_cli("cases", "import", write("pool.csv", csv_text(HEADER, ROWS)), "--as-of", "30-06-2025")
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.stderr


def test_import_json_output(trials_cli: Any, write: Callable[..., Path]) -> None:
    result = trials_cli.ok("cases", "import", write("pool.csv", csv_text(HEADER, ROWS)), "--json")
    shown = json.loads(result.stdout)
    assert {k: shown[k] for k in ("source", "rows", "new", "updated", "unchanged", "id_column")} == {
        "source": "pool.csv", "rows": 3, "new": 3, "updated": 0, "unchanged": 0, "id_column": "case_id"}


def test_cpr_file_stores_pseudonyms(engine: Engine, write: Callable[..., Path], key: bytes) -> None:
    path = write("cpr.csv", _cpr_file("010190-1234", "3112851235"))
    result = _import(engine, path, key)
    assert result.id_column == "cpr"
    with db.read_session(engine) as session:
        stored = set(session.execute(select(Case.case_key, Case.id_kind)).all())
    assert stored == {(pseudonymise("0101901234", key), "cpr"), (pseudonymise("3112851235", key), "cpr")}


# --- no CPR number anywhere ---------------------------------------------------------------


def test_no_cpr_reaches_the_database_files_or_any_output(
    trials_cli: Any, write: Callable[..., Path], engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    backend: str,
) -> None:
    """Import a file of CPR numbers (with and without dash), re-import, list, summarise, fail an
    import on a bad CPR - and find none of the numbers in the SQLite file and its WAL (or, on
    PostgreSQL, in any stored row), in stdout/stderr, or in log records."""
    from trials.synth import synthesise, write_cohort

    rows = synthesise(150, "leak", with_cpr=True)
    for index, row in enumerate(rows):
        if index % 2:
            row["cpr"] = row["cpr"].replace("-", "")
    path = tmp_path / "cpr.csv"
    write_cohort(rows, path)
    cprs = [r["cpr"].replace("-", "") for r in rows]
    keep = engine.connect()  # SQLite removes the WAL when its last connection closes: keep one open
    keep.exec_driver_sql("SELECT 1")
    outputs = [
        trials_cli.ok("cases", "import", path),
        trials_cli.ok("cases", "import", path, "--json"),
        trials_cli.ok("cases", "list", "--json"),
        trials_cli.ok("cases", "list"),
        trials_cli.ok("cases", "summary", "--json"),
    ]
    bad = path.read_text(encoding="utf-8-sig").replace(rows[3]["cpr"], rows[3]["cpr"][:2] + "13" + rows[3]["cpr"][4:])
    failed = trials_cli("cases", "import", write("bad.csv", bad))
    assert failed.exit_code == 2
    outputs.append(failed)
    captured = "".join(r.stdout + r.stderr for r in outputs) + "\n".join(r.getMessage() for r in caplog.records)

    if backend == "sqlite":
        database = Path(engine.url.database or "")
        stored = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
        assert database.with_name(database.name + "-wal").stat().st_size > 0
    else:
        with engine.connect() as connection:
            stored = b"".join(
                repr(connection.execute(text(f"SELECT * FROM {table}")).all()).encode()
                for table in ("cases", "case_history", "audit_event")
            )
    keep.close()
    assert len(stored) > 10_000
    for cpr in cprs:
        for form in (cpr, f"{cpr[:6]}-{cpr[6:]}"):
            assert form.encode() not in stored
            assert form not in captured
    assert "is not a valid CPR number" in failed.stderr


# --- speed: bulk writes, not one flush per row ----------------------------------------------


def test_ten_thousand_cases_import_quickly(engine: Engine, tmp_path: Path, key: bytes) -> None:
    import time

    from trials.synth import synthesise, write_cohort

    path = tmp_path / "big.csv"
    write_cohort(synthesise(10_000, 1), path)
    started = time.perf_counter()
    with db.write_session(engine) as session:
        result = write_cases(session, read_case_file(path, key))
    elapsed = time.perf_counter() - started
    assert result.new == 10_000
    assert elapsed < 5, f"10k cases took {elapsed:.1f}s"


def test_slices_and_chunks_do_not_change_the_result(engine: Engine, write: Callable[..., Path], key: bytes,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Writing in slices of 2 records and statements of 3 rows gives what one slice gives."""
    import trials.cases.importer as importer

    monkeypatch.setattr(importer, "_SLICE", 2)
    monkeypatch.setattr(importer, "_CHUNK", 3)
    header = ["case_id", "primary_barrier", "months_unemployed", "benefit_type"]
    first = [[f"S{i}", "social", str(i), "other"] for i in range(7)]
    assert _import(engine, write("a.csv", csv_text(header, first)), key).new == 7
    second = [[f"S{i}", "social", str(i + (i % 2)), "other"] for i in range(10)]  # odd ones change, 3 new
    result = _import(engine, write("b.csv", csv_text(header, second)), key)
    assert (result.new, result.updated, result.unchanged) == (3, 3, 4)
    with db.read_session(engine) as session:
        months = dict(session.execute(select(Case.case_key, Case.months_unemployed)).all())
        revisions = sorted(session.execute(select(CaseHistory.revision)).scalars())
    assert months == {f"S{i}": float(i + (i % 2)) for i in range(10)}
    assert revisions == [1] * 10 + [2] * 3


def test_a_cpr_file_needs_the_key_a_case_id_file_does_not(trials_cli: Any, write: Callable[..., Path],
                                                          counts: Callable[[], dict[str, int]],
                                                          tmp_path: Path) -> None:
    missing = tmp_path / "elsewhere" / "trials.key"
    before = counts()
    refused = trials_cli("cases", "import", write("cpr.csv", _cpr_file("010190-1234")), "--key-file", missing)
    assert refused.exit_code == 2 and "pseudonymisation key not found" in refused.stderr
    assert "010190" not in refused.stderr + refused.stdout
    assert counts() == before
    trials_cli.ok("cases", "import", write("ids.csv", GOOD), "--key-file", missing)
