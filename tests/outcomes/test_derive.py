"""The pure derivation: hand-built weekly histories for every rule, exit records, and a
property test against a slow reference written week by week."""

from __future__ import annotations

import datetime as dt

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from trials.outcomes.derive import (
    MISSING,
    RETURN_TO_BENEFIT,
    Categories,
    Definition,
    ExitHistory,
    derive_exits,
    derive_matrix,
)

DEFINITION = Definition(
    event_exits=("ordinary_job", "education"),
    competing_exits=("flexjob", "disability_pension"),
    consecutive_weeks=4,
    horizon=104,
)
S, B = "self_supporting", "sickness_benefit"


def derive(weeks: list[str | None], definition: Definition = DEFINITION) -> dict:
    rows = derive_many([weeks], definition)
    return rows[0]


def derive_many(histories: list[list[str | None]], definition: Definition = DEFINITION) -> list[dict]:
    categories = Categories(definition)
    matrix = np.full((len(histories), definition.width), MISSING, dtype=np.int16)
    for i, weeks in enumerate(histories):
        for t, name in enumerate(weeks[: definition.width]):
            if name is not None:
                matrix[i, t] = categories.code(name)
    return derive_matrix(matrix, categories.classes, definition).rows(categories)


def full(prefix: list[str | None], fill: str | None, total: int = 110) -> list[str | None]:
    return prefix + [fill] * (total - len(prefix))


def test_a_three_week_spell_is_no_exit_with_k_4() -> None:
    history = full([B] * 10 + [S] * 3 + [B] * 5, B, 40)
    row = derive(history)
    assert row["event"] == 0
    assert row["time_weeks"] == 40  # censored when the history ends (week 39 last observed)
    assert row["exit_kind"] is None
    assert row["weeks_observed"] == 40


def test_the_event_is_the_first_week_of_the_first_spell_of_k_weeks() -> None:
    history = full([B] * 10 + [S] * 3 + [B] * 5 + [S] * 4 + [B], B)
    row = derive(history)
    assert (row["event"], row["time_weeks"], row["exit_kind"]) == (1, 18, S)


def test_an_event_exit_kind_counts_as_self_supporting() -> None:
    history = full([B] * 5 + ["education"] * 2 + [S] * 2, S)
    row = derive(history)
    assert (row["event"], row["time_weeks"], row["exit_kind"]) == (1, 5, "education")
    assert row["status_52"] == S


def test_a_competing_exit_before_the_event_is_a_competing_event() -> None:
    history = full([B] * 7 + ["flexjob"] * 3 + [S] * 20, B)
    row = derive(history)
    assert (row["event"], row["time_weeks"], row["exit_kind"]) == (0, 7, "flexjob")
    assert row["relapses"] == 0


def test_a_competing_exit_after_the_event_does_not_change_it() -> None:
    history = full([B] * 3 + [S] * 6 + ["disability_pension"] * 3, B)
    row = derive(history)
    assert (row["event"], row["time_weeks"], row["exit_kind"]) == (1, 3, S)
    assert row["relapses"] == 1  # S -> disability pension is a return to public support


def test_moved_and_died_censor() -> None:
    row = derive(full([B] * 12 + ["moved"], None))
    assert (row["event"], row["time_weeks"], row["exit_kind"]) == (0, 12, "moved")
    # weeks after the death are ignored even if the file had any
    row = derive(full([B] * 2 + [S] * 2 + ["died"] + [S] * 10, S))
    assert (row["event"], row["time_weeks"], row["exit_kind"]) == (0, 4, "died")
    assert row["weeks_observed"] == 4
    assert row["weeks_on_support_52"] is None and row["status_52"] is None


def test_a_spell_cut_short_by_the_end_of_data_is_not_yet_an_event() -> None:
    row = derive([B] * 30 + [S] * 3)  # as-of reached during the spell
    assert (row["event"], row["time_weeks"]) == (0, 33)


def test_censoring_at_the_horizon() -> None:
    row = derive(full([], B, 130))
    assert (row["event"], row["time_weeks"], row["exit_kind"]) == (0, 104, None)
    assert row["weeks_on_support_52"] == 52 and row["weeks_on_support_104"] == 104
    assert row["status_52"] == B and row["status_104"] == B


def test_an_event_may_start_before_the_horizon_and_be_confirmed_after_it() -> None:
    row = derive(full([B] * 102, S, 110))
    assert (row["event"], row["time_weeks"]) == (1, 102)
    row = derive(full([B] * 104, S, 110))
    assert (row["event"], row["time_weeks"]) == (0, 104)


