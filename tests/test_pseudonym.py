"""CPR validation and pseudonymisation."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trials.errors import InputError, Refused
from trials.pseudonym import (
    case_key,
    cpr_birth_date,
    create_key_file,
    load_key,
    parse_cpr,
    pseudonymise,
)


@pytest.mark.parametrize(
    ("cpr", "born"),
    [
        ("010190-1234", dt.date(1990, 1, 1)),  # serial 1xxx: 1900s
        ("010110-4234", dt.date(2010, 1, 1)),  # 4xxx, yy <= 36: 2000s
        ("010150-4234", dt.date(1950, 1, 1)),  # 4xxx, yy > 36: 1900s
        ("010160-5234", dt.date(1860, 1, 1)),  # 5xxx, yy > 57: 1800s
        ("290200-4000", dt.date(2000, 2, 29)),  # leap day in 2000
    ],
)
def test_birth_date_follows_the_cpr_century_rules(cpr: str, born: dt.date) -> None:
    digits = parse_cpr(cpr)
    assert digits is not None
    assert cpr_birth_date(digits) == born


@pytest.mark.parametrize("bad", ["320190-1234", "290201-1234", "011390-1234", "01019-1234", "0101901234x", "", "abc"])
def test_invalid_cpr_numbers_are_rejected(bad: str) -> None:
    assert parse_cpr(bad) is None


def test_dash_is_optional_and_pseudonym_is_stable(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    create_key_file(path)
    key = load_key(path)
    assert case_key("010190-1234", "cpr", key) == case_key("0101901234", "cpr", key)
    assert case_key("010190-1234", "cpr", key) != case_key("010190-1234", "cpr", b"x" * 32)
    assert case_key(" A-17 ", "case_id", key) == "A-17"


@given(st.text(alphabet="0123456789", min_size=10, max_size=10))
def test_pseudonym_never_contains_the_digits(digits: str) -> None:
    assert digits not in pseudonymise(digits, b"k" * 32)


def test_key_file_is_never_overwritten_and_must_be_a_key(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    create_key_file(path)
    with pytest.raises(Refused):
        create_key_file(path)
    path.write_text("not hex")
    with pytest.raises(InputError, match="not a trials key file"):
        load_key(path)
    with pytest.raises(InputError, match="not found"):
        load_key(tmp_path / "missing.key")
