"""Reading the tables users hand us: CSV as Danish offices export it, and XLSX.

Every importer goes through here so that files are read one way: `,` or `;` detected, UTF-8
with or without BOM falling back to Windows-1252, rows numbered as a spreadsheet shows them
(the header is row 1), and every problem reported with file, row and column.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from trials.errors import InputError, Problem
from trials.pseudonym import looks_like_cpr
from trials.vocab import normalise

XLSX_MAGIC = b"PK\x03\x04"
MAX_FIELD_CHARS = 10_000
# No line a person or an export writes is this long; a file with one is refused as soon as it is
# seen, so that a damaged or hostile file (a 1 GB line) is not read into memory first.
MAX_LINE_BYTES = 1 << 20
# A sheet holds at most 1,048,576 rows; a case or exit workbook near that is far below this.
MAX_XLSX_BYTES = 256 << 20
_BLOCK = 1 << 20
_NO_DELIMITER = "\x1f"  # the ASCII unit separator, never in a typed value


@dataclass(frozen=True)
class Table:
    """A header and its data rows; `rows` pairs each row's spreadsheet number with its cells."""

    source: str
    header: list[str]
    rows: list[tuple[int, list[str]]]


def decode_text(data: bytes, source: str) -> str:
    """UTF-8 (BOM stripped), else Windows-1252; binary data is an input error."""
    if b"\x00" in data:
        raise InputError([Problem(source, "binary data, not a text CSV file")])
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        raise InputError([Problem(source, "not UTF-8 or Windows-1252 text")]) from None


def detect_delimiter(first_line: str) -> str:
    """`;` when the header has more semicolons than commas outside quotes, else `,`."""
    unquoted = re.sub(r'"[^"]*"', "", first_line)
    return ";" if unquoted.count(";") > unquoted.count(",") else ","


def read_table(path: Path) -> Table:
    """Read a CSV or XLSX file (chosen by content, not by name) into a `Table`."""
    source = path.name
    return read_table_data(read_file(path, source), source)