def test_a_shorter_protocol_horizon_caps_time() -> None:
    definition = Definition(("ordinary_job",), (), 4, horizon=52)
    row = derive(full([B] * 60, S), definition)
    assert (row["event"], row["time_weeks"]) == (0, 52)
    assert row["status_104"] == S  # the weekly measures are still reported


def test_relapse_count() -> None:
    history = (
        [B] * 4 + [S] * 5  # event at week 4
        + [B] * 2 + [S] + ["cash_assistance"]  # two returns (weeks 9 and 12)
        + [S] * 10 + ["unemployment_insurance"] * 3  # a-dagpenge is public support: a third
    )
    row = derive(full(history, S))
    assert (row["event"], row["time_weeks"], row["relapses"]) == (1, 4, 3)


def test_weeks_on_support_and_status() -> None:
    history = full([B] * 10 + [S] * 40 + ["flexjob"] * 3, S)
    row = derive(history)
    assert row["weeks_on_support_52"] == 12  # weeks 50, 51: competing weeks are public support too
    assert row["weeks_on_support_104"] == 13
    assert row["status_52"] == "flexjob"
    row = derive([B] * 60)
    assert row["weeks_on_support_52"] == 52 and row["weeks_on_support_104"] is None
    assert row["status_52"] == B and row["status_104"] is None


def test_gaps_censor_at_the_first_missing_week() -> None:
    row = derive([B] * 6 + [None] + [S] * 50)
    assert (row["event"], row["time_weeks"], row["weeks_observed"]) == (0, 6, 6)


def test_many_cases_in_small_blocks_give_the_same_rows() -> None:
    histories = [full([B] * i + [S] * (i % 6), B) for i in range(40)]
    categories = Categories(DEFINITION)
    matrix = np.full((40, DEFINITION.width), MISSING, dtype=np.int16)
    for i, weeks in enumerate(histories):
        matrix[i] = [categories.code(w) for w in weeks[: DEFINITION.width]]
    whole = derive_matrix(matrix, categories.classes, DEFINITION).rows(categories)
    blocks = derive_matrix(matrix, categories.classes, DEFINITION, block_rows=7).rows(categories)
    assert whole == blocks


# --- exit records ----------------------------------------------------------------------

MONDAY = dt.date(2025, 1, 6)


def exits(records: list[tuple[int, str]], as_of_weeks: int = 120, definition: Definition = DEFINITION) -> dict:
    """Records given as (days after enrollment, kind)."""
    history = ExitHistory(
        enrolled_on=MONDAY,
        as_of=MONDAY + dt.timedelta(weeks=as_of_weeks),
        baseline=B,
        records=tuple((MONDAY + dt.timedelta(days=d), kind) for d, kind in records),
    )
    return derive_exits([history], definition, Categories(definition))[0]


def test_exit_records_first_event_exit() -> None:
    row = exits([(30, "ordinary_job")])
    assert (row["event"], row["time_weeks"], row["exit_kind"]) == (1, 4, "ordinary_job")
    assert row["weeks_on_support_52"] == 4  # weeks 0..3; the week of the exit counts as the exit's
    assert row["status_52"] == S


def test_exit_records_short_spell_then_return_is_no_exit() -> None:
    row = exits([(14, "ordinary_job"), (35, RETURN_TO_BENEFIT), (70, "education")])
    assert (row["event"], row["time_weeks"], row["exit_kind"]) == (1, 10, "education")


def test_exit_records_competing_and_censoring() -> None:
    row = exits([(21, "flexjob"), (70, "ordinary_job")])
    assert (row["event"], row["time_weeks"], row["exit_kind"]) == (0, 3, "flexjob")
    row = exits([(50, "moved")])
    assert (row["event"], row["time_weeks"], row["exit_kind"]) == (0, 7, "moved")
    row = exits([], as_of_weeks=30)
    assert (row["event"], row["time_weeks"], row["exit_kind"]) == (0, 30, None)
    row = exits([], as_of_weeks=300)
    assert (row["event"], row["time_weeks"]) == (0, 104)


def test_exit_records_relapses() -> None:
    row = exits([(7, "ordinary_job"), (70, "cash_assistance"), (84, "education"), (140, RETURN_TO_BENEFIT)])
    assert (row["event"], row["time_weeks"], row["relapses"]) == (1, 1, 2)
    assert row["status_52"] == B


