"""Importing the case pool: validate a whole file, pseudonymise CPR numbers, write in one go.

`read_case_file` reads and validates everything and raises one `InputError` listing every
problem (file, row, column) before anything touches the database; `write_cases` then writes
the validated file inside the caller's `write_session`: new cases, updated cases with a new
revision, a `case_history` row for every revision, and one `cases_imported` audit event.

A CPR number lives only in memory between reading a cell and hashing it: errors name the
row and column, never the value, and values elsewhere in the file that look like a CPR
number are refused rather than stored as text.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, bindparam, func, select, update
from sqlalchemy import Table as SqlTable
from sqlalchemy.orm import Session

from trials.audit import record_event, sha256_hex
from trials.cases import columns as col
from trials.errors import InputError, Problem
from trials.models import Case, CaseHistory, utcnow
from trials.pseudonym import looks_like_cpr, parse_cpr, pseudonymise
from trials.tabular import Table, parse_date, parse_decimal, read_file, read_table_data
from trials.vocab import BARRIERS, BENEFIT_TYPES

MAX_MONTHS = 600.0  # 50 years: anything above is a unit mistake (days or weeks), not a case
MAX_TEXT = 128  # the width of case_key, caseworker and team in the schema
MAX_PROBLEMS = 1000  # a file with more problems than this is wrong throughout; show the first ones
BARRIER_SEPARATOR = "|"
_CHUNK = 5000  # rows per executemany
_SLICE = 50_000  # records prepared for the database at a time
_LEADING_ZERO = re.compile(r"^[+-]?0\d")
_CPR_SHAPED = re.compile(r"(?<!\d)(\d{6})-?(\d{4})(?!\d)")


@dataclass(frozen=True, slots=True)
class CaseRecord:
    """One validated row: the case as the file describes it (`case_key` already pseudonymised)."""

    row: int
    case_key: str
    primary_barrier: str
    barriers: list[str]
    months_unemployed: float
    benefit_type: str
    caseworker: str | None
    team: str | None
    as_of: dt.date | None
    covariates: dict[str, Any]


@dataclass(frozen=True)
class CaseFile:
    """A validated case file. `present` names the optional columns the file has."""

    source: str
    sha256: str
    id_column: str
    records: list[CaseRecord]
    present: frozenset[str] = field(default_factory=frozenset)
    covariate_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImportResult:
    source: str
    sha256: str
    id_column: str
    rows: int
    new: int
    updated: int
    unchanged: int
    audit_seq: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# --- reading and validation --------------------------------------------------------------


def shown(value: str) -> str:
    """A cell value as it may appear in an error message: never anything shaped like a CPR."""
    if looks_like_cpr(value) or re.search(r"\d{9,}", value):
        return "(a value shaped like a CPR number, not shown)"
    return repr(value if len(value) <= 40 else value[:37] + "...")


def _contains_cpr(value: str) -> bool:
    """True if the text holds a valid CPR number (a real date in the first six digits)."""
    if len(value) < 10:
        return False
    return any(parse_cpr(a + b) is not None for a, b in _CPR_SHAPED.findall(value))


Key = bytes | Callable[[], bytes]


def read_case_file(path: Path, key: Key, *, as_of: dt.date | None = None) -> CaseFile:
    """Read and validate a case file; raise `InputError` listing every problem.

    `key` is the pseudonymisation key, or a function returning it: it is loaded only for a
    file with a cpr column, so files named by case_id need no key.
    """
    source = path.name if not looks_like_cpr(path.name) else "(file name withheld: it contains a CPR-shaped number)"
    return parse_case_data(read_file(path, source), source, key, as_of=as_of)


def parse_case_data(data: bytes, source: str, key: Key, *, as_of: dt.date | None = None) -> CaseFile:
    """Validate the bytes of a CSV or XLSX case file (see `read_case_file`)."""
    table = read_table_data(data, source)
    return validate_table(table, sha256_hex(data), key, as_of=as_of)


def _match_header(table: Table) -> tuple[dict[str, int], list[tuple[int, str]], list[Problem]]:
    """Known columns by position, the covariate columns, and problems with the header."""
    known: dict[str, int] = {}
    covariates: list[tuple[int, str]] = []
    problems: list[Problem] = []
    for position, name in enumerate(table.header):
        canonical = col.canonical_name(name)
        if canonical is None and (_contains_cpr(name) or looks_like_cpr(name)):
            # a covariate's name is stored and shown: it must not carry a CPR number
            problems.append(Problem(table.source, f"the name of column {position + 1} looks like a CPR number "
                                    "(not shown); CPR numbers belong in the cpr column's cells", row=1))
        elif canonical is None:
            covariates.append((position, name))
        elif canonical in known:
            first = table.header[known[canonical]]
            problems.append(Problem(table.source, f"the columns {first!r} and {name!r} both mean {canonical}; "
                                    "keep one", row=1, column=name))
        else:
            known[canonical] = position
    ids = [c for c in col.ID_COLUMNS if c in known]
    if len(ids) == 2:
        problems.append(Problem(table.source, "has both a case_id and a cpr column; a file names its cases "
                                "by exactly one of them", row=1))
    elif not ids:
        problems.append(Problem(table.source, "has no case_id or cpr column (one of them names the cases)", row=1))
    for required in col.REQUIRED:
        if required not in known:
            accepted = ", ".join(col.spellings(required))
            problems.append(Problem(table.source, f"the column {required} is missing (accepted names: {accepted})",
                                    row=1))
    return known, covariates, problems


class _Problems:
    """Collects problems up to MAX_PROBLEMS and counts the rest."""

    def __init__(self, source: str):
        self.source = source
        self.items: list[Problem] = []
        self.hidden = 0

    def add(self, message: str, row: int | None = None, column: str | None = None) -> None:
        if len(self.items) < MAX_PROBLEMS:
            self.items.append(Problem(self.source, message, row=row, column=column))
        else:
            self.hidden += 1

    def raise_if_any(self) -> None:
        if not self.items:
            return
        problems: list[Problem | str] = list(self.items)
        if self.hidden:
            problems.append(Problem(self.source, f"{self.hidden} more problems not shown (the first "
                                    f"{MAX_PROBLEMS} are listed); nothing was imported"))
        raise InputError(problems)


def validate_table(table: Table, sha256: str, key: Key, *, as_of: dt.date | None = None) -> CaseFile:
    """Turn a read table into validated records, or raise `InputError` with every problem."""
    known, covariate_columns, header_problems = _match_header(table)
    if header_problems:
        raise InputError(header_problems)
    id_column = col.CASE_ID if col.CASE_ID in known else col.CPR
    if id_column == col.CPR and callable(key):
        key = key()
    assert isinstance(key, bytes) or id_column == col.CASE_ID
    names = {canonical: table.header[position] for canonical, position in known.items()}
    problems = _Problems(table.source)

    covariate_values: dict[str, list[str]] = {name: [] for _, name in covariate_columns}
    records: list[dict[str, Any]] = []
    first_row_of: dict[str, int] = {}
    for number, cells in table.rows:
        case_key, record = _validate_row(number, cells, known, names, id_column, key, as_of, problems)
        for position, name in covariate_columns:
            value = cells[position]
            if _contains_cpr(value):
                problems.add("looks like a CPR number; CPR numbers are accepted only in the cpr column, "
                             "where they are pseudonymised", number, name)
            covariate_values[name].append(value)
        if case_key is None:
            continue
        if case_key in first_row_of:
            what = "person" if id_column == col.CPR else "case"
            problems.add(f"the same {what} as row {first_row_of[case_key]}: each case appears once in a file",
                         number, names[id_column])
            continue
        first_row_of[case_key] = number
        if record is not None:
            records.append(record)
    problems.raise_if_any()

    converted = {name: _covariate_column(values) for name, values in covariate_values.items()}
    final = []
    for index, record in enumerate(records):
        covariates = {name: converted[name][index] for name in converted}
        final.append(CaseRecord(covariates=covariates, **record))
    # A duplicate row was dropped from `records` only when the whole file failed, so
    # records and covariate values line up one to one here.
    assert len(final) == len(table.rows)
    return CaseFile(
        source=table.source,
        sha256=sha256,
        id_column=id_column,
        records=final,
        present=frozenset(c for c in col.OPTIONAL if c in known),
        covariate_names=tuple(name for _, name in covariate_columns),
    )


def _validate_row(number: int, cells: list[str], known: dict[str, int], names: dict[str, str], id_column: str,
                  key: Key, default_as_of: dt.date | None, problems: _Problems
                  ) -> tuple[str | None, dict[str, Any] | None]:
    """The row's case key (None if its id is invalid) and its record (None if anything is invalid)."""
    before = len(problems.items) + problems.hidden

    def cell(canonical: str) -> str:
        return cells[known[canonical]] if canonical in known else ""

    def fail(canonical: str, message: str) -> None:
        problems.add(message, number, names[canonical])

    # The case's identity.
    case_key: str | None = None
    raw_id = cell(id_column)
    if id_column == col.CPR:
        digits = parse_cpr(raw_id)
        if not raw_id:
            fail(col.CPR, "is empty")
        elif digits is None:
            hint = ""
            if re.fullmatch(r"\s*\d{9}\s*", raw_id):
                hint = " (9 digits: a spreadsheet may have dropped a leading zero; format the column as text)"
            fail(col.CPR, "is not a valid CPR number: expected 10 digits DDMMYY-SSSS whose first six are a real "
                 "date" + hint)
        else:
            assert isinstance(key, bytes)
            case_key = pseudonymise(digits, key)
    elif not raw_id:
        fail(col.CASE_ID, "is empty")
    elif _contains_cpr(raw_id):
        fail(col.CASE_ID, "looks like a CPR number; name the column cpr so that it is pseudonymised")
    elif len(raw_id) > MAX_TEXT:
        fail(col.CASE_ID, f"is longer than {MAX_TEXT} characters")
    else:
        case_key = raw_id

    primary = _term(cell(col.PRIMARY_BARRIER), BARRIERS, "barrier", lambda m: fail(col.PRIMARY_BARRIER, m))
    barriers = _barriers(cell(col.BARRIERS), primary, lambda m: fail(col.BARRIERS, m)) if col.BARRIERS in known \
        else ([primary] if primary else [])
    benefit = _term(cell(col.BENEFIT), BENEFIT_TYPES, "benefit type", lambda m: fail(col.BENEFIT, m))
    months = _months(cell(col.MONTHS), lambda m: fail(col.MONTHS, m))

    texts: dict[str, str | None] = {}
    for canonical in (col.CASEWORKER, col.TEAM):
        value = cell(canonical)
        if _contains_cpr(value):
            fail(canonical, "looks like a CPR number; CPR numbers are accepted only in the cpr column")
        elif len(value) > MAX_TEXT:
            fail(canonical, f"is longer than {MAX_TEXT} characters")
        texts[canonical] = value or None

    row_as_of = default_as_of
    if cell(col.AS_OF):
        row_as_of = _date(cell(col.AS_OF))
        if row_as_of is None:
            fail(col.AS_OF, f"{shown(cell(col.AS_OF))} is not a date (YYYY-MM-DD or DD-MM-YYYY)")

    if len(problems.items) + problems.hidden > before or case_key is None:
        return case_key, None
    assert primary is not None and benefit is not None and months is not None
    return case_key, {
        "row": number,
        "case_key": case_key,
        "primary_barrier": primary,
        "barriers": barriers,
        "months_unemployed": months,
        "benefit_type": benefit,
        "caseworker": texts[col.CASEWORKER],
        "team": texts[col.TEAM],
        "as_of": row_as_of,
    }


