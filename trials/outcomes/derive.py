"""The derivation of the analysis outcome, free of files and databases.

Two sources give the same outcome on the same time scale (docs/outcomes.md):

- a weekly status matrix (one row per enrolled case, one column per week since the week of
  enrollment, each cell a category code or MISSING), derived for all cases at once with numpy;
- exit records (dated exits and returns to benefit from the case system), derived case by case
  and then turned into the same kind of matrix for the weekly measures.

Every week falls in one of four classes under a protocol: SELF (self-supporting, or an exit kind
the protocol counts as the event), COMPETING (a competing exit kind), CENSOR (moved, died) and
SUPPORT (every benefit type and any other exit kind, e.g. a-dagpenge).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trials.protocol import OutcomeDefinition
from trials.vocab import BENEFIT_TYPES, CENSORING_EXITS, EXIT_KINDS

SELF_SUPPORTING = "self_supporting"
# A return to benefit in an exit file that does not name the benefit: the benefit at enrollment.
RETURN_TO_BENEFIT = "return_to_benefit"
# Week classes.
SELF, SUPPORT, COMPETING, CENSOR, UNOBSERVED = 0, 1, 2, 3, 4
CLASS_NAMES = ("self", "support", "competing", "censor")
MISSING = -1  # a cell of the status matrix with no observation
STATUS_SELF = -2  # status code meaning "self-supporting" (whatever the category)
# The weekly measures the export always carries (weeks on support within, status at).
REPORT_HORIZONS = (52, 104)
BLOCK_ROWS = 65_536


def category_ids() -> tuple[str, ...]:
    """Every category a week can have: self_supporting, benefit types, exit kinds."""
    ids = [SELF_SUPPORTING, *BENEFIT_TYPES.ids]
    ids += [kind for kind in EXIT_KINDS.ids if kind not in ids]
    return tuple(ids)


@dataclass(frozen=True)
class Definition:
    """The outcome definition of a protocol, with the numbers the derivation needs."""

    event_exits: tuple[str, ...]
    competing_exits: tuple[str, ...]
    consecutive_weeks: int
    horizon: int  # the largest horizon: censoring cap and the last week an event may start

    @classmethod
    def from_protocol(cls, outcome: OutcomeDefinition) -> Definition:
        return cls(
            event_exits=tuple(outcome.event_exits),
            competing_exits=tuple(outcome.competing_exits),
            consecutive_weeks=int(outcome.consecutive_weeks),
            horizon=max(outcome.horizons_weeks),
        )

    @property
    def width(self) -> int:
        """Weeks 0..width-1 are read: enough to confirm a spell starting before the horizon
        and to see the status in week 104."""
        return max(self.horizon, max(REPORT_HORIZONS)) + max(self.consecutive_weeks, 1)

    def week_class(self, category: str) -> int:
        if category == SELF_SUPPORTING or category in self.event_exits:
            return SELF
        if category in CENSORING_EXITS:
            return CENSOR
        if category in self.competing_exits:
            return COMPETING
        return SUPPORT

    def as_dict(self) -> dict[str, Any]:
        return {
            "event_exits": list(self.event_exits),
            "competing_exits": list(self.competing_exits),
            "consecutive_weeks": self.consecutive_weeks,
            "horizon": self.horizon,
        }


class Categories:
    """Category names and their codes in a status matrix (the code is the list position)."""

    def __init__(self, definition: Definition, names: Iterable[str] = ()):
        self.definition = definition
        self.names: list[str] = []
        self._codes: dict[str, int] = {}
        for name in (*category_ids(), *names):
            self.code(name)

    def code(self, name: str) -> int:
        if name not in self._codes:
            self._codes[name] = len(self.names)
            self.names.append(name)
        return self._codes[name]

    @property
    def classes(self) -> np.ndarray:
        return np.array([self.definition.week_class(name) for name in self.names], dtype=np.int8)

    def status_name(self, code: int) -> str | None:
        if code == MISSING:
            return None
        if code == STATUS_SELF:
            return SELF_SUPPORTING
        return self.names[code]


@dataclass
class Derived:
    """The outcome of n cases as arrays; -1 stands for 'none' in the optional ones."""

    time_weeks: np.ndarray
    event: np.ndarray
    exit_code: np.ndarray  # a category code, or MISSING
    weeks_on_support: dict[int, np.ndarray]  # horizon -> weeks (-1: horizon not observed)
    status: dict[int, np.ndarray]  # horizon -> category code, STATUS_SELF, or MISSING
    relapses: np.ndarray
    weeks_observed: np.ndarray

    def __len__(self) -> int:
        return len(self.time_weeks)

    def rows(self, categories: Categories) -> list[dict[str, Any]]:
        """One plain dict per case with the export's outcome columns."""
        names = categories.names
        out = []
        for i in range(len(self)):
            code = int(self.exit_code[i])
            row: dict[str, Any] = {
                "time_weeks": int(self.time_weeks[i]),
                "event": int(self.event[i]),
                "exit_kind": None if code == MISSING else names[code],
            }
            for h in REPORT_HORIZONS:
                weeks = int(self.weeks_on_support[h][i])
                row[f"weeks_on_support_{h}"] = None if weeks < 0 else weeks
            for h in REPORT_HORIZONS:
                row[f"status_{h}"] = categories.status_name(int(self.status[h][i]))
            row["relapses"] = int(self.relapses[i])
            row["weeks_observed"] = int(self.weeks_observed[i])
            out.append(row)
        return out


