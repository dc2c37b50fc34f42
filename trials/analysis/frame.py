"""The analysis frame: read a CSV (the `trials analyze` entrance) and validate any frame.

`prepare(frame, options)` turns a DataFrame with one row per randomized unit into the arrays the
estimators use, or raises `InputError` naming the source, row and column of every bad value
(rows counted as a spreadsheet shows them: the header is row 1). Both entrances go through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from trials.errors import InputError, Problem

if TYPE_CHECKING:
    import pandas as pd

    from trials.analysis.engine import AnalysisOptions

MAX_PROBLEMS = 20
EMPTY_KINDS = ("", "none", "censored", "nan")


def read_csv(path: Path) -> pd.DataFrame:
    """Every column as text (so arm values stay as written, e.g. "0" and "1"); empty cells are ''."""
    import pandas as pd

    source = str(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except FileNotFoundError:
        raise InputError([Problem(source, "file not found")]) from None
    except IsADirectoryError:
        raise InputError([Problem(source, "is a folder, not a CSV file")]) from None
    if b"\x00" in head:
        raise InputError([Problem(source, "not a text file (expected CSV with a header row)")])
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, sep=None, engine="python",
                            encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError([Problem(source, "not UTF-8 text (save the CSV as UTF-8)")]) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv_error()) as exc:
        raise InputError([Problem(source, f"not a readable CSV file: {str(exc).splitlines()[0]}")]) from None
    if frame.empty:
        raise InputError([Problem(source, "has a header but no data rows")])
    return frame.apply(lambda col: col.str.strip())


def csv_error() -> type[Exception]:
    import csv

    return csv.Error


@dataclass
class Prepared:
    """The validated frame as arrays; arm, stratum and cluster as integer codes."""

    frame: pd.DataFrame  # original columns, index 0..n-1
    time: NDArray[np.float64]
    event: NDArray[np.int_]
    arm: NDArray[np.int_]
    arm_names: list[str]
    control: int
    strata: NDArray[np.int_] | None
    stratum_labels: list[str]
    cluster: NDArray[np.int_] | None
    covariates: pd.DataFrame  # encoded adjustment covariates, columns adj_0, adj_1, ...
    covariate_names: list[str]
    exit_kind: NDArray[Any] | None  # per row: exit kind id, or None when still on support / censored

    @property
    def treatment(self) -> list[int]:
        return [i for i in range(len(self.arm_names)) if i != self.control]


class _Problems:
    def __init__(self, source: str):
        self.source = source
        self.items: list[Problem] = []
        self.extra = 0

    def add(self, message: str, row: int | None = None, column: str | None = None) -> None:
        if len(self.items) < MAX_PROBLEMS:
            self.items.append(Problem(self.source, message, row=row, column=column))
        else:
            self.extra += 1

    def raise_if_any(self) -> None:
        if self.items:
            tail = [Problem(self.source, f"and {self.extra} more problem(s)")] if self.extra else []
            raise InputError(self.items + tail)


def _text(series: pd.Series) -> pd.Series:
    return series.astype(str).str.strip().where(series.notna(), "")


def _number(text: pd.Series) -> pd.Series:
    """Numbers from text; a decimal comma (Danish spreadsheets: 10,5) is read as a decimal point."""
    import pandas as pd

    cleaned = text.str.replace(",", ".", regex=False).where(text.str.count(",") <= 1, text)
    return pd.to_numeric(cleaned.where(cleaned != "", None), errors="coerce")


def prepare(frame: pd.DataFrame, options: AnalysisOptions, source: str = "analysis frame") -> Prepared:
    import pandas as pd

    problems = _Problems(source)
    frame = frame.reset_index(drop=True)
    named = [("--time", options.time), ("--event", options.event), ("--arm", options.arm)]
    named += [("--strata", c) for c in options.strata] + [("--adjust", c) for c in options.adjust]
    named += [("--subgroup", c) for c in options.subgroups]
    if options.cluster:
        named.append(("--cluster", options.cluster))
    if options.competing:
        named.append(("--competing", options.competing))
    if options.benefit_type:
        named.append(("benefit type", options.benefit_type))
    for flag, column in named:
        if column not in frame.columns:
            problems.add(f"no column {column!r} (given by {flag}); columns are: {', '.join(map(str, frame.columns))}")
    problems.raise_if_any()
    if len(frame) == 0:
        problems.add("has no rows")
        problems.raise_if_any()

    rows = np.arange(len(frame)) + 2
    time_text = _text(frame[options.time])
    time = _number(time_text).to_numpy(float)
    for i in np.flatnonzero(~np.isfinite(time) | (time < 0)):
        what = "is empty" if time_text.iloc[i] == "" else f"{time_text.iloc[i]!r} is not a time >= 0"
        problems.add(f"{what} (time to event or censoring)", int(rows[i]), options.time)
    event_text = _text(frame[options.event])
    event_num = _number(event_text).to_numpy(float)
    for i in np.flatnonzero(~np.isin(event_num, [0.0, 1.0])):
        problems.add(f"{event_text.iloc[i]!r} is not 1 (event) or 0 (censored)", int(rows[i]), options.event)
    arm_text = _text(frame[options.arm])
    for i in np.flatnonzero((arm_text == "").to_numpy()):
        problems.add("arm is empty", int(rows[i]), options.arm)
    for column in [*options.strata, *([options.cluster] if options.cluster else [])]:
        values = _text(frame[column])
        for i in np.flatnonzero((values == "").to_numpy()):
            problems.add("is empty (every unit needs a value here)", int(rows[i]), column)
    covariates, covariate_names = _encode_covariates(frame, options.adjust, rows, problems)
    problems.raise_if_any()

    observed = sorted(arm_text.unique(), key=_natural)
    arm_names = list(options.arms) if options.arms else observed
    unknown = [a for a in observed if a not in arm_names]
    if unknown:
        problems.add(f"arm value(s) {', '.join(map(repr, unknown))} are not arms of the trial "
                     f"({', '.join(arm_names)})", column=options.arm)
    control_name = options.control if options.control is not None else arm_names[0]
    if control_name not in arm_names:
        problems.add(f"control arm {control_name!r} is not among the arm values {', '.join(map(repr, arm_names))}",
                     column=options.arm)
    elif len(arm_names) < 2:
        problems.add(f"only one arm ({arm_names[0]!r}); a trial needs a control and at least one other arm",
                     column=options.arm)
    problems.raise_if_any()
    arm = np.array([arm_names.index(a) for a in arm_text], dtype=int)

    strata = None
    labels: list[str] = []
    if options.strata:
        key = _text(frame[options.strata[0]])
        for column in options.strata[1:]:
            key = key + " | " + _text(frame[column])
        codes, uniques = pd.factorize(key, sort=True)
        strata, labels = codes.astype(int), [str(u) for u in uniques]
    cluster = pd.factorize(_text(frame[options.cluster]), sort=True)[0].astype(int) if options.cluster else None
    exit_kind = None
    if options.competing:
        kinds = _text(frame[options.competing])
        exit_kind = np.array([None if k.lower() in EMPTY_KINDS else k for k in kinds], dtype=object)
    return Prepared(frame, time, event_num.astype(int), arm, arm_names, arm_names.index(control_name), strata,
                    labels, cluster, covariates, covariate_names, exit_kind)


def _natural(value: str) -> tuple[int, float, str]:
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def _encode_covariates(frame: pd.DataFrame, columns: list[str], rows: NDArray[np.int_],
                       problems: _Problems) -> tuple[pd.DataFrame, list[str]]:
    """Numeric columns as they are; text columns as indicators (first level the reference)."""
    import pandas as pd

    parts: list[pd.DataFrame] = []
    names: list[str] = []
    for j, column in enumerate(columns):
        text = _text(frame[column])
        for i in np.flatnonzero((text == "").to_numpy()):
            problems.add("is empty (adjustment covariates must be known for every unit)", int(rows[i]), column)
        numeric = _number(text)
        if numeric.notna().sum() == (text != "").sum():
            parts.append(pd.DataFrame({f"adj_{j}": numeric.to_numpy(float)}))
            names.append(column)
        else:
            dummies = pd.get_dummies(text, prefix=f"adj_{j}", drop_first=True, dtype=float)
            dummies.columns = [f"adj_{j}_{k}" for k in range(dummies.shape[1])]
            parts.append(dummies.reset_index(drop=True))
            names.extend(f"{column}={level}" for level in sorted(text.unique())[1:])
    if not parts:
        return pd.DataFrame(index=range(len(frame))), []
    return pd.concat(parts, axis=1), names
