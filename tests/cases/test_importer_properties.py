"""Properties of the importer: whatever the bytes, it imports exactly the valid table or
rejects the file (exit 2) and writes nothing."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.engine import Engine

from tests.cases.helpers import row_counts
from trials import db
from trials.cases import columns as col
from trials.cases.importer import parse_case_data, write_cases
from trials.cases.summary import list_cases
from trials.errors import InputError
from trials.models import Case
from trials.vocab import BARRIERS, BENEFIT_TYPES, normalise

KEY = b"p" * 32
SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])

BARRIER_SPELLINGS = [s for t in BARRIERS.terms for s in (t.id, t.da, t.en, *t.aliases)]
BENEFIT_SPELLINGS = [s for t in BENEFIT_TYPES.terms for s in (t.id, t.da, t.en, *t.aliases)]
LETTERS = "abcdefghijklmnopqrstuvwxyzæøåABCDEFGHIJKLMNOPQRSTUVWXYZÆØÅ"


@dataclass
class Cell:
    text: str
    valid: bool


def _case_changed(text: str) -> st.SearchStrategy[str]:
    return st.sampled_from([text, text.upper(), text.lower(), f" {text} "])


valid_barrier = st.sampled_from(BARRIER_SPELLINGS).flatmap(_case_changed).map(lambda s: Cell(s, True))
invalid_barrier = st.text(LETTERS, max_size=8).filter(lambda s: BARRIERS.lookup(s) is None).map(
    lambda s: Cell(s, False))
valid_benefit = st.sampled_from(BENEFIT_SPELLINGS).flatmap(_case_changed).map(lambda s: Cell(s, True))
invalid_benefit = st.text(LETTERS, max_size=8).filter(lambda s: BENEFIT_TYPES.lookup(s) is None).map(
    lambda s: Cell(s, False))
valid_months = st.one_of(
    st.decimals(min_value=0, max_value=600, places=1).map(lambda d: Cell(str(d), True)),
    st.decimals(min_value=0, max_value=600, places=2).map(lambda d: Cell(str(d).replace(".", ","), True)),
    st.integers(min_value=0, max_value=600).map(lambda i: Cell(str(i), True)),
)
invalid_months = st.one_of(
    st.integers(min_value=-100, max_value=-1).map(lambda i: Cell(str(i), False)),
    st.integers(min_value=601, max_value=10_000).map(lambda i: Cell(str(i), False)),
    st.text(LETTERS, max_size=5).map(lambda s: Cell(s, False)),
)


covariate_name = st.text(LETTERS + " ", min_size=1, max_size=10).map(str.strip).filter(
    lambda s: bool(s) and col.canonical_name(s) is None and "  " not in s)


@st.composite
def case_tables(draw: st.DrawFn) -> tuple[list[str], list[list[str]], bool, list[dict[str, Any]]]:
    """A table with the required columns, covariates of both kinds, each cell valid or not;
    returns header, rows, whether the whole table is valid, and the cases it should give."""
    clean = draw(st.booleans())  # half the tables are valid throughout, the others may have bad cells
    n = draw(st.integers(min_value=1 if clean else 0, max_value=8))
    names = draw(st.lists(covariate_name, max_size=3, unique_by=normalise))
    kinds = [draw(st.sampled_from(["number", "text"])) for _ in names]
    prefix = uuid.uuid4().hex[:8]
    ids = draw(st.lists(st.integers(min_value=0, max_value=12), min_size=n, max_size=n, unique=clean))
    header = ["Case_ID", "primær barriere", "måneder på ledighed", "YDELSE", *names]
    rows, expected = [], []
    valid = n > 0 and len(set(ids)) == n

    def cell(good: st.SearchStrategy[Cell], bad: st.SearchStrategy[Cell]) -> Cell:
        return draw(good if clean else st.one_of(good, bad))

    for index in range(n):
        barrier = cell(valid_barrier, invalid_barrier)
        benefit = cell(valid_benefit, invalid_benefit)
        months = cell(valid_months, invalid_months)
        valid = valid and barrier.valid and benefit.valid and months.valid
        covariates, cells = {}, []
        for name, kind in zip(names, kinds, strict=True):
            if kind == "number":
                number = draw(st.integers(min_value=1, max_value=9999))
                cells.append(str(number))
                covariates[name] = number
            else:
                word = draw(st.text(LETTERS, min_size=1, max_size=6))
                cells.append(word)
                covariates[name] = word
        case_id = f"{prefix}-{ids[index]}"
        rows.append([case_id, barrier.text, months.text, benefit.text, *cells])
        if barrier.valid and benefit.valid and months.valid:
            expected.append({
                "case_id": case_id,
                "primary_barrier": BARRIERS.lookup(barrier.text),
                "benefit_type": BENEFIT_TYPES.lookup(benefit.text),
                "months_unemployed": float(months.text.replace(",", ".")),
                "covariates": covariates,
            })
    return header, rows, valid, expected


def _encode(header: list[str], rows: list[list[str]], delimiter: str, encoding: str) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode(encoding)


def _stored(engine: Engine, prefix_of: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = [e["case_id"] for e in prefix_of]
    with db.read_session(engine) as session:
        by_key = {c["case_id"]: c for c in list_cases(session) if c["case_id"] in keys}
    return [{k: by_key[key][k] for k in ("case_id", "primary_barrier", "benefit_type", "months_unemployed",
                                          "covariates")} for key in keys if key in by_key]


def _import_or_reject(engine: Engine, data: bytes) -> tuple[bool, Any]:
    try:
        case_file = parse_case_data(data, "prop.csv", KEY)
    except InputError as exc:
        assert exc.problems, "a rejection names its problems"
        return False, exc
    with db.write_session(engine) as session:
        return True, write_cases(session, case_file)


@SETTINGS
@given(table=case_tables(), delimiter=st.sampled_from([",", ";"]), encoding=st.sampled_from(["utf-8", "cp1252",
                                                                                              "utf-8-sig"]))
def test_a_table_is_imported_exactly_when_it_is_valid(engine: Engine, table: Any, delimiter: str,
                                                      encoding: str) -> None:
    header, rows, valid, expected = table
    event(f"valid={valid}")
    before = row_counts(engine)
    imported, result = _import_or_reject(engine, _encode(header, rows, delimiter, encoding))
    assert imported == valid, result
    if not imported:
        assert row_counts(engine) == before
        return
    assert result.new == len(rows)
    assert _stored(engine, expected) == expected
    after = row_counts(engine)
    assert after == {"cases": before["cases"] + len(rows), "case_history": before["case_history"] + len(rows),
                     "audit_event": before["audit_event"] + 1}


@SETTINGS
@given(data=st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=200).map(lambda b: b"case_id;primary_barrier;months_unemployed;benefit_type\n" + b),
    st.binary(max_size=200).map(lambda b: b"case_id,primary_barrier,months_unemployed,benefit_type\nX1," + b),
    st.binary(max_size=200).map(lambda b: b"PK\x03\x04" + b),
    st.binary(max_size=12).map(lambda b: b"case_id;primary_barrier;months_unemployed;benefit_type;note\n"
                                         b"X1;social;1;other;" + b),
))
def test_arbitrary_bytes_are_imported_or_rejected_never_half_written(engine: Engine, data: bytes) -> None:
    before = row_counts(engine)
    imported, result = _import_or_reject(engine, data)
    event(f"imported={imported}")
    after = row_counts(engine)
    if imported:
        assert after["cases"] - before["cases"] == result.new
        assert after["audit_event"] == before["audit_event"] + 1
    else:
        assert after == before
        assert all(str(p).startswith(("prop.csv", "(file")) for p in result.problems)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                HealthCheck.too_slow])
@given(table=case_tables(), garbage=st.binary(max_size=40))
def test_through_the_command_exit_0_with_counts_or_exit_2_with_no_writes(
    trials_cli: Any, engine: Engine, tmp_path: Path, table: Any, garbage: bytes
) -> None:
    header, rows, valid, expected = table
    path = tmp_path / f"{uuid.uuid4().hex}.csv"
    data = _encode(header, rows, ";", "utf-8")
    for content in (data, garbage):
        path.write_bytes(content)
        before = row_counts(engine)
        result = trials_cli("cases", "import", path)
        assert result.exit_code in (0, 2), result.stderr
        if result.exit_code == 2:
            assert row_counts(engine) == before
            assert result.stderr.startswith("error: ")
        else:
            assert f"{len(rows)} rows, {len(rows)} new" in result.stdout
    if valid:
        with db.read_session(engine) as session:
            stored = set(session.scalars(select(Case.case_key)))
        assert {e["case_id"] for e in expected} <= stored


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252"])
def test_a_valid_table_round_trips_through_both_encodings(engine: Engine, encoding: str) -> None:
    header = ["case_id", "primary_barrier", "months_unemployed", "benefit_type", "bydel"]
    rows = [["R1", "sociale problemer", "12,5", "kontanthjælp", "Østerbro"], ["R2", "misbrug", "3", "andet", "Nørre"]]
    imported, result = _import_or_reject(engine, _encode(header, rows, ";", encoding))
    assert imported and result.new == 2
    with db.read_session(engine) as session:
        assert [c["covariates"] for c in list_cases(session)] == [{"bydel": "Østerbro"}, {"bydel": "Nørre"}]
