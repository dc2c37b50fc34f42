"""`trials outcomes import-weekly TRIAL FILE --as-of DATE`: weekly benefit histories.

Long format, one row per case and week: `case_id` or `cpr`, `week` (ISO `2025-W07` or the
Monday's date), `status` (a benefit code, mapped to a category by a CodeMapping). The file is
read once, in chunks, into a status matrix of enrolled cases x weeks since enrollment (memory
bounded by cases x weeks, not by the file), validated on the way, and derived with numpy in
blocks of cases. Nothing is written unless the whole file is valid.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy.orm import Session

from trials.errors import InputError, Problem
from trials.outcomes.derive import MISSING, Categories, Definition, derive_matrix
from trials.outcomes.exits import ID_ALIASES, ImportResult, file_sha256, shown_id, sort_problems
from trials.outcomes.mapping import CodeMapping
from trials.outcomes.snapshots import (
    EnrolledCase,
    create_snapshot,
    enrolled_cases,
    known_case_keys,
    require_trial,
)
from trials.protocol import latest_version, load_protocol
from trials.pseudonym import case_key, looks_like_cpr
from trials.tabular import (
    MAX_LINE_BYTES,
    XLSX_MAGIC,
    decode_text,
    detect_delimiter,
    match_columns,
    read_table,
)

if TYPE_CHECKING:
    import pandas as pd

WEEK_ALIASES: dict[str, tuple[str, ...]] = {
    "week": ("uge", "ugenr", "uge_nr", "aarsuge", "årsuge"),
    "status": ("code", "kode", "ydelseskode", "branchekode", "ydelse", "status_code"),
}
CHUNK_ROWS = 500_000
MAX_PROBLEMS = 1000
_ISO_WEEK = re.compile(r"^(\d{4})-?W(\d{1,2})$", re.IGNORECASE)
_NEVER = np.int32(-(2**30))

Progress = Callable[[int], None]


def week_number(day: dt.date) -> int:
    """A running number of the ISO week containing `day` (consecutive weeks differ by 1)."""
    return (day.toordinal() - day.weekday() - 1) // 7


def week_monday(number: int) -> dt.date:
    return dt.date.fromordinal(number * 7 + 1)


def week_label(number: int) -> str:
    year, week, _ = week_monday(number).isocalendar()
    return f"{year}-W{week:02d}"


def parse_week(text: str) -> int | str:
    """The week number of `2025-W07` or of a Monday's date; else a message saying what is wrong."""
    value = text.strip()
    match = _ISO_WEEK.match(value)
    if match:
        try:
            return week_number(dt.date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1))
        except ValueError:
            return f"{value!r} is not an ISO week that exists"
    from trials.tabular import parse_date

    day = parse_date(value)
    if day is None:
        shown = "the value" if looks_like_cpr(value) else repr(value[:40])
        return f"{shown} is not a week (use 2025-W07 or the Monday's date, 2025-02-10)"
    if day.weekday() != 0:
        return f"{day.isoformat()} is not a Monday (give the week as 2025-W07 or its Monday's date)"
    return week_number(day)


@dataclass
class _Scan:
    """State of the one pass over the file."""

    source: str
    n: int
    width: int
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    rows: int = 0

    def problem(self, message: str, row: int | None = None, column: str | None = None) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(self.source, message, row=row, column=column))