def derive_matrix(status: np.ndarray, classes: np.ndarray, definition: Definition,
                  block_rows: int = BLOCK_ROWS) -> Derived:
    """Derive every case's outcome from its weekly status row (vectorised, in row blocks).

    `status[i, t]` is the category code of case i in week t since its enrollment week, or
    MISSING. A case is observed up to its first missing week or its first CENSOR week
    (moved, died), whichever comes first; nothing after that is used.
    """
    n, width = status.shape
    horizon = definition.horizon
    k = definition.consecutive_weeks
    if width < horizon + k:
        raise ValueError(f"the status matrix needs at least {horizon + k} weeks, has {width}")
    time_weeks = np.zeros(n, dtype=np.int32)
    event = np.zeros(n, dtype=np.int8)
    exit_code = np.full(n, MISSING, dtype=np.int32)
    support = {h: np.full(n, -1, dtype=np.int32) for h in REPORT_HORIZONS}
    status_at = {h: np.full(n, MISSING, dtype=np.int32) for h in REPORT_HORIZONS}
    relapses = np.zeros(n, dtype=np.int32)
    observed_weeks = np.zeros(n, dtype=np.int32)
    lookup = np.append(classes.astype(np.int8), np.int8(UNOBSERVED))  # index -1 -> UNOBSERVED
    weeks = np.arange(width, dtype=np.int32)
    never = np.int32(width + 1)

    for start in range(0, n, block_rows):
        s = np.asarray(status[start:start + block_rows])
        m = len(s)
        rows = np.arange(m)
        cls = lookup[s]  # MISSING (-1) indexes the appended UNOBSERVED
        stop = (cls == UNOBSERVED) | (cls == CENSOR)
        end = np.where(stop.any(axis=1), stop.argmax(axis=1), width).astype(np.int32)
        valid = weeks[None, :] < end[:, None]
        selfw = (cls == SELF) & valid
        on_support = ((cls == SUPPORT) | (cls == COMPETING)) & valid

        counts = np.zeros((m, width + 1), dtype=np.int32)
        np.cumsum(selfw, axis=1, out=counts[:, 1:])
        qualifying = (counts[:, k:k + horizon] - counts[:, :horizon]) == k  # spell of k from t < horizon
        has_event = qualifying.any(axis=1)
        event_week = np.where(has_event, qualifying.argmax(axis=1), never)

        competing = (cls[:, :horizon] == COMPETING) & valid[:, :horizon]
        has_competing = competing.any(axis=1)
        competing_week = np.where(has_competing, competing.argmax(axis=1), never)
        is_competing = has_competing & (competing_week < event_week)
        is_event = has_event & ~is_competing

        censored_at = np.minimum(end, horizon)
        t = np.where(is_event, event_week, np.where(is_competing, competing_week, censored_at))
        time_weeks[start:start + m] = t
        event[start:start + m] = is_event
        at_t = s[rows, np.minimum(t, width - 1)]
        censored_by_exit = ~is_event & ~is_competing & (end < horizon) & (end < width)
        censor_code = s[rows, np.minimum(end, width - 1)]
        censored_by_exit &= lookup[censor_code] == CENSOR
        exit_code[start:start + m] = np.where(
            is_event | is_competing, at_t, np.where(censored_by_exit, censor_code, MISSING)
        )

        for h in REPORT_HORIZONS:
            covered = end >= h
            support[h][start:start + m] = np.where(covered, on_support[:, :h].sum(axis=1), -1)
            seen = end > h
            status_at[h][start:start + m] = np.where(
                seen, np.where(cls[:, h] == SELF, STATUS_SELF, s[:, h]), MISSING
            )

        # A return to benefit: a week on support right after a self-supporting week, after the
        # event week and before the horizon.
        returns = on_support[:, 1:] & selfw[:, :-1]  # column j is week j + 1
        after = (weeks[None, 1:] > event_week[:, None]) & (weeks[None, 1:] < horizon)
        relapses[start:start + m] = np.where(is_event, (returns & after).sum(axis=1), 0)
        observed_weeks[start:start + m] = end

    return Derived(time_weeks, event, exit_code, support, status_at, relapses, observed_weeks)


