"""CPR numbers: validated, then replaced by an HMAC-SHA256 pseudonym under a secret key.

The key lives in a file outside the database (mode 0600), so a copy of the database alone
cannot be re-identified by hashing every possible CPR number. Nothing here ever puts a CPR
number into an exception message.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

from trials.errors import InputError, Refused

# ASCII digits only: "\d" alone would also take e.g. Arabic-Indic digits, which cannot be hashed as ASCII.
_CPR = re.compile(r"^\s*(\d{6})-?(\d{4})\s*$", re.ASCII)
KEY_BYTES = 32


def create_key_file(path: Path) -> None:
    """Write a new random key readable by the owner only; never overwrite an existing key."""
    if path.exists():
        raise Refused(f"{path} exists already; a key is never overwritten (pseudonyms would change)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(KEY_BYTES) + "\n")


def load_key(path: Path) -> bytes:
    """The pseudonymisation key; a clear error if it is missing or malformed."""
    try:
        content = path.read_text().strip()
    except FileNotFoundError:
        raise InputError(
            [f"{path}: pseudonymisation key not found (set --key-file or TRIALS_KEY_FILE, or run `trials init`)"]
        ) from None
    try:
        key = bytes.fromhex(content)
    except ValueError:
        raise InputError([f"{path}: not a trials key file (expected {KEY_BYTES * 2} hex digits)"]) from None
    if len(key) != KEY_BYTES:
        raise InputError([f"{path}: not a trials key file (expected {KEY_BYTES * 2} hex digits)"])
    return key


def cpr_birth_date(digits: str) -> dt.date:
    """The birth date a 10-digit CPR number encodes (century from the 7th digit, CPR rules)."""
    day, month, yy, century_digit = int(digits[0:2]), int(digits[2:4]), int(digits[4:6]), int(digits[6])
    if century_digit <= 3:
        century = 1900
    elif century_digit in (4, 9):
        century = 2000 if yy <= 36 else 1900
    else:
        century = 2000 if yy <= 57 else 1800
    return dt.date(century + yy, month, day)


def parse_cpr(value: str) -> str | None:
    """The 10 digits of a valid CPR number (DDMMYY-SSSS or DDMMYYSSSS), or None if invalid."""
    match = _CPR.match(value)
    if not match:
        return None
    digits = match.group(1) + match.group(2)
    try:
        cpr_birth_date(digits)
    except ValueError:
        return None
    return digits


def looks_like_cpr(value: str) -> bool:
    """True for anything shaped like a CPR number, valid or not (for leak checks)."""
    return bool(re.search(r"(?<!\d)\d{6}-?\d{4}(?!\d)", value))


def pseudonymise(cpr_digits: str, key: bytes) -> str:
    """The stable pseudonym of a validated CPR number: hex HMAC-SHA256 under the key."""
    return hmac.new(key, cpr_digits.encode("ascii"), hashlib.sha256).hexdigest()


def case_key(value: str, id_column: str, key: bytes) -> str | None:
    """The stored key of a case named in a file: the case id as given, or a CPR's pseudonym.

    Returns None for an empty case id or an invalid CPR number (the caller reports the row
    and column, never the value).
    """
    if id_column == "cpr":
        digits = parse_cpr(value)
        return None if digits is None else pseudonymise(digits, key)
    value = value.strip()
    return value or None