class WeeklyReader:
    """Reads and validates a weekly file into the status matrix of the enrolled cases."""

    def __init__(self, session: Session, path: Path, trial_id: str, cases: list[EnrolledCase], as_of: dt.date,
                 key: bytes, mapping: CodeMapping, categories: Categories, width: int, gaps_as_censoring: bool,
                 progress: Progress | None = None, chunk_rows: int = CHUNK_ROWS):
        self.session = session
        self.path = path
        self.trial_id = trial_id
        self.cases = cases
        self.index = {case.case_key: i for i, case in enumerate(cases)}
        self.enroll_week = np.array([week_number(c.enrolled_on) for c in cases], dtype=np.int32)
        self.as_of_week = week_number(as_of)
        self.as_of = as_of
        self.key = key
        self.mapping = mapping
        self.categories = categories
        self.code_of = {code: categories.code(category) for code, category in mapping.codes.items()}
        self.width = width
        self.gaps_as_censoring = gaps_as_censoring
        self.progress = progress
        self.chunk_rows = chunk_rows
        self.sha256 = ""

    # --- reading ------------------------------------------------------------------------

    def read(self) -> tuple[np.ndarray, _Scan]:
        with self.path.open("rb") as handle:
            head = handle.read(1 << 16)
        if not head.strip():
            raise InputError([Problem(self.path.name, "the file is empty")])
        if head.startswith(XLSX_MAGIC):
            self.sha256 = file_sha256(self.path)
            return self._scan(self._xlsx_chunks())
        encoding, delimiter = self._sniff(head)
        self.sha256 = self._check_fields(delimiter)
        try:
            return self._scan(self._csv_chunks(encoding, delimiter))
        except UnicodeDecodeError:
            if encoding == "cp1252":
                raise InputError([Problem(self.path.name, "not UTF-8 or Windows-1252 text")]) from None
            return self._scan(self._csv_chunks("cp1252", delimiter))

    def _check_fields(self, delimiter: str) -> str:
        """One pass over the bytes: the SHA-256, and every line whose number of fields differs from
        the header's (a short row would otherwise read as an empty status). Lines are counted
        directly while the file has no quote character; after one, quoted fields may hold
        delimiters and line breaks, and the CSV parser's own checks take over."""
        digest = hashlib.sha256()
        sep, newline, quote = ord(delimiter), ord("\n"), ord('"')
        expected: int | None = None
        line = 1  # the line number of the first line starting in the current block
        carry_fields, carry_bytes = 0, 0
        quoted = False
        problems: list[Problem] = []
        count = 0
        physical, run = 1, 0  # physical lines (quotes or not) and the current one's length so far
        with self.path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
                data = np.frombuffer(block, dtype=np.uint8)
                physical, run = self._check_line_lengths(data, physical, run)
                if quoted:
                    continue
                if (data == quote).any():
                    quoted = True
                    continue
                ends = np.flatnonzero(data == newline)
                # separators per line: which line each separator falls in (the last bin is the
                # unfinished line carried into the next block)
                per_line = np.bincount(np.searchsorted(ends, np.flatnonzero(data == sep)), minlength=len(ends) + 1)
                fields = per_line[:-1].astype(np.int64)
                lengths = np.empty(len(ends), dtype=np.int64)
                if len(ends):
                    fields[0] += carry_fields
                    lengths[0] = ends[0] + carry_bytes
                    lengths[1:] = np.diff(ends) - 1
                    carry_fields = int(per_line[-1])
                    carry_bytes = len(data) - int(ends[-1]) - 1
                else:
                    carry_fields += int(per_line[-1])
                    carry_bytes += len(data)
                if expected is None and len(ends):
                    expected = int(fields[0])
                line_start = line
                line += len(ends)
                blank = (lengths == 0) | ((lengths == 1) & (data[np.maximum(ends - 1, 0)] == ord("\r")))
                if expected is None:
                    continue
                bad = np.flatnonzero((fields != expected) & ~blank)
                for i in bad:
                    count += 1
                    if len(problems) < MAX_PROBLEMS:
                        problems.append(Problem(self.path.name, f"has {int(fields[i]) + 1} fields, the header has "
                                                f"{expected + 1}", row=line_start + int(i)))
        if not quoted and carry_bytes and expected is not None and carry_fields != expected:
            count += 1
            problems.append(Problem(self.path.name, f"has {carry_fields + 1} fields, the header has {expected + 1} "
                                    "(is the file cut short?)", row=line))
        if problems:
            extra: list[Problem | str] = []
            if count > len(problems):
                extra.append(f"{self.path.name}: ... and {count - len(problems)} more problems")
            raise InputError([*problems, *extra])
        return digest.hexdigest()

    def _check_line_lengths(self, data: np.ndarray, physical: int, run: int) -> tuple[int, int]:
        """Refuse the file at the first line longer than MAX_LINE_BYTES (a damaged or hostile file
        would otherwise reach the CSV parser, which holds a whole line in memory)."""
        ends = np.flatnonzero(data == ord("\n"))
        lengths = np.diff(np.concatenate(([-1 - run], ends, [len(data)]))) - 1
        longest = int(np.argmax(lengths))
        if lengths[longest] > MAX_LINE_BYTES:
            raise InputError([Problem(self.path.name, f"a line is longer than {MAX_LINE_BYTES} bytes: not a table "
                                      "(is this the right file?)", row=physical + longest)])
        return physical + len(ends), int(lengths[-1])

    def _sniff(self, head: bytes) -> tuple[str, str]:
        if b"\x00" in head:
            raise InputError([Problem(self.path.name, "binary data, not a text CSV file")])
        if head.startswith(b"\xef\xbb\xbf"):
            encoding = "utf-8-sig"
        else:
            try:
                head.decode("utf-8")
                encoding = "utf-8"
            except UnicodeDecodeError as exc:
                encoding = "utf-8" if exc.start >= len(head) - 3 else "cp1252"
        text = decode_text(head[: head.rfind(b"\n") + 1] or head, self.path.name)
        first = next((line for line in text.splitlines() if line.strip()), "")
        return encoding, detect_delimiter(first)

    def _csv_chunks(self, encoding: str, delimiter: str) -> Iterator[tuple[list[str], Any, np.ndarray]]:
        import pandas as pd

        with self.path.open("rb") as handle:
            try:
                reader = pd.read_csv(
                    handle, sep=delimiter, dtype=str, keep_default_na=False, na_filter=False,
                    skip_blank_lines=False, chunksize=self.chunk_rows, encoding=encoding, engine="c",
                )
                start = 2
                for chunk in reader:
                    header = [str(c).strip() for c in chunk.columns]
                    numbers = np.arange(start, start + len(chunk), dtype=np.int64)
                    start += len(chunk)
                    yield header, chunk, numbers
                    if self.progress is not None:
                        self.progress(handle.tell())
            except pd.errors.ParserError as exc:
                line = re.search(r"line (\d+)", str(exc))
                raise InputError([Problem(self.path.name, f"cannot be read as CSV ({str(exc).strip()})",
                                          row=int(line.group(1)) if line else None)]) from None
            except pd.errors.EmptyDataError:
                raise InputError([Problem(self.path.name, "the file is empty")]) from None

    def _xlsx_chunks(self) -> Iterator[tuple[list[str], Any, np.ndarray]]:
        import pandas as pd

        table = read_table(self.path)
        frame = pd.DataFrame([cells for _, cells in table.rows], columns=table.header, dtype=str)
        yield table.header, frame, np.array([n for n, _ in table.rows], dtype=np.int64)

    # --- validating ---------------------------------------------------------------------

    def _scan(self, chunks: Iterator[tuple[list[str], Any, np.ndarray]]) -> tuple[np.ndarray, _Scan]:
        n, width = len(self.cases), self.width
        scan = _Scan(self.path.name, n, width)
        matrix = np.full((n, width), MISSING, dtype=np.int16)
        last_week = np.full(n, _NEVER, dtype=np.int32)
        last_code = np.full(n, MISSING, dtype=np.int16)
        seen = np.zeros(n, dtype=bool)
        outsiders: dict[str, tuple[int, int, str]] = {}  # key -> first row, rows, shown
        header_checked = False
        columns: dict[str, int] = {}
        id_kind = id_header = ""
        for header, chunk, numbers in chunks:
            if not header_checked:
                id_kind, columns = self._columns(header)
                id_header = header[columns["id"]]
                header_checked = True
            self._chunk(scan, header, chunk, numbers, id_kind, columns, matrix, last_week, last_code, seen, outsiders)
        if not header_checked:
            raise InputError([Problem(self.path.name, "has a header but no data rows")])
        if scan.rows == 0:
            scan.problem("has a header but no data rows")
        self._outsiders(scan, outsiders, header_name=id_header)
        self._missing_histories(scan, seen, id_header)
        return matrix, scan

    def _columns(self, header: list[str]) -> tuple[str, dict[str, int]]:
        source = self.path.name
        ids = match_columns(header, ID_ALIASES)
        problems = []
        if len(ids) == 2:
            problems.append(Problem(source, "has both a case_id and a cpr column; give one of them", row=1))
        elif not ids:
            problems.append(Problem(source, "needs a case_id or a cpr column", row=1))
        columns = match_columns(header, WEEK_ALIASES)
        problems += [Problem(source, f"needs a column {name}", row=1) for name in WEEK_ALIASES if name not in columns]
        if problems:
            raise InputError(problems)
        id_kind, position = next(iter(ids.items()))
        return id_kind, {"id": position, **columns}

    def _chunk(self, scan: _Scan, header: list[str], chunk: pd.DataFrame, numbers: np.ndarray, id_kind: str,
               columns: dict[str, int], matrix: np.ndarray, last_week: np.ndarray, last_code: np.ndarray,
               seen: np.ndarray, outsiders: dict[str, tuple[int, int, str]]) -> None:
        import pandas as pd

        id_col, week_col, status_col = header[columns["id"]], header[columns["week"]], header[columns["status"]]
        ids, weeks, statuses = (chunk.iloc[:, columns[name]].to_numpy(dtype=object) for name in ("id", "week", "status"))
        empty_id = ids == ""
        if empty_id.any():
            blank = empty_id & (weeks == "") & (statuses == "")
            if blank.any():
                ids, weeks, statuses, numbers = ids[~blank], weeks[~blank], statuses[~blank], numbers[~blank]
        scan.rows += len(ids)
        if not len(ids):
            return

        # Cases: each distinct identifier is pseudonymised and looked up once.
        id_codes, id_uniques = pd.factorize(ids)
        person_of = np.empty(len(id_uniques), dtype=np.int64)
        keys: list[str | None] = []
        for u, raw in enumerate(id_uniques):
            key_value = case_key(str(raw), id_kind, self.key)
            keys.append(key_value)
            if key_value is None:
                person_of[u] = -2
            else:
                person_of[u] = self.index.get(key_value, -3)
        person = person_of[id_codes]
        if (person_of == -3).any():
            outside = np.flatnonzero(person == -3)
            uniques, first_at, counts = np.unique(id_codes[outside], return_index=True, return_counts=True)
            for u, at, count in zip(uniques.tolist(), first_at.tolist(), counts.tolist(), strict=True):
                key_value = keys[u]
                assert key_value is not None
                row = int(numbers[outside[at]])
                first, seen_rows, shown = outsiders.get(key_value, (row, 0, shown_id(str(id_uniques[u]), id_kind)))
                outsiders[key_value] = (min(first, row), seen_rows + count, shown)
        for row in numbers[person == -2][: MAX_PROBLEMS]:
            empty = id_kind != "cpr"
            scan.problem("the case id is empty" if empty else "not a valid CPR number", int(row), id_col)
        scan.problem_count += max(0, int((person == -2).sum()) - MAX_PROBLEMS)

        # Weeks.
        week_codes, week_uniques = pd.factorize(weeks)
        parsed = [parse_week(str(w)) for w in week_uniques]
        week_of = np.array([w if isinstance(w, int) else _NEVER for w in parsed], dtype=np.int64)
        week = week_of[week_codes]
        for u, result in enumerate(parsed):
            if isinstance(result, str):
                for row in numbers[week_codes == u][:MAX_PROBLEMS]:
                    scan.problem(result, int(row), week_col)
        after = (week != _NEVER) & (week > self.as_of_week)
        for row in numbers[after][:MAX_PROBLEMS]:
            scan.problem(f"the week begins after --as-of {self.as_of.isoformat()}", int(row), week_col)

        # Status codes.
        status_codes, status_uniques = pd.factorize(statuses)
        code_of = np.array([self.code_of.get(str(s).strip(), MISSING) for s in status_uniques], dtype=np.int16)
        code = code_of[status_codes]
        for row in numbers[code == MISSING][:MAX_PROBLEMS]:
            scan.problem("unknown benefit code: not in the code mapping "
                         f"({self.mapping.source}; see docs/outcomes.md)", int(row), status_col)

        # Order, duplicates, conflicts and gaps per case (stable sort keeps the file order).
        usable = (person >= 0) & (week != _NEVER) & ~after
        idx = np.flatnonzero(usable)
        order = idx[np.argsort(person[idx], kind="stable")]
        p, w, c, r = person[order], week[order].astype(np.int32), code[order], numbers[order]
        if not len(p):
            return
        starts = np.ones(len(p), dtype=bool)
        starts[1:] = p[1:] != p[:-1]
        prev_week = np.empty_like(w)
        prev_week[1:] = w[:-1]
        prev_week[starts] = last_week[p[starts]]
        prev_code = np.empty_like(c)
        prev_code[1:] = c[:-1]
        prev_code[starts] = last_code[p[starts]]
        backwards = w < prev_week
        repeated = w == prev_week
        relative = w - self.enroll_week[p]
        prev_relative = np.maximum(prev_week - self.enroll_week[p], -1)
        gap = ~backwards & ~repeated & (relative >= 0) & (relative > prev_relative + 1)
        for i in np.flatnonzero(backwards)[:MAX_PROBLEMS]:
            scan.problem(f"week {week_label(int(w[i]))} comes after week {week_label(int(prev_week[i]))} of the same "
                         "case: weeks must increase within a case", int(r[i]), week_col)
        for i in np.flatnonzero(repeated)[:MAX_PROBLEMS]:
            if c[i] == prev_code[i]:
                scan.problem(f"duplicate (case, week): week {week_label(int(w[i]))} of this case appears twice",
                             int(r[i]), week_col)
            else:
                scan.problem(f"conflicting rows: week {week_label(int(w[i]))} of this case appears with another "
                             "status", int(r[i]), status_col)
        if not self.gaps_as_censoring:
            for i in np.flatnonzero(gap)[:MAX_PROBLEMS]:
                missing_from = int(self.enroll_week[p[i]] + prev_relative[i] + 1)
                scan.problem(f"gap in the weekly history: weeks {week_label(missing_from)} to "
                             f"{week_label(int(w[i]) - 1)} are missing (use --gaps-as-censoring to censor at the gap)",
                             int(r[i]), week_col)
        last = np.ones(len(p), dtype=bool)
        last[:-1] = p[1:] != p[:-1]
        np.maximum.at(last_week, p, w)
        last_code[p[last]] = c[last]

        # A week seen before, but not on the row just before (in an earlier chunk, or before a
        # backwards row): the matrix and the chunk's own (case, week) keys tell.
        window = ~backwards & ~repeated & (relative >= 0) & (relative < self.width)
        rows_in = np.flatnonzero(window)
        cells = p[rows_in].astype(np.int64) * self.width + relative[rows_in]
        by_cell = np.argsort(cells, kind="stable")
        again = np.zeros(len(rows_in), dtype=bool)
        earlier_code = np.full(len(rows_in), MISSING, dtype=np.int16)
        if len(rows_in):
            same = cells[by_cell][1:] == cells[by_cell][:-1]
            again[by_cell[1:][same]] = True
            earlier_code[by_cell[1:][same]] = c[rows_in][by_cell[:-1][same]]
            stored = matrix[p[rows_in], relative[rows_in]]
            before = stored != MISSING
            earlier_code = np.where(before, stored, earlier_code)
            again |= before
        for j in np.flatnonzero(again)[:MAX_PROBLEMS]:
            i = rows_in[j]
            label = week_label(int(w[i]))
            if c[i] == earlier_code[j]:
                scan.problem(f"duplicate (case, week): week {label} of this case appears twice", int(r[i]), week_col)
            else:
                scan.problem(f"conflicting rows: week {label} of this case appears with another status",
                             int(r[i]), status_col)
        inside = np.zeros(len(p), dtype=bool)
        inside[rows_in[~again]] = True
        inside &= c != MISSING
        seen[p[relative >= 0]] = True
        matrix[p[inside], relative[inside]] = c[inside]

    def _outsiders(self, scan: _Scan, outsiders: dict[str, tuple[int, int, str]], header_name: str) -> None:
        if not outsiders:
            return
        in_pool = known_case_keys(self.session, outsiders)
        for key_value, (first, count, shown) in sorted(outsiders.items(), key=lambda item: item[1][0]):
            more = f" ({count} rows)" if count > 1 else ""
            if key_value in in_pool:
                scan.problem(f"{shown} is not enrolled in trial {self.trial_id}{more}", first, header_name)
            else:
                scan.problem(f"unknown case: {shown} is not in the case pool{more}", first, header_name)

    def _missing_histories(self, scan: _Scan, seen: np.ndarray, id_header: str) -> None:
        if self.gaps_as_censoring:
            return
        expected = self.enroll_week <= self.as_of_week
        for i in np.flatnonzero(expected & ~seen)[:MAX_PROBLEMS]:
            case = self.cases[int(i)]
            name = (f"case {case.case_key!r}" if case.id_kind == "case_id" and not looks_like_cpr(case.case_key)
                    else f"the case with pseudonym {case.case_key[:12]}…")
            scan.problem(f"{name} is enrolled but has no weeks from its enrollment week "
                         f"{week_label(int(self.enroll_week[i]))} on (a gap; use --gaps-as-censoring to censor it)",
                         None, id_header)


