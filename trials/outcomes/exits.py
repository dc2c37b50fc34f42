"""`trials outcomes import TRIAL FILE --as-of DATE`: exit records from the case system.

Columns: `case_id` or `cpr` (pseudonymised with the same key as the case import), `exit_date`,
`exit_kind` (an exit-kind id or Danish alias; a benefit type or `return_to_benefit` marks a
return to benefit). The whole file is validated before anything is written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from trials.errors import InputError, Problem
from trials.outcomes.derive import (
    RETURN_TO_BENEFIT,
    Categories,
    Definition,
    ExitHistory,
    derive_exits,
)
from trials.outcomes.snapshots import (
    EnrolledCase,
    create_snapshot,
    enrolled_cases,
    known_case_keys,
    require_trial,
)
from trials.protocol import load_protocol
from trials.pseudonym import case_key, looks_like_cpr
from trials.tabular import match_columns, parse_date, read_table
from trials.vocab import BENEFIT_TYPES, EXIT_KINDS, normalise

ID_ALIASES: dict[str, tuple[str, ...]] = {
    "case_id": ("sagsnummer", "sags_id", "sagsid", "sag", "case"),
    "cpr": ("cpr_nr", "cprnr", "cpr_nummer", "cpr-nummer", "personnummer"),
}
EXIT_ALIASES: dict[str, tuple[str, ...]] = {
    "exit_date": ("afgangsdato", "dato", "date"),
    "exit_kind": ("afgangsårsag", "afgangsaarsag", "afgang", "årsag", "kind"),
}
RETURN_SPELLINGS = frozenset(
    normalise(s) for s in (RETURN_TO_BENEFIT, "return", "retur", "retur til ydelse", "tilbage på ydelse",
                           "tilbagefald")
)


@dataclass(frozen=True)
class ImportResult:
    trial_id: str
    snapshot_id: int
    kind: str
    source_sha256: str
    as_of: dt.date
    cases: int
    events: int
    competing: int
    censored: int
    rows: int

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "as_of": self.as_of.isoformat()}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def id_column(header: list[str], source: str) -> tuple[str, int]:
    """Which identifier column the file has (`case_id` or `cpr`) and its position."""
    found = match_columns(header, ID_ALIASES)
    if len(found) == 2:
        raise InputError([Problem(source, "has both a case_id and a cpr column; give one of them", row=1)])
    if not found:
        raise InputError([Problem(source, "needs a case_id or a cpr column", row=1)])
    name, position = next(iter(found.items()))
    return name, position


def sort_problems(problems: list[Problem]) -> list[Problem]:
    """By row (stable within a row); problems without a row last."""
    return sorted(problems, key=lambda problem: (problem.row is None, problem.row or 0))


def shown_id(value: str, id_kind: str) -> str:
    """A case id fit for a message: never a CPR number."""
    if id_kind == "cpr" or looks_like_cpr(value):
        return "this case"
    return f"case {value.strip()!r}"


def exit_kind_of(value: str) -> str | None:
    """An exit-kind id, a benefit-type id (a return to that benefit), RETURN_TO_BENEFIT, or None."""
    found = EXIT_KINDS.lookup(value)
    if found is not None:
        return found
    found = BENEFIT_TYPES.lookup(value)
    if found is not None:
        return found
    return RETURN_TO_BENEFIT if normalise(value) in RETURN_SPELLINGS else None


def import_exits(session: Session, trial_id: str, path: Path, as_of: dt.date, key: bytes) -> ImportResult:
    """Validate an exit file, derive every enrolled case's outcome, store a new snapshot."""
    require_trial(session, trial_id)
    protocol = load_protocol(session, trial_id)
    definition = Definition.from_protocol(protocol.outcome)
    table = read_table(path)
    source = table.source
    id_kind, id_position = id_column(table.header, source)
    columns = match_columns(table.header, EXIT_ALIASES)
    missing = [name for name in EXIT_ALIASES if name not in columns]
    if missing:
        raise InputError([Problem(source, f"needs a column {name}", row=1) for name in missing])
    enrolled = {case.case_key: case for case in enrolled_cases(session, trial_id)}

    problems: list[Problem] = []
    parsed: list[tuple[int, str, str, dt.date, str]] = []  # row, key, shown, date, kind
    for row_number, cells in table.rows:
        raw_id = cells[id_position]
        key_value = case_key(raw_id, id_kind, key)
        if key_value is None:
            what = "not a valid CPR number" if id_kind == "cpr" and raw_id.strip() else "the case id is empty"
            problems.append(Problem(source, what, row=row_number, column=table.header[id_position]))
        date = parse_date(cells[columns["exit_date"]])
        if date is None:
            problems.append(Problem(source, "not a date (use YYYY-MM-DD or DD-MM-YYYY)", row=row_number,
                                    column=table.header[columns["exit_date"]]))
        elif date > as_of:
            problems.append(Problem(source, f"the exit date is after --as-of {as_of.isoformat()}", row=row_number,
                                    column=table.header[columns["exit_date"]]))
        kind_text = cells[columns["exit_kind"]]
        kind = exit_kind_of(kind_text)
        if kind is None:
            problems.append(Problem(
                source, f"unknown exit kind; accepted: {EXIT_KINDS.accepted()} (or a benefit type / "
                f"{RETURN_TO_BENEFIT} for a return to benefit)", row=row_number,
                column=table.header[columns["exit_kind"]]))
        if key_value is not None and date is not None and kind is not None:
            parsed.append((row_number, key_value, shown_id(raw_id, id_kind), date, kind))

    unknown = {k for _, k, _, _, _ in parsed if k not in enrolled}
    existing = known_case_keys(session, unknown) if unknown else set()
    id_header = table.header[id_position]
    exit_header = table.header[columns["exit_date"]]
    seen: dict[tuple[str, dt.date], tuple[int, str]] = {}
    records: dict[str, list[tuple[dt.date, str]]] = defaultdict(list)
    for row_number, key_value, shown, date, kind in parsed:
        case = enrolled.get(key_value)
        if case is None:
            message = (f"{shown} is not enrolled in trial {trial_id}" if key_value in existing
                       else f"unknown case: {shown} is not in the case pool")
            problems.append(Problem(source, message, row=row_number, column=id_header))
            continue
        if date < case.enrolled_on:
            problems.append(Problem(source, f"the exit is before the enrollment on {case.enrolled_on.isoformat()}",
                                    row=row_number, column=exit_header))
            continue
        earlier = seen.get((key_value, date))
        if earlier is not None:
            if earlier[1] == kind:
                problems.append(Problem(source, f"duplicate of row {earlier[0]}", row=row_number, column=exit_header))
            else:
                problems.append(Problem(source, f"conflicts with row {earlier[0]}: the same case and date with "
                                        "another exit kind", row=row_number, column=table.header[columns["exit_kind"]]))
            continue
        seen[(key_value, date)] = (row_number, kind)
        records[key_value].append((date, kind))
    if problems:
        raise InputError(sort_problems(problems))

    cases = list(enrolled.values())
    categories = Categories(definition)
    histories = [
        ExitHistory(case.enrolled_on, as_of, case.baseline, tuple(sorted(records.get(case.case_key, []))))
        for case in cases
    ]
    rows = derive_exits(histories, definition, categories)
    return _store(session, trial_id, "exits", path, source, as_of, definition, cases, rows, records,
                  options={"protocol_version": _protocol_version(session, trial_id)})


