"""Simulated follow-up: weekly benefit histories with a known true effect.

For demos, training, tests of the whole pipeline and benchmarks — never for a real trial.
Each case leaves public support with a weekly hazard whose baseline depends on its months
on benefits and its barriers (long courses and several barriers slow the exit, as in the
Hjørring and Hedensted figures), multiplied by the true hazard ratio in the treatment arms and
by a random caseworker effect (so cluster trials show an intra-cluster correlation). An exit
is to an ordinary job, education, flex-job or disability pension; some job exits are short
spells followed by a return to benefit (testing the K-consecutive-weeks rule), and some
people relapse after a real exit. The assumptions are listed in docs/demo.md.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from trials.tabular import neutralise_formula

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

SUPPORT, SELF, FLEX, PENSION, EDUCATION = 0, 1, 2, 3, 4
# Share of exits by kind (Hedensted: 35.7 % ordinary job, 14.5 % flex-job of closed courses;
# education and disability pension fill the rest of the exits that end support).
EXIT_SHARES = {"ordinary_job": 0.62, "education": 0.16, "flexjob": 0.14, "disability_pension": 0.08}


@dataclass(frozen=True)
class SimulatedCase:
    case_id: str
    arm: str
    enrolled_on: dt.date
    months_unemployed: float
    barriers: int = 1
    cluster: str | None = None


@dataclass(frozen=True)
class Scenario:
    """The truth behind a simulated trial (documented per trial in docs/demo.md)."""

    hazard_ratio: Mapping[str, float]  # per arm; the control arm 1.0
    baseline_median_weeks: float = 60.0
    cluster_sd: float = 0.25  # SD of the log caseworker effect
    short_spell_share: float = 0.12  # job exits that last only 1-3 weeks
    relapse_share: float = 0.10  # real exits followed by a return to benefit
    weeks: int = 104
    exit_shares: Mapping[str, float] = field(default_factory=lambda: dict(EXIT_SHARES))


def case_medians(cases: Sequence[SimulatedCase], baseline: float) -> NDArray[np.float64]:
    """Median weeks to exit per case: longer with more months on benefits and more barriers."""
    months = np.array([c.months_unemployed for c in cases], dtype=float)
    barriers = np.array([max(c.barriers, 1) for c in cases], dtype=float)
    return np.asarray(baseline * (1 + months / 36.0) ** 0.6 * (1 + 0.25 * (barriers - 1)), dtype=float)


def simulate_states(cases: Sequence[SimulatedCase], scenario: Scenario, seed: int) -> NDArray[np.int8]:
    """An (n, weeks) matrix of weekly states (SUPPORT, SELF, FLEX, PENSION, EDUCATION)."""
    rng = np.random.default_rng(seed)
    n, weeks = len(cases), scenario.weeks
    medians = case_medians(cases, scenario.baseline_median_weeks)
    hr = np.array([scenario.hazard_ratio.get(c.arm, 1.0) for c in cases])
    clusters = sorted({c.cluster for c in cases if c.cluster})
    effect = dict(zip(clusters, np.exp(rng.normal(0, scenario.cluster_sd, len(clusters))), strict=True))
    frailty = np.array([effect.get(c.cluster, 1.0) if c.cluster else 1.0 for c in cases])
    weekly_hazard = 1 - np.exp(-math.log(2) / medians * hr * frailty)
    exit_week = rng.geometric(np.clip(weekly_hazard, 1e-9, 1)) - 1  # weeks on support before the exit
    kinds = list(scenario.exit_shares)
    probabilities = np.array([scenario.exit_shares[k] for k in kinds])
    kind = rng.choice(len(kinds), size=n, p=probabilities / probabilities.sum())
    code = {"ordinary_job": SELF, "education": EDUCATION, "flexjob": FLEX, "disability_pension": PENSION}
    states = np.zeros((n, weeks), dtype=np.int8)
    short = rng.random(n) < scenario.short_spell_share
    relapse = rng.random(n) < scenario.relapse_share
    for i in range(n):
        start = int(exit_week[i])
        if start >= weeks:
            continue
        state = code[kinds[kind[i]]]
        if state == SELF and short[i]:
            length = int(rng.integers(1, 4))  # a short spell, then back on benefit and a later real exit
            states[i, start:start + length] = SELF
            start = start + length + int(rng.integers(2, 12)) + int(rng.geometric(weekly_hazard[i]))
            if start >= weeks:
                continue
        states[i, start:] = state
        if state in (SELF, EDUCATION) and relapse[i]:
            back = start + int(rng.integers(6, 40))
            states[i, back:back + int(rng.integers(2, 20))] = SUPPORT
    return states


def reverse_codes(mapping_codes: Mapping[str, str]) -> dict[int, str]:
    """A status code for each simulated state, taken from a code mapping (category -> first code)."""
    wanted = {SELF: "self_supporting", EDUCATION: "education", FLEX: "flexjob", PENSION: "disability_pension"}
    first: dict[str, str] = {}
    for code, category in mapping_codes.items():
        first.setdefault(category, code)
    support = next(first[c] for c in ("cash_assistance", "sickness_benefit", "job_clarification") if c in first)
    out = {SUPPORT: support}
    for state, category in wanted.items():
        if category not in first:
            raise ValueError(f"the mapping has no code for {category}")
        out[state] = first[category]
    return out


def monday(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def weekly_rows(cases: Sequence[SimulatedCase], states: NDArray[np.int8], codes: Mapping[int, str],
                as_of: dt.date) -> Iterable[tuple[str, str, str]]:
    """(case_id, Monday's date, status code) rows, from each case's enrollment week until as-of."""
    for i, case in enumerate(cases):
        first = monday(case.enrolled_on)
        observed = min(states.shape[1], (monday(as_of) - first).days // 7 + 1)
        for week in range(max(observed, 0)):
            yield case.case_id, (first + dt.timedelta(weeks=week)).isoformat(), codes[int(states[i, week])]


def write_weekly_csv(path: Path, cases: Sequence[SimulatedCase], states: NDArray[np.int8],
                     codes: Mapping[int, str], as_of: dt.date) -> int:
    """Write the long-format weekly file `trials outcomes import-weekly` reads; returns the row count."""
    count = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case_id", "week", "status"])
        for case_id, week, status in weekly_rows(cases, states, codes, as_of):
            writer.writerow([neutralise_formula(case_id), week, neutralise_formula(status)])
            count += 1
    return count


def enrolled_cases(session: Session, trial_id: str) -> list[SimulatedCase]:
    """A trial's enrolled cases as simulation input (arm, enrollment date, frozen categorisation)."""
    from sqlalchemy import select

    from trials.models import Case, Enrollment

    rows = session.execute(
        select(Enrollment, Case.case_key).join(Case, Case.id == Enrollment.case_id)
        .where(Enrollment.trial_id == trial_id).order_by(Enrollment.sequence)
    ).all()
    out = []
    for enrollment, case_key in rows:
        frozen = enrollment.frozen or {}
        barriers = [b for b in frozen.get("barriers") or [] if b != "none"]
        out.append(SimulatedCase(
            case_id=case_key, arm=enrollment.arm, enrolled_on=enrollment.enrolled_on,
            months_unemployed=float(frozen.get("months_unemployed") or 0.0), barriers=len(barriers) or 1,
            cluster=frozen.get("caseworker") or enrollment.cluster,
        ))
    return out
