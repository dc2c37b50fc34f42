"""Reading users' tables: CSV as Danish offices export it, XLSX, numbers and dates."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trials.errors import InputError
from trials.tabular import (
    MAX_FIELD_CHARS,
    detect_delimiter,
    match_columns,
    neutralise_formula,
    parse_date,
    parse_decimal,
    read_table,
    read_table_data,
)


def _xlsx(rows: list[list[Any]], *, sheets: int = 1) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    for index in range(1, sheets):
        workbook.create_sheet(f"extra{index}").append(["ignored"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(("data", "delimiter", "header"), [
    (b"a,b,c\n1,2,3\n", ",", ["a", "b", "c"]),
    (b"a;b;c\n1;2;3\n", ";", ["a", "b", "c"]),
    (b'"x;y",b\n1,2\n', ",", ["x;y", "b"]),
    (b'a;"x,y,z"\n1;2\n', ";", ["a", "x,y,z"]),
])
def test_delimiter_is_detected_from_the_header(data: bytes, delimiter: str, header: list[str]) -> None:
    assert read_table_data(data, "t.csv").header == header
    assert detect_delimiter(data.decode().splitlines()[0]) == delimiter


def test_a_one_column_file_keeps_commas_and_semicolons_in_its_values() -> None:
    """Found by the round-trip property below: with no delimiter in the header, `,` in a value
    used to split it into two fields."""
    table = read_table_data(b"navn\nHansen, Jens\n;\n", "t.csv")
    assert table.rows == [(2, ["Hansen, Jens"]), (3, [";"])]


def test_bom_cp1252_and_crlf() -> None:
    expected = (["navn", "by"], [(2, ["Søren", "Århus"])])
    for data in (b"\xef\xbb\xbfnavn;by\r\nS\xc3\xb8ren;\xc3\x85rhus\r\n", "navn;by\nSøren;Århus\n".encode("cp1252")):
        table = read_table_data(data, "t.csv")
        assert (table.header, table.rows) == expected


def test_rows_are_numbered_as_a_spreadsheet_shows_them_and_blank_lines_are_skipped() -> None:
    table = read_table_data(b"\na,b\n1,2\n\n , \n3,4\n", "t.csv")
    assert table.header == ["a", "b"]
    assert table.rows == [(3, ["1", "2"]), (6, ["3", "4"])]


def test_cells_are_stripped_and_quotes_removed() -> None:
    table = read_table_data(b' a , "b" \n" x, y ", 2 \n', "t.csv")
    assert table.header == ["a", '"b"']  # a quote after a space is text, as in a spreadsheet
    assert table.rows == [(2, ["x, y", "2"])]


@pytest.mark.parametrize(("data", "message"), [
    (b"", "t.csv: the file is empty"),
    (b" \n\n", "t.csv: the file is empty"),
    (b"a,b\n", "t.csv: has a header but no data rows"),
    (b"a,b\x00\n1,2\n", "t.csv: binary data, not a text CSV file"),
    (b"a,b\n\x81,\x8d\n", "t.csv: not UTF-8 or Windows-1252 text"),
    (b"a,b\n1,2,3\n4\n", "t.csv, row 2: has 3 fields, the header has 2"),
    (b"a,,c\n1,2,3\n", "t.csv, row 1: header column 2 has no name"),
    (b"Alder,alder\n1,2\n", "t.csv, row 1: the column 'alder' appears twice"),
    (b'a,b\n"1,2\n', "t.csv, row 2: cannot be read as CSV"),
    (b"a,b\n" + b"x" * (MAX_FIELD_CHARS + 1) + b",1\n", f"t.csv, row 2: a field is longer than {MAX_FIELD_CHARS}"),
])
def test_malformed_csv(data: bytes, message: str) -> None:
    with pytest.raises(InputError) as caught:
        read_table_data(data, "t.csv")
    assert any(line.startswith(message) for line in caught.value.lines()), caught.value.lines()


def test_every_ragged_row_is_reported() -> None:
    with pytest.raises(InputError) as caught:
        read_table_data(b"a,b\n1\n1,2\n1,2,3\n", "t.csv")
    assert [p.row for p in caught.value.problems] == [2, 4]


def test_xlsx_cells_become_text_as_a_person_would_type_them() -> None:
    data = _xlsx([
        ["id", "n", "x", "when", "flag", None, None],
        ["A", 5.0, 2.5, dt.datetime(2025, 1, 31), True],
        [None, None, None, None, None],
        ["B", 7, -0.125, dt.datetime(2025, 1, 31, 12, 30), False],
    ], sheets=2)
    table = read_table_data(data, "t.xlsx")
    assert table.header == ["id", "n", "x", "when", "flag"]
    assert table.rows == [(2, ["A", "5", "2.5", "2025-01-31", "1"]),
                          (4, ["B", "7", "-0.125", "2025-01-31T12:30:00", "0"])]


@pytest.mark.parametrize(("rows", "message"), [
    ([["id", "n"], ["A", 1, "extra"]], "t.xlsx, row 2: has values beyond the 2 header columns"),
    ([], "t.xlsx: the workbook's first sheet is empty"),
    ([["id", "n"]], "t.xlsx: has a header but no data rows"),
    ([["id", None, "n"], ["A", 1, 2]], "t.xlsx, row 1: header column 2 has no name"),
])
def test_malformed_xlsx(rows: list[list[Any]], message: str) -> None:
    with pytest.raises(InputError) as caught:
        read_table_data(_xlsx(rows), "t.xlsx")
    assert any(line.startswith(message) for line in caught.value.lines()), caught.value.lines()


def test_damaged_xlsx_and_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a readable XLSX workbook"):
        read_table_data(b"PK\x03\x04 not a zip", "t.xlsx")
    with pytest.raises(InputError, match="file not found"):
        read_table(tmp_path / "missing.csv")
    with pytest.raises(InputError, match="is a folder"):
        read_table(tmp_path)
    path = tmp_path / "named.csv"
    path.write_bytes(b"a\n1\n")
    assert read_table(path).source == "named.csv"


def test_match_columns_is_case_and_accent_insensitive() -> None:
    aliases = {"months_unemployed": ["måneder på ledighed"], "team": []}
    found = match_columns(["ID", "MAANEDER_PAA_LEDIGHED", "Team", "team", "other"], aliases)
    assert found == {"months_unemployed": 1, "team": 2}


@pytest.mark.parametrize(("text", "value"), [
    ("12", 12.0), ("12.5", 12.5), ("12,5", 12.5), (" 7,25 ", 7.25), ("-3", -3.0), ("+4", 4.0), (".5", 0.5),
    ("1.234,5", 1234.5), ("1.234.567", 1234567.0), ("1 234,5", 1234.5), ("1\u00a0234", 1234.0), ("1e3", 1000.0),
    ("", None), ("  ", None), ("tre", None), ("1,2,3", None), ("nan", None), ("inf", None), ("-Infinity", None),
    ("1e999", None), ("1_000", None), ("٣", None), ("12abc", None), ("0x10", None),
])
def test_parse_decimal(text: str, value: float | None) -> None:
    assert parse_decimal(text) == value


@pytest.mark.parametrize(("text", "value"), [
    ("2025-02-17", dt.date(2025, 2, 17)), ("17-02-2025", dt.date(2025, 2, 17)), ("17.02.2025", dt.date(2025, 2, 17)),
    ("17/2/2025", dt.date(2025, 2, 17)), (" 1-1-2025 ", dt.date(2025, 1, 1)),
    ("2025-02-30", None), ("31-02-2025", None), ("17-02-25", None), ("2025/02/17", None), ("", None),
    ("i går", None), ("٢٠٢٥-٠٢-١٧", None),
])
def test_parse_date(text: str, value: dt.date | None) -> None:
    assert parse_date(text) == value


@pytest.mark.parametrize(("text", "shown"), [
    ("=SUM(A1)", "'=SUM(A1)"), ("+45 1234", "'+45 1234"), ("-", "'-"), ("@cmd", "'@cmd"),
    ("-3.5", "-3.5"), ("+4", "+4"), ("1e5", "1e5"), ("plain", "plain"), ("", ""),
])
def test_neutralise_formula(text: str, shown: str) -> None:
    assert neutralise_formula(text) == shown


CELL = st.text(alphabet="abcæøåXYZ 019,;\"'\n-", max_size=12)


@settings(max_examples=60, deadline=None)
@given(header=st.lists(st.text("abcdefghij", min_size=1, max_size=6), min_size=1, max_size=5, unique=True),
       data=st.data(), delimiter=st.sampled_from([",", ";"]), encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp1252"]))
def test_any_table_written_by_a_csv_writer_reads_back(header: list[str], data: st.DataObject, delimiter: str,
                                                      encoding: str) -> None:
    """Round trip: what csv.writer writes (quoting as needed) reads back cell for cell, stripped,
    with blank rows skipped - whichever delimiter and encoding."""
    rows = data.draw(st.lists(st.lists(CELL, min_size=len(header), max_size=len(header)), min_size=1, max_size=6))
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter)
    writer.writerow(header)
    writer.writerows(rows)
    expected = [[c.strip() for c in row] for row in rows if any(c.strip() for c in row)]
    raw = buffer.getvalue().encode(encoding)
    if not expected:
        with pytest.raises(InputError, match="no data rows"):
            read_table_data(raw, "t.csv")
        return
    table = read_table_data(raw, "t.csv")
    assert table.header == header
    assert [cells for _, cells in table.rows] == expected