# Parsing is cached by cell text: a pool of a million cases has a few hundred distinct values per column.
@lru_cache(maxsize=1024)
def _lookup_barrier(value: str) -> str | None:
    return BARRIERS.lookup(value)


@lru_cache(maxsize=1024)
def _lookup_benefit(value: str) -> str | None:
    return BENEFIT_TYPES.lookup(value)


_decimal = lru_cache(maxsize=65536)(parse_decimal)
_date = lru_cache(maxsize=65536)(parse_date)
_BARRIER_ORDER = BARRIERS.ids


def _term(value: str, vocabulary: Any, what: str, fail: Any) -> str | None:
    if not value:
        fail(f"is empty; accepted {what} ids: {vocabulary.accepted()}")
        return None
    term = _lookup_barrier(value) if vocabulary is BARRIERS else _lookup_benefit(value)
    if term is None:
        fail(f"unknown {what} {shown(value)}; accepted: {vocabulary.accepted()} (or their Danish names, "
             "see docs/cases.md)")
    return term


def _barriers(value: str, primary: str | None, fail: Any) -> list[str]:
    """The case's barriers, primary first, then the others in vocabulary order."""
    barriers, messages = _parse_barriers(value, primary)
    for message in messages:
        fail(message)
    return list(barriers)


@lru_cache(maxsize=4096)
def _parse_barriers(value: str, primary: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`_barriers` as a pure function of the cell and the primary barrier (cached: few distinct values)."""
    found: set[str] = set()
    messages: list[str] = []
    for part in value.split(BARRIER_SEPARATOR):
        part = part.strip()
        if not part:
            continue
        term = _lookup_barrier(part)
        if term is None:
            messages.append(f"unknown barrier {shown(part)}; accepted: {BARRIERS.accepted()} (several separated "
                            f"by {BARRIER_SEPARATOR!r})")
            continue
        found.add(term)
    if primary is None:
        return (), tuple(messages)
    found.add(primary)
    if "none" in found and len(found) > 1:
        messages.append(f"'none' cannot be combined with other barriers (the primary barrier is {primary!r})")
    return (primary, *(b for b in _BARRIER_ORDER if b in found and b != primary)), tuple(messages)


def _months(value: str, fail: Any) -> float | None:
    if not value:
        fail("is empty; give the months on benefits as a number (decimal comma accepted)")
        return None
    months = _decimal(value)
    if months is None:
        fail(f"{shown(value)} is not a number")
        return None
    if months < 0:
        fail(f"must be 0 or more, not {months:g}")
        return None
    if months > MAX_MONTHS:
        fail(f"{months:g} months is more than {MAX_MONTHS:g} (50 years); is the column in days or weeks?")
        return None
    return months + 0.0  # -0 is 0


def _covariate_column(values: list[str]) -> list[Any]:
    """Numbers if every non-empty value is one (and none has a leading zero), else text; empty -> None."""
    distinct = {v for v in values if v}
    numbers = {v: _decimal(v) for v in distinct}
    if distinct and all(n is not None for n in numbers.values()) and not any(_LEADING_ZERO.match(v) for v in distinct):
        typed: dict[str, Any] = {
            v: int(n) if n.is_integer() and abs(n) < 2**53 else n for v, n in numbers.items() if n is not None
        }
        return [typed[v] if v else None for v in values]
    return [v or None for v in values]


# --- writing ---------------------------------------------------------------------------

_STATE = ("primary_barrier", "barriers", "months_unemployed", "benefit_type", "caseworker", "team", "as_of",
          "covariates")


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _existing(session: Session, keys: list[str]) -> dict[str, dict[str, Any]]:
    """The stored state of the cases among `keys`, by case key."""
    table = _cases_table()
    columns = [table.c[name] for name in ("id", "case_key", "revision", *_STATE)]
    connection = session.connection()
    total = connection.execute(select(func.count()).select_from(table)).scalar() or 0
    if total == 0:
        return {}
    found: dict[str, dict[str, Any]] = {}
    if total <= 2 * len(keys):
        wanted = set(keys)
        for row in connection.execute(select(*columns)).mappings():
            if row["case_key"] in wanted:
                found[row["case_key"]] = dict(row)
        return found
    for chunk in _chunks(keys, 500):
        for row in connection.execute(select(*columns).where(table.c.case_key.in_(chunk))).mappings():
            found[row["case_key"]] = dict(row)
    return found


def _cases_table() -> SqlTable:
    return Case.__table__  # type: ignore[return-value]


def _history_table() -> SqlTable:
    return CaseHistory.__table__  # type: ignore[return-value]


class _Binder:
    """Values converted once by each column's own bind processor, for plain executemany.

    Going through the typed columns for every row (JSON, the UTC timestamp decorator, dates)
    costs more than the database's own work on a large file; converting each distinct value
    once, and each case's JSON once for both its case and its history row, makes an import
    of 100k cases take seconds.
    """

    def __init__(self, session: Session, table: SqlTable):
        dialect = session.get_bind().dialect
        self.name = table.name
        self.copy = dialect.name == "postgresql"
        self.processors: dict[str, Callable[[Any], Any] | None] = {
            c.name: c.type.dialect_impl(dialect).bind_processor(dialect) for c in table.columns}
        if self.copy:  # COPY takes JSON as text
            for c in table.columns:
                if isinstance(c.type, JSON):
                    self.processors[c.name] = json.dumps
        self.cache: dict[tuple[str, Any], Any] = {}

    def __call__(self, name: str, value: Any, *, cache: bool = False) -> Any:
        processor = self.processors[name]
        if processor is None or value is None:
            return value
        if not cache:
            return processor(value)
        hashable = tuple(value) if isinstance(value, list) else value
        try:
            return self.cache[(name, hashable)]
        except KeyError:
            converted = self.cache[(name, hashable)] = processor(value)
            return converted

    def insert(self, session: Session, rows: list[dict[str, Any]]) -> None:
        """Insert already-converted rows with the driver's executemany (nothing is converted again)."""
        if not rows:
            return
        connection = session.connection()
        dialect = connection.dialect
        quote = dialect.identifier_preparer.quote
        names = list(rows[0])
        if self.copy:  # PostgreSQL: COPY in the same transaction, an order of magnitude faster than INSERTs
            copy_sql = f"COPY {quote(self.name)} ({', '.join(quote(n) for n in names)}) FROM STDIN"
            with connection.connection.dbapi_connection.cursor() as cursor:  # type: ignore[union-attr]
                with cursor.copy(copy_sql) as copy:
                    for row in rows:
                        copy.write_row([row[n] for n in names])
            return
        marker = "?" if dialect.paramstyle == "qmark" else "%s"
        statement = (f"INSERT INTO {quote(self.name)} ({', '.join(quote(n) for n in names)}) "
                     f"VALUES ({', '.join([marker] * len(names))})")
        for chunk in _chunks(rows):
            connection.exec_driver_sql(statement, [tuple(row[n] for n in names) for row in chunk])


def _new_state(record: CaseRecord, old: dict[str, Any] | None, present: frozenset[str]) -> dict[str, Any]:
    """The case after this import: columns the file does not have keep their stored values."""
    state: dict[str, Any] = {
        "primary_barrier": record.primary_barrier,
        "barriers": record.barriers,
        "months_unemployed": record.months_unemployed,
        "benefit_type": record.benefit_type,
        "caseworker": record.caseworker,
        "team": record.team,
        "as_of": record.as_of,
        "covariates": dict(record.covariates),
    }
    if old is None:
        return state
    for canonical in (col.CASEWORKER, col.TEAM):
        if canonical not in present:
            state[canonical] = old[canonical]
    if col.AS_OF not in present and record.as_of is None:
        state["as_of"] = old["as_of"]
    state["covariates"] = {**(old["covariates"] or {}), **record.covariates}
    return state


def write_cases(session: Session, case_file: CaseFile) -> ImportResult:
    """Write a validated file inside a `write_session`; returns the counts and the audit event's seq.

    The records are written in slices of `_SLICE`, so a file of a million cases never holds
    more than one slice's rows ready for the database at a time.
    """
    now = utcnow()
    cases, history_table = _cases_table(), _history_table()
    bind, bind_history = _Binder(session, cases), _Binder(session, history_table)
    stamp = bind("created_at", now)
    existing = _existing(session, [r.case_key for r in case_file.records])
    update_statement = update(cases).where(cases.c.id == bindparam("b_id")).values(
        {name: bindparam(f"b_{name}") for name in ("revision", "updated_at", *_STATE)})
    new = updated = unchanged = 0
    for records in _chunks(case_file.records, _SLICE):
        new_rows: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        history: list[dict[str, Any]] = []
        for record in records:
            old = existing.get(record.case_key)
            state = _new_state(record, old, case_file.present)
            if old is not None and all(old[name] == state[name] for name in _STATE):
                unchanged += 1
                continue
            stored = {
                "primary_barrier": state["primary_barrier"],
                "barriers": bind("barriers", state["barriers"], cache=True),
                "months_unemployed": state["months_unemployed"],
                "benefit_type": state["benefit_type"],
                "caseworker": state["caseworker"],
                "team": state["team"],
                "as_of": bind("as_of", state["as_of"], cache=True),
                "covariates": bind("covariates", state["covariates"]),
            }
            if old is None:
                new_rows.append({"case_key": record.case_key, "id_kind": case_file.id_column, "revision": 1,
                                 "created_at": stamp, "updated_at": stamp, **stored})
            else:
                revision = old["revision"] + 1
                updates.append({"b_id": old["id"], "b_revision": revision, "b_updated_at": now,
                                **{f"b_{name}": value for name, value in state.items()}})
                history.append({"case_id": old["id"], "revision": revision, "recorded_at": stamp,
                                "source_sha256": case_file.sha256, **stored})
        history.extend(_insert_new(session, bind, new_rows, stamp, case_file.sha256))
        for chunk in _chunks(updates):
            session.connection().execute(update_statement, list(chunk))
        bind_history.insert(session, history)
        new += len(new_rows)
        updated += len(updates)

    counts = {"rows": len(case_file.records), "new": new, "updated": updated, "unchanged": unchanged}
    event = record_event(session, "cases_imported", payload={
        "source": case_file.source,
        "sha256": case_file.sha256,
        "id_column": case_file.id_column,
        "covariates": list(case_file.covariate_names),
        **counts,
    })
    return ImportResult(source=case_file.source, sha256=case_file.sha256, id_column=case_file.id_column,
                        audit_seq=event.seq, **counts)


def _insert_new(session: Session, bind: _Binder, new_rows: list[dict[str, Any]], stamp: Any,
                sha256: str) -> list[dict[str, Any]]:
    """Insert new cases; returns their first history rows (which need the ids just given)."""
    if not new_rows:
        return []
    cases = _cases_table()
    # Writers are serialised (write_session), so the new cases are exactly those above the old maximum id.
    connection = session.connection()
    before = connection.execute(select(func.max(cases.c.id))).scalar() or 0
    bind.insert(session, new_rows)
    ids = dict(connection.execute(select(cases.c.case_key, cases.c.id).where(cases.c.id > before)).all())
    if len(ids) != len(new_rows):  # pragma: no cover - only if another writer bypassed write_session
        ids = {}
        for chunk in _chunks([r["case_key"] for r in new_rows], 500):
            ids.update(connection.execute(select(cases.c.case_key, cases.c.id).where(cases.c.case_key.in_(chunk))).all())
    return [{"case_id": ids[row["case_key"]], "revision": 1, "recorded_at": stamp, "source_sha256": sha256,
             **{name: row[name] for name in _STATE}} for row in new_rows]


def import_cases(session: Session, path: Path, key: Key, *, as_of: dt.date | None = None) -> ImportResult:
    """Validate `path` completely, then write it (call inside `trials.db.write_session`)."""
    return write_cases(session, read_case_file(path, key, as_of=as_of))