def _protocol_version(session: Session, trial_id: str) -> int:
    from trials.protocol import latest_version

    return latest_version(session, trial_id).version


def _store(session: Session, trial_id: str, kind: str, path: Path, source: str, as_of: dt.date,
           definition: Definition, cases: list[EnrolledCase], rows: list[dict[str, Any]],
           records: dict[str, list[tuple[dt.date, str]]], options: dict[str, Any]) -> ImportResult:
    sha = file_sha256(path)
    outcome_rows = [{"case_id": case.case_id, **row} for case, row in zip(cases, rows, strict=True)]
    exit_rows = [
        (case.case_id, date, exit_kind) for case in cases for date, exit_kind in sorted(records.get(case.case_key, []))
    ]
    snapshot = create_snapshot(
        session, trial_id=trial_id, kind=kind, source_name=source, source_sha256=sha, as_of=as_of,
        options={**options, "definition": definition.as_dict()},
        outcome_batches=[outcome_rows[i:i + 10_000] for i in range(0, len(outcome_rows), 10_000)],
        exit_records=exit_rows,
    )
    events = sum(row["event"] for row in rows)
    competing = sum(1 for row in rows if not row["event"] and row["exit_kind"] in definition.competing_exits)
    return ImportResult(trial_id, snapshot.id, kind, sha, as_of, len(rows), events, competing,
                        len(rows) - events - competing, sum(len(r) for r in records.values()))
