"""Hostile input to every importer: `trials cases import` (CSV and XLSX), `trials outcomes import`
(exits), `trials outcomes import-weekly` and `trials protocol validate/register`.

Real files made by the pipeline are mutated (cut short mid-row, binary garbage, bytes that are
no text encoding, a 1 GB single line kept sparse on disk) and arbitrary tables come from
hypothesis. Whatever the bytes: exit 2 with a one-line-per-problem message naming the file,
never a traceback (the CLI runs with catch_exceptions=False, so any exception fails the test),
and not one row written to any table. A CPR number in a free-text column is never stored or
echoed. Formula-like text (=, +, -, @) is data: it is imported as given and neutralised in every
CSV/XLSX the tool writes.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from tests.conftest import Cli
from tests.pipeline import AS_OF, run_pipeline
from trials import db
from trials.models import Base
from trials.pseudonym import parse_cpr
from trials.tabular import read_table

TRIAL = "street-walker"
PROTOCOL = Path(__file__).resolve().parent.parent / "protocols" / f"{TRIAL}.toml"
GIGABYTE = 1 << 30
# Valid CPR numbers (real dates in the first six digits): must never be stored or echoed.
CPRS = ("0101901234", "311299-4321", "150275-1111")
FORMULAS = ("=cmd|' /C calc'!A0", "+SUM(A1:A9)", "-2+3", "@SUM(1+1)", "=HYPERLINK(\"http://x\")")
HYPOTHESIS = settings(max_examples=15, deadline=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def row_counts(db_url: str) -> dict[str, int]:
    """Rows in every table of the schema."""
    engine = db.make_engine(db_url)
    with engine.connect() as connection:
        counts = {name: connection.execute(select(func.count()).select_from(table)).scalar_one()
                  for name, table in Base.metadata.tables.items()}
    engine.dispose()
    return counts


@dataclass
class World:
    """A trial run through the real pipeline, and one valid file per importer."""

    cli: Cli
    db_url: str
    folder: Path
    files: dict[str, Path]
    case_ids: list[str]

    def run(self, importer: str, path: Path) -> Any:
        args = {
            "cases": ("cases", "import", path),
            "cases-xlsx": ("cases", "import", path),
            "exits": ("outcomes", "import", TRIAL, path, "--as-of", AS_OF.isoformat()),
            "weekly": ("outcomes", "import-weekly", TRIAL, path, "--as-of", AS_OF.isoformat()),
            "protocol": ("protocol", "register", path),
        }[importer]
        return self.cli(*args)


@pytest.fixture
def world(db_url: str, key_file: Path, tmp_path: Path) -> World:
    from trials.synth import synthesise, write_cohort

    pipeline = run_pipeline(db_url, key_file, tmp_path, n=60, trials=(TRIAL,))
    weekly = pipeline.weekly_files[TRIAL]
    case_ids = sorted({row[0] for _, row in read_table(weekly).rows})
    exits = tmp_path / "exits.csv"
    exits.write_text("case_id,exit_date,exit_kind\n" + "".join(
        f"{case_id},2024-0{3 + i % 6}-1{i % 10},ordinary_job\n" for i, case_id in enumerate(case_ids[:12])))
    workbook = tmp_path / "cases.xlsx"
    write_cohort(synthesise(30, "hostile", as_of=dt.date(2024, 1, 1)), workbook)
    files = {"cases": pipeline.cases_file, "cases-xlsx": workbook, "exits": exits, "weekly": weekly,
             "protocol": PROTOCOL}
    return World(Cli(db_url, key_file, tmp_path), db_url, tmp_path, files, case_ids)


def assert_refused(world: World, importer: str, path: Path, before: dict[str, int], what: str) -> str:
    """Exit 2, a message naming the file on stderr, nothing written; returns all output."""
    result = world.run(importer, path)
    output = result.stdout + result.stderr
    assert result.exit_code == 2, f"{importer}, {what}: exit {result.exit_code}: {output[:500]}"
    assert result.stderr.startswith("error: ") and path.name in result.stderr, f"{importer}, {what}: {output[:500]}"
    assert "Traceback" not in output
    assert row_counts(world.db_url) == before, f"{importer}, {what}: rows were written"
    return output


# --- mutated real files -------------------------------------------------------------------------


def cut_mid_row(data: bytes, rng: random.Random, n: int) -> Iterator[tuple[str, bytes]]:
    """The file cut right after the first delimiter of a random data row: the last row is short."""
    lines = data.split(b"\n")
    offsets = [sum(len(line) + 1 for line in lines[:i]) for i in range(len(lines))]
    delimiter = b";" if lines[0].count(b";") > lines[0].count(b",") else b","
    candidates = [i for i in range(1, len(lines)) if delimiter in lines[i]]
    for i in rng.sample(candidates, min(n, len(candidates))):
        yield f"cut in row {i + 1}", data[: offsets[i] + lines[i].index(delimiter) + 1]


def cut_toml(data: bytes, rng: random.Random, n: int) -> Iterator[tuple[str, bytes]]:
    """The protocol cut right after the opening quote of a random string value."""
    quotes = [i for i in range(len(data) - 1) if data[i:i + 2] == b' "']
    for i in rng.sample(quotes, min(n, len(quotes))):
        yield f"cut at byte {i + 2}", data[: i + 2]


def mutations(importer: str, data: bytes, seed: int) -> Iterator[tuple[str, bytes]]:
    rng = random.Random(seed)
    if importer == "cases-xlsx":
        for cut in sorted(rng.sample(range(10, len(data) - 1), 4)):
            yield f"workbook cut at byte {cut}", data[:cut]
        middle = len(data) // 2
        yield "workbook with garbage inside", data[:middle] + rng.randbytes(200) + data[middle + 200:]
    elif importer == "protocol":
        yield from cut_toml(data, rng, 4)
    else:
        yield from cut_mid_row(data, rng, 4)
    yield "random bytes", rng.randbytes(4096)
    yield "random bytes after a zip signature", b"PK\x03\x04" + rng.randbytes(4096)
    middle = len(data) // 2
    yield "a NUL in the middle", data[:middle] + b"\x00" + data[middle:]
    yield "bytes of no text encoding", data[:middle] + b"\x81\x8d\x8f\x90\x9d" + data[middle:]
    yield "empty", b""
    yield "only blank lines", b"\n\r\n  \n"


@pytest.mark.parametrize("importer", ["cases", "cases-xlsx", "exits", "weekly", "protocol"])
def test_mutated_real_files_are_refused_whole(world: World, importer: str) -> None:
    original = world.files[importer]
    before = row_counts(world.db_url)
    data = original.read_bytes()
    for number, (what, mutated) in enumerate(mutations(importer, data, seed=len(importer))):
        path = world.folder / f"mutated-{number}{original.suffix}"
        path.write_bytes(mutated)
        assert_refused(world, importer, path, before, what)
    if importer == "protocol":
        validate = world.cli("protocol", "validate", path)
        assert validate.exit_code == 2 and path.name in validate.stderr
    # The unmutated file still imports (the refusals above came from the mutations) and the row
    # count check sees a write when there is one.
    result = world.run(importer, original)
    assert result.exit_code == 0, result.stderr
    if importer in ("cases-xlsx", "exits", "weekly"):
        assert row_counts(world.db_url) != before


def sparse_long_line(path: Path, prefix: bytes, written: int = 4 << 20) -> Path:
    """`prefix`, then one line of 1 GB: the first `written` bytes are text, the rest a hole in
    the file (no disk space), then a line break."""
    with path.open("wb") as handle:
        handle.write(prefix + b"A" * written)
        handle.seek(GIGABYTE)
        handle.write(b"\n")
    assert path.stat().st_size > GIGABYTE
    return path


@pytest.mark.parametrize("importer", ["cases", "cases-xlsx", "exits", "weekly", "protocol"])
def test_a_one_gigabyte_line_is_refused_quickly_in_bounded_memory(world: World, importer: str) -> None:
    original = world.files[importer].read_bytes()
    if importer == "protocol":
        prefix = b'id = "street-walker"\ntitle = "'
    elif importer == "cases-xlsx":  # a workbook's first bytes, then 1 GB
        prefix = original[:4096]
    else:  # the header, then a row whose last field never ends
        header, first, *_ = original.split(b"\n")
        prefix = header + b"\n" + first.rsplit(b";" if b";" in header else b",", 1)[0] + b"," + b"x"
    path = sparse_long_line(world.folder / f"long{world.files[importer].suffix}", prefix)
    before = row_counts(world.db_url)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        output = assert_refused(world, importer, path, before, "a 1 GB line")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    seconds = time.perf_counter() - started
    assert peak < 100 << 20, f"{importer}: {peak / 2**20:.0f} MiB held to refuse a 1 GB line"
    assert seconds < 15, f"{importer}: {seconds:.1f} s to refuse a 1 GB line"
    assert "A" * 100 not in output


# --- hypothesis: arbitrary tables ----------------------------------------------------------------

hostile_text = st.one_of(
    st.text(max_size=12),
    st.sampled_from([*FORMULAS, *CPRS, "", " ", '"', "'", ";", ",", "\n", "\r", "NaN", "-inf", "1e309",
                     "2024-02-30", "0", "-1", "ordinary_job", "ordinær beskæftigelse", "701", "2024-W07"]),
)


def _csv_bytes(rows: list[list[str]], delimiter: str = ",") -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _check_fuzzed(world: World, importer: str, path: Path, before: dict[str, int]) -> None:
    result = world.run(importer, path)
    output = result.stdout + result.stderr
    assert result.exit_code in (0, 2), f"exit {result.exit_code}: {output[:500]}"
    if result.exit_code == 2:  # a problem with the file names it; a refusal (trial exists) names the trial
        assert result.stderr.startswith("error: ") and (path.name in result.stderr or TRIAL in result.stderr), output
        assert row_counts(world.db_url) == before
    stored = database_text(world.db_url)
    for cpr in CPRS:
        digits = parse_cpr(cpr)
        assert digits is not None and digits not in output.replace("-", "") and cpr not in output
        assert digits not in stored and cpr not in stored, "a CPR number from a cell was stored"


def database_text(db_url: str) -> str:
    """Every stored value of every table, as text."""
    engine = db.make_engine(db_url)
    with engine.connect() as connection:
        text_ = " ".join(repr(connection.execute(select(table)).all()) for table in Base.metadata.sorted_tables)
    engine.dispose()
    return text_


@HYPOTHESIS
@given(data=st.data())
def test_fuzzed_exit_and_weekly_files(world: World, data: st.DataObject) -> None:
    importer = data.draw(st.sampled_from(["exits", "weekly"]))
    header = (["case_id", "exit_date", "exit_kind"] if importer == "exits" else ["case_id", "week", "status"])
    header = data.draw(st.one_of(st.just(header), st.lists(hostile_text, min_size=1, max_size=4)))
    known = st.sampled_from(world.case_ids)
    cell = st.one_of(hostile_text, known)
    rows = data.draw(st.lists(st.lists(cell, min_size=len(header), max_size=len(header)), max_size=6))
    path = world.folder / f"fuzz-{importer}.csv"
    path.write_bytes(_csv_bytes([header, *rows], data.draw(st.sampled_from([",", ";"]))))
    _check_fuzzed(world, importer, path, row_counts(world.db_url))


@HYPOTHESIS
@given(rows=st.lists(st.lists(hostile_text, min_size=1, max_size=6), min_size=1, max_size=6),
       header=st.sampled_from([
           ["case_id", "primary_barrier", "months_unemployed", "benefit_type", "caseworker", "note"],
           ["cpr", "primær barriere", "måneder", "ydelse"],
           None]))
def test_fuzzed_case_workbooks(world: World, rows: list[list[str]], header: list[str] | None) -> None:
    from openpyxl import Workbook
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("cases")
    for row in ([header] if header else []) + rows:
        sheet.append([ILLEGAL_CHARACTERS_RE.sub("", cell) for cell in row])  # what a workbook can hold
    path = world.folder / "fuzz-cases.xlsx"
    workbook.save(path)
    _check_fuzzed(world, "cases-xlsx", path, row_counts(world.db_url))


@HYPOTHESIS
@given(data=st.data())
def test_fuzzed_protocols(world: World, data: st.DataObject) -> None:
    lines = PROTOCOL.read_text(encoding="utf-8").splitlines()
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(lines) - 1))
        junk = data.draw(st.one_of(
            hostile_text, st.just(""), st.sampled_from(["[arms]", "[arms]\nx = -1", 'id = "street-walker"',
                                                         "seed = 1", 'unit = "cluster"', "= =", "[[x]]"])))
        action = data.draw(st.sampled_from(["replace", "insert", "delete"]))
        if action == "replace":
            lines[position] = junk
        elif action == "insert":
            lines.insert(position, junk)
        elif len(lines) > 1:
            del lines[position]
    path = world.folder / "fuzz-protocol.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    validate = world.cli("protocol", "validate", path)
    assert validate.exit_code in (0, 2), validate.stderr
    if validate.exit_code == 2:
        assert validate.stderr.startswith("error: ") and path.name in validate.stderr
    _check_fuzzed(world, "protocol", path, row_counts(world.db_url))


# --- CPR numbers in free text -------------------------------------------------------------------


@pytest.mark.parametrize("where", ["covariate", "caseworker", "covariate in a workbook", "column name"])
def test_cpr_in_a_free_text_column_is_refused_and_never_echoed(world: World, where: str) -> None:
    """The case importer refuses a CPR anywhere but the cpr column (`_contains_cpr`), names the
    row and column, and shows neither the number nor the cell."""
    from trials.synth import synthesise

    rows = synthesise(8, "cpr-in-text", as_of=dt.date(2024, 1, 1))
    for i, row in enumerate(rows):
        row["note"] = f"ringede {CPRS[i % len(CPRS)]} i går" if i % 3 == 1 else "intet"
        if where == "caseworker" and i == 4:
            row["caseworker"] = f"SB {CPRS[0]}"
        if where == "column name":
            row[CPRS[2]] = "ja"
    path = world.folder / ("cases-cpr.xlsx" if "workbook" in where else "cases-cpr.csv")
    _write_rows(rows, path)
    before = row_counts(world.db_url)
    output = assert_refused(world, "cases", path, before, where)
    assert "CPR" in output
    assert not any(c in output or (parse_cpr(c) or "x") in output for c in CPRS)
    assert "ringede" not in output
    stored = database_text(world.db_url)
    assert "ringede" not in stored and not any((parse_cpr(c) or "x") in stored for c in CPRS)


def _write_rows(rows: list[dict[str, Any]], path: Path) -> None:
    header = list(rows[0])
    values = [[_plain(row[name]) for name in header] for row in rows]
    if path.suffix == ".xlsx":
        from openpyxl import Workbook

        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet("cases")
        for row in [header, *values]:
            sheet.append(row)
        workbook.save(path)
    else:
        path.write_bytes(_csv_bytes([header, *values]))


def _plain(value: Any) -> str:
    if isinstance(value, list):
        return "|".join(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


# --- formula-like text in everything the tool writes ----------------------------------------


def _written_cells(path: Path) -> Iterator[str]:
    if path.suffix == ".xlsx":
        from openpyxl import load_workbook

        workbook = load_workbook(path, read_only=True)
        for sheet in workbook.worksheets:
            for row in sheet.iter_rows(values_only=True):
                yield from (str(v) for v in row if isinstance(v, str))
        workbook.close()
        return
    raw = path.read_text(encoding="utf-8-sig")
    delimiter = ";" if raw.splitlines()[0].count(";") > raw.splitlines()[0].count(",") else ","
    for row in csv.reader(io.StringIO(raw), delimiter=delimiter):
        yield from row


def _dangerous(cell: str) -> bool:
    from trials.tabular import neutralise_formula

    return neutralise_formula(cell) != cell


def test_formula_text_is_imported_as_data_and_neutralised_in_every_written_file(
        db_url: str, key_file: Path, tmp_path: Path) -> None:
    """Formula-like case ids, caseworkers, teams and covariates go in through `trials cases
    import` unchanged; every CSV/XLSX written afterwards (assignments export, outcomes export,
    cases synth CSV and XLSX, the simulated weekly file) holds no cell a spreadsheet would run."""
    import numpy as np

    from trials.outcomes.mapping import load_mapping
    from trials.simulate import SimulatedCase, reverse_codes, write_weekly_csv
    from trials.synth import synthesise, write_cohort

    cli = Cli(db_url, key_file, tmp_path)
    rows = synthesise(40, "formulas", as_of=dt.date(2024, 1, 1))
    for i, row in enumerate(rows):
        formula = FORMULAS[i % len(FORMULAS)]
        row["case_id"] = f"{formula}#{i}" if i % 2 else row["case_id"]
        row["caseworker"] = formula
        row["team"] = FORMULAS[(i + 1) % len(FORMULAS)]
        row["note"] = f"{formula} note"
    cases_file = tmp_path / "formula-cases.csv"
    _write_rows(rows, cases_file)
    cli.ok("cases", "import", cases_file)
    listed = cli.ok("cases", "list", "--json").stdout
    assert FORMULAS[0].replace('"', '\\"') in listed  # stored as given: it is data, not a formula here
    cli.ok("protocol", "register", PROTOCOL)
    cli.ok("assign", TRIAL, "--enrolled-on", "2024-02-05")
    cli.ok("close", TRIAL)
    exits = tmp_path / "formula-exits.csv"
    engine = db.make_engine(db_url)
    with engine.connect() as connection:
        enrolled = connection.execute(text("SELECT c.case_key FROM enrollment e JOIN cases c ON c.id = e.case_id "
                                           "ORDER BY c.case_key")).scalars().all()
    engine.dispose()
    ids = [case_id for case_id in enrolled if case_id.startswith(tuple("=+-@"))][:6]
    assert ids
    exits.write_bytes(_csv_bytes([["case_id", "exit_date", "exit_kind"],
                                  *[[case_id, "2024-05-06", "ordinary_job"] for case_id in ids]]))
    imported = cli("outcomes", "import", TRIAL, exits, "--as-of", AS_OF.isoformat())
    assert imported.exit_code == 0, imported.stderr

    written = {
        "assignments": tmp_path / "assignments.csv",
        "outcomes": tmp_path / "outcomes.csv",
        "synth-csv": tmp_path / "synth.csv",
        "synth-xlsx": tmp_path / "synth.xlsx",
        "weekly": tmp_path / "weekly.csv",
    }
    cli.ok("assignments", "export", TRIAL, "-o", written["assignments"])
    cli.ok("outcomes", "export", TRIAL, "-o", written["outcomes"])
    write_cohort(rows, written["synth-csv"])
    write_cohort(rows, written["synth-xlsx"])
    simulated = [SimulatedCase(str(row["case_id"]), "control", dt.date(2024, 2, 5), 3.0) for row in rows[:6]]
    write_weekly_csv(written["weekly"], simulated, np.zeros((6, 3), dtype=np.int8),
                     reverse_codes(load_mapping().codes), dt.date(2024, 3, 1))
    for name, path in written.items():
        cells = list(_written_cells(path))
        assert cells, name
        dangerous = [cell for cell in cells if _dangerous(cell)]
        assert not dangerous, f"{name} holds formula-like cells: {dangerous[:5]}"
        assert any(cell.startswith("'=") for cell in cells), f"{name}: the formula values did not reach the file"