# --- exit records ----------------------------------------------------------------------


@dataclass(frozen=True)
class ExitHistory:
    """The exit records of one enrolled case: (date, kind) sorted by date; kind is an exit-kind
    id, a benefit-type id (a return to that benefit) or RETURN_TO_BENEFIT."""

    enrolled_on: dt.date
    as_of: dt.date
    baseline: str  # the benefit type at enrollment
    records: tuple[tuple[dt.date, str], ...]


def whole_weeks(start: dt.date, end: dt.date) -> int:
    """Whole weeks from `start` to `end` (negative if `end` is earlier)."""
    return (end - start).days // 7


def _record_category(kind: str, baseline: str) -> str:
    return baseline if kind == RETURN_TO_BENEFIT else kind


def derive_exits(histories: Sequence[ExitHistory], definition: Definition,
                 categories: Categories) -> list[dict[str, Any]]:
    """The outcome of each case from its exit records.

    The event is the first exit of an `event_exits` kind whose self-supporting spell is not
    ended by a return to benefit (or a non-event exit) within `consecutive_weeks` whole weeks;
    an earlier competing exit makes a competing event; moved/died censor. Weekly measures come
    from the week-by-week state the records imply (the last record in or before the week).
    """
    width = definition.width
    matrix = np.full((len(histories), width), MISSING, dtype=np.int16)
    heads: list[tuple[int, int, str | None, int]] = []
    for i, history in enumerate(histories):
        matrix[i] = _exit_weeks(history, categories, width)
        heads.append(_exit_outcome(history, definition))
    derived = derive_matrix(matrix, categories.classes, definition)
    rows = derived.rows(categories)
    for row, (time_weeks, event, exit_kind, relapses) in zip(rows, heads, strict=True):
        row.update(time_weeks=time_weeks, event=event, exit_kind=exit_kind, relapses=relapses)
    return rows


def _exit_weeks(history: ExitHistory, categories: Categories, width: int) -> np.ndarray:
    observed = max(0, min(whole_weeks(history.enrolled_on, history.as_of), width))
    row = np.full(width, MISSING, dtype=np.int16)
    row[:observed] = categories.code(history.baseline)
    for date, kind in history.records:
        t = whole_weeks(history.enrolled_on, date)
        if t >= observed:
            break
        row[t:observed] = categories.code(_record_category(kind, history.baseline))
    return row


def _exit_outcome(history: ExitHistory, definition: Definition) -> tuple[int, int, str | None, int]:
    """(time_weeks, event, exit_kind, relapses) from the records."""
    horizon = definition.horizon
    records = history.records
    cls = [definition.week_class(_record_category(kind, history.baseline)) for _, kind in records]
    i = 0
    while i < len(records):
        date, kind = records[i]
        t = whole_weeks(history.enrolled_on, date)
        if t >= horizon:
            break
        if cls[i] == CENSOR:
            return t, 0, kind, 0
        if cls[i] == COMPETING:
            return t, 0, kind, 0
        if cls[i] == SELF:
            j = i + 1
            while j < len(records) and cls[j] == SELF:
                j += 1
            short = (
                j < len(records)
                and cls[j] in (SUPPORT, COMPETING)
                and whole_weeks(date, records[j][0]) < definition.consecutive_weeks
            )
            if not short:
                return t, 1, kind, _relapses(history, cls, j, horizon)
            i = j
            continue
        i += 1
    observed = max(0, whole_weeks(history.enrolled_on, history.as_of))
    return min(observed, horizon), 0, None, 0


def _relapses(history: ExitHistory, cls: list[int], start: int, horizon: int) -> int:
    """Returns to benefit (or a non-event exit) after the event's spell, before the horizon."""
    count = 0
    self_supporting = True
    for (date, _kind), week_class in zip(history.records[start:], cls[start:], strict=True):
        if whole_weeks(history.enrolled_on, date) >= horizon or week_class == CENSOR:
            break
        if week_class == SELF:
            self_supporting = True
        elif self_supporting:
            count += 1
            self_supporting = False
    return count