def read_file(path: Path, source: str) -> bytes:
    """The bytes of a table file, read block by block: a text file with binary data or with a
    line longer than MAX_LINE_BYTES is refused as soon as that is seen, without reading on."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise InputError([Problem(str(path), "file not found")]) from None
    except IsADirectoryError:
        raise InputError([Problem(str(path), "is a folder, not a file")]) from None
    with handle:
        block = handle.read(_BLOCK)
        if block.startswith(XLSX_MAGIC):
            if os.fstat(handle.fileno()).st_size > MAX_XLSX_BYTES:
                raise InputError([Problem(source, f"a workbook larger than {MAX_XLSX_BYTES >> 20} MiB: "
                                          "save the sheet as CSV instead")])
            return block + handle.read()
        blocks = []
        line, carried = 1, 0  # the current line's number and its length so far
        while block:
            if b"\x00" in block:
                raise InputError([Problem(source, "binary data, not a text CSV file")])
            lengths = [len(part) for part in block.split(b"\n")]
            lengths[0] += carried
            if max(lengths) > MAX_LINE_BYTES:
                row = line + next(i for i, n in enumerate(lengths) if n > MAX_LINE_BYTES)
                raise InputError([Problem(source, f"a line is longer than {MAX_LINE_BYTES} bytes: "
                                          "not a table (is this the right file?)", row=row)])
            line += len(lengths) - 1
            carried = lengths[-1]
            blocks.append(block)
            block = handle.read(_BLOCK)
    return b"".join(blocks)


def read_table_data(data: bytes, source: str) -> Table:
    """Parse the bytes of a CSV or XLSX file (for callers that also hash exactly these bytes)."""
    if not data.strip():
        raise InputError([Problem(source, "the file is empty")])
    if data.startswith(XLSX_MAGIC):
        return _read_xlsx(data, source)
    return read_csv_text(decode_text(data, source), source)


def read_csv_text(text: str, source: str) -> Table:
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    delimiter = detect_delimiter(first)
    if not re.search(r"[,;]", re.sub(r'"[^"]*"', "", first)):
        # A one-column header: a comma or semicolon in a value is data, not a second field.
        delimiter = _NO_DELIMITER
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    problems: list[Problem] = []
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    try:
        for cells in reader:
            number = reader.line_num
            stripped = [cell.strip() for cell in cells]
            if not any(stripped):
                continue
            if max(map(len, cells)) > MAX_FIELD_CHARS:
                problems.append(Problem(source, f"a field is longer than {MAX_FIELD_CHARS} characters", row=number))
                continue
            if header is None:
                header = stripped
                continue
            if len(cells) != len(header):
                problems.append(Problem(source, f"has {len(cells)} fields, the header has {len(header)}", row=number))
                continue
            rows.append((number, stripped))
    except csv.Error as exc:
        problems.append(Problem(source, f"cannot be read as CSV ({exc})", row=reader.line_num))
    if header is None:
        raise InputError(problems or [Problem(source, "the file is empty")])
    return _table(source, header, rows, problems)


def _read_xlsx(data: bytes, source: str) -> Table:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # openpyxl raises many kinds for a damaged file
        raise InputError([Problem(source, "not a readable XLSX workbook")]) from None
    try:
        sheet = workbook.worksheets[0]
        problems: list[Problem] = []
        header: list[str] | None = None
        rows: list[tuple[int, list[str]]] = []
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            cells = [_xlsx_cell(v) for v in values]
            if not any(cells):
                continue
            if header is None:
                while cells and not cells[-1]:
                    cells.pop()
                header = cells
                continue
            extra = cells[len(header):]
            if any(extra):
                problems.append(Problem(source, f"has values beyond the {len(header)} header columns", row=number))
                continue
            cells = (cells + [""] * len(header))[: len(header)]
            rows.append((number, cells))
    finally:
        workbook.close()
    if header is None:
        raise InputError([Problem(source, "the workbook's first sheet is empty")])
    return _table(source, header, rows, problems)


def _table(source: str, header: list[str], rows: list[tuple[int, list[str]]], problems: list[Problem]) -> Table:
    """The read table, or every problem found (header problems first)."""
    problems[:0] = _header_problems(header, source)
    if not rows and not problems:
        problems.append(Problem(source, "has a header but no data rows"))
    if problems:
        raise InputError(problems)
    return Table(source, header, rows)


def _xlsx_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value).strip()


def _header_problems(header: list[str], source: str) -> list[Problem]:
    problems = []
    seen: set[str] = set()
    for position, name in enumerate(header, start=1):
        if not name:
            problems.append(Problem(source, f"header column {position} has no name", row=1))
        elif normalise(name) in seen:
            shown = "(a name shaped like a CPR number, not shown)" if looks_like_cpr(name) else repr(name)
            problems.append(Problem(source, f"the column {shown} appears twice", row=1))
        seen.add(normalise(name))
    return problems


def match_columns(header: list[str], aliases: Mapping[str, Iterable[str]]) -> dict[str, int]:
    """Map canonical column names to header positions, case- and accent-insensitively.

    `aliases` gives each canonical name the other spellings accepted (e.g. Danish). Header
    columns that match nothing are left for the caller (e.g. as covariates).
    """
    lookup: dict[str, str] = {}
    for canonical, spellings in aliases.items():
        for spelling in (canonical, *spellings):
            lookup[normalise(spelling)] = canonical
    found: dict[str, int] = {}
    for position, name in enumerate(header):
        match = lookup.get(normalise(name))
        if match is not None and match not in found:
            found[match] = position
    return found


_DANISH_NUMBER = re.compile(r"^[+-]?\d{1,3}(\.\d{3})+(,\d+)?$")
_ASCII_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", re.ASCII)


def parse_decimal(text: str) -> float | None:
    """A number written with a decimal point or a decimal comma (1.234,5 too); None if not one."""
    value = text.strip().replace("\u00a0", "").replace(" ", "")
    if not value:
        return None
    if _DANISH_NUMBER.match(value):
        value = value.replace(".", "")
    value = value.replace(",", ".")
    # float() alone would also take "1_000", "inf" spelled out, and non-ASCII digits.
    if not _ASCII_NUMBER.fullmatch(value):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if number != number or number in (float("inf"), float("-inf")):
        return None
    return number


def parse_date(text: str) -> dt.date | None:
    """ISO (2025-02-17) or Danish (17-02-2025, 17.02.2025, 17/02/2025) dates; None if neither."""
    value = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value, re.ASCII):
            return dt.date.fromisoformat(value)
        return _danish_date(value)
    except ValueError:
        return None


def _danish_date(value: str) -> dt.date | None:
    match = re.fullmatch(r"(\d{1,2})[-./](\d{1,2})[-./](\d{4})", value, re.ASCII)
    if not match:
        return None
    day, month, year = (int(g) for g in match.groups())
    return dt.date(year, month, day)


_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def neutralise_formula(value: str) -> str:
    """Prefix a quote to text a spreadsheet would run as a formula (=, +, -, @); numbers pass."""
    if value[:1] in ("=", "+", "-", "@") and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value