# --- property: the event week satisfies the definition ----------------------------------

CATEGORY_POOL = [S, S, B, "cash_assistance", "education", "flexjob", "moved", None]


def reference(weeks: list[str | None], d: Definition) -> tuple[int, int, str | None, int]:
    """Obviously correct, slow: walk the weeks one by one.

    Observation ends at the first missing week or moved/died week. An event at week w needs
    weeks w..w+K-1 all observed and self-supporting (or an event exit kind), w < horizon,
    and w the first such week; a competing exit week earlier than that wins.
    """
    observed: list[str] = []
    for name in weeks[: d.width]:
        if name is None or name in ("moved", "died"):
            break
        observed.append(name)
    end = len(observed)

    def is_self(t: int) -> bool:
        return observed[t] == S or observed[t] in d.event_exits

    event_week = None
    for w in range(min(end, d.horizon)):
        if w + d.consecutive_weeks <= end and all(is_self(t) for t in range(w, w + d.consecutive_weeks)):
            event_week = w
            break
    competing_week = None
    for w in range(min(end, d.horizon)):
        if observed[w] in d.competing_exits:
            competing_week = w
            break
    if competing_week is not None and (event_week is None or competing_week < event_week):
        return competing_week, 0, observed[competing_week], 0
    if event_week is not None:
        relapses = 0
        for t in range(event_week + 1, min(end, d.horizon)):
            if is_self(t - 1) and not is_self(t):
                relapses += 1
        return event_week, 1, observed[event_week], relapses
    stop = weeks[end] if end < len(weeks) and end < d.horizon else None
    return min(end, d.horizon), 0, stop, 0


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from(CATEGORY_POOL), min_size=0, max_size=120), min_size=1, max_size=8),
    st.integers(min_value=1, max_value=6),
    st.sampled_from([5, 20, 52, 104]),
)
def test_event_week_matches_a_week_by_week_reference(histories, k, horizon) -> None:
    definition = Definition(("ordinary_job", "education"), ("flexjob", "disability_pension"), k, horizon)
    rows = derive_many(histories, definition)
    for weeks, row in zip(histories, rows, strict=True):
        expected = reference(weeks, definition)
        assert (row["time_weeks"], row["event"], row["exit_kind"], row["relapses"]) == expected
        if row["event"]:
            w = row["time_weeks"]
            window = weeks[w:w + k]
            assert len(window) == k and all(x in (S, "education") for x in window)


STATES = [B, "cash_assistance", "ordinary_job", "education", "flexjob", "unemployment_insurance", "moved"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(min_value=1, max_value=30), st.sampled_from(STATES)), max_size=8),
    st.integers(min_value=1, max_value=5),
    st.integers(min_value=0, max_value=60),
)
def test_exit_records_and_the_equivalent_weekly_history_agree(changes, k, tail) -> None:
    """Enrollment on a Monday and every change on a Monday: the exit-record derivation and the
    weekly derivation of the same timeline give the same outcome, except where the definitions
    knowingly differ (an event spell cut short by moved/died or by the as-of date is an event in
    the case system's records, not yet in the register), which the generator leaves out."""
    definition = Definition(("ordinary_job", "education"), ("flexjob",), k, 104)
    categories = Categories(definition)
    records, week, weekly, state = [], 0, [], B
    for gap, new_state in changes:
        weekly += [state] * gap
        week += gap
        records.append((week, new_state))
        state = new_state
        if state == "moved":
            break
    as_of_weeks = week + (0 if state == "moved" else k + tail)
    weekly += [state] * (as_of_weeks - week) if state != "moved" else ["moved"]
    # leave out spells the two sources knowingly treat differently
    for i, (start, kind) in enumerate(records):
        if definition.week_class(kind) == 0:  # SELF
            later = [(w, s) for w, s in records[i + 1:] if definition.week_class(s) != 0]
            end = later[0][0] if later else as_of_weeks
            ends_in_censor = bool(later) and later[0][1] == "moved"
            if end - start < k and (ends_in_censor or not later):
                return
    history = ExitHistory(MONDAY, MONDAY + dt.timedelta(weeks=as_of_weeks), B,
                          tuple((MONDAY + dt.timedelta(weeks=w), s) for w, s in records))
    from_exits = derive_exits([history], definition, categories)[0]
    from_weeks = derive_many([weekly], definition)[0]
    assert from_exits == from_weeks