def import_weekly(session: Session, trial_id: str, path: Path, as_of: dt.date, key: bytes, mapping: CodeMapping,
                  *, gaps_as_censoring: bool = False, progress: Progress | None = None,
                  chunk_rows: int = CHUNK_ROWS) -> ImportResult:
    """Validate a weekly file, derive every enrolled case's outcome, store a new snapshot."""
    require_trial(session, trial_id)
    protocol = load_protocol(session, trial_id)
    definition = Definition.from_protocol(protocol.outcome)
    categories = Categories(definition, mapping.codes.values())
    cases = enrolled_cases(session, trial_id)
    if not path.exists():
        raise InputError([Problem(str(path), "file not found")])
    if path.is_dir():
        raise InputError([Problem(str(path), "is a folder, not a file")])
    reader = WeeklyReader(session, path, trial_id, cases, as_of, key, mapping, categories, definition.width,
                          gaps_as_censoring, progress, chunk_rows)
    matrix, scan = reader.read()
    if scan.problem_count:
        problems: list[Problem | str] = list(sort_problems(scan.problems))
        if scan.problem_count > len(scan.problems):
            problems.append(f"{path.name}: ... and {scan.problem_count - len(scan.problems)} more problems")
        raise InputError(problems)

    derived = derive_matrix(matrix, categories.classes, definition)
    del matrix
    sha = reader.sha256
    options = {
        "protocol_version": latest_version(session, trial_id).version,
        "gaps_as_censoring": gaps_as_censoring,
        "mapping": mapping.source,
        "definition": definition.as_dict(),
    }

    def batches() -> Iterator[list[dict[str, Any]]]:
        size = 10_000
        for start in range(0, len(cases), size):
            part = _slice(derived, start, start + size)
            rows = part.rows(categories)
            yield [{"case_id": case.case_id, **row} for case, row in zip(cases[start:start + size], rows, strict=True)]

    snapshot = create_snapshot(
        session, trial_id=trial_id, kind="weekly", source_name=path.name, source_sha256=sha,
        mapping_sha256=mapping.sha256, as_of=as_of, options=options, outcome_batches=batches(),
    )
    events = int(derived.event.sum())
    competing_codes = [categories.code(k) for k in definition.competing_exits]
    competing = int((~derived.event.astype(bool) & np.isin(derived.exit_code, competing_codes)).sum())
    return ImportResult(trial_id, snapshot.id, "weekly", sha, as_of, len(cases), events, competing,
                        len(cases) - events - competing, scan.rows)


def _slice(derived: Any, start: int, stop: int) -> Any:
    from trials.outcomes.derive import Derived

    return Derived(
        derived.time_weeks[start:stop], derived.event[start:stop], derived.exit_code[start:stop],
        {h: v[start:stop] for h, v in derived.weeks_on_support.items()},
        {h: v[start:stop] for h, v in derived.status.items()},
        derived.relapses[start:stop], derived.weeks_observed[start:stop],
    )
