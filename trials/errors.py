"""Errors the user can act on, kept free of click so the library can be used from Python.

The CLI turns them into one line per problem on stderr and the exit code they carry:
2 for bad input or usage, 1 for a check that failed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

EXIT_CHECK_FAILED = 1
EXIT_INPUT = 2


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, located well enough for the user to fix it.

    `row` counts data rows as a spreadsheet shows them (the header is row 1), `column` is the
    header name, `key` a dotted TOML key. The message never contains a CPR number.
    """

    source: str
    message: str
    row: int | None = None
    column: str | None = None
    key: str | None = None

    def __str__(self) -> str:
        where = [self.source]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column}")
        if self.key is not None:
            where.append(f"key {self.key}")
        return f"{', '.join(where)}: {self.message}"


class TrialsError(Exception):
    """Base of every error meant for the user rather than a traceback."""

    exit_code = EXIT_INPUT

    def lines(self) -> list[str]:
        return [str(self)]


class InputError(TrialsError):
    """An input (file, option, argument) is invalid; nothing was written."""

    def __init__(self, problems: Iterable[Problem | str]):
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]


class DatabaseNotReady(TrialsError):
    """The database is missing or not at the schema revision this code expects."""


class NotFound(TrialsError):
    """A named trial, case or snapshot does not exist."""


class Refused(TrialsError):
    """The request is valid but the rules forbid it (e.g. changing arms after assignment)."""


class CheckFailed(TrialsError):
    """A verification found discrepancies; each is one line."""

    exit_code = EXIT_CHECK_FAILED

    def __init__(self, findings: Iterable[str]):
        self.findings = list(findings)
        super().__init__("; ".join(self.findings))

    def lines(self) -> list[str]:
        return list(self.findings)
