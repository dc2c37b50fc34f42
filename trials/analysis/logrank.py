"""Stratified log-rank test in numpy, vectorised over many arm-assignment vectors at once.

For every stratum and every distinct event time t_j the test sums, per non-control arm a,
observed minus expected events O_aj - d_j N_aj / n_j and the hypergeometric covariance
d_j (n_j - d_j) / (n_j - 1) * (N_aj / n_j) (delta_ab - N_bj / n_j). The statistic is
U' V^-1 U, chi-square with (arms - 1) degrees of freedom. lifelines has no stratified log-rank.

What does not depend on the assignment is computed once (`LogrankDesign`): the rows sorted by
(stratum, time), the "segments" between consecutive event times of a stratum, and where each
event time's events sit. Per assignment, the numbers at risk N_aj are segment counts of the arm
indicator cumulated backwards and the observed events O_aj are counts over the event rows, all
integer sums over a boolean array. So R re-randomizations cost two segment sums per arm: this
is what randomization inference (`ri.py`) runs 10,000 times, for every horizon on the same draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from trials.analysis.risksets import risk_sets

_CHUNK_ELEMENTS = 32_000_000  # of the boolean arm indicator


@dataclass(frozen=True)
class LogrankDesign:
    """What does not depend on the assignment, for rows sorted by (stratum, time) in `order`."""

    order: NDArray[np.intp]
    segment_starts: NDArray[np.intp]  # sorted positions where a segment begins (np.add.reduceat)
    time_starts: NDArray[np.intp]  # per event time: the sorted position of its first row
    first_segment: NDArray[np.intp]  # per event time: the segment where its risk set begins
    end_segment: NDArray[np.intp]  # per event time: the first segment after its stratum
    event_rows: NDArray[np.intp]  # sorted positions of the rows with an event
    first_event: NDArray[np.intp]  # per event time: where its events begin in event_rows
    n_risk: NDArray[np.float64]
    deaths: NDArray[np.float64]
    weight: NDArray[np.float64]  # d (n - d) / (n - 1)


def logrank_design(time: NDArray[np.float64], event: NDArray[np.int_], strata: NDArray[np.int_] | None,
                   order: NDArray[np.intp] | None = None) -> LogrankDesign:
    """The assignment-free part of the test (`order`: see `risksets.risk_sets`)."""
    sets = risk_sets(time, event, strata, order)
    deaths, n_risk = sets.deaths.astype(float), sets.n_risk
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(n_risk > 1, deaths * (n_risk - deaths) / (n_risk - 1), 0.0)
    segment_starts = np.union1d(sets.time_starts, sets.stratum_starts).astype(np.intp)
    return LogrankDesign(sets.order, segment_starts, sets.time_starts,
                         np.searchsorted(segment_starts, sets.time_starts), np.searchsorted(segment_starts, sets.ends),
                         sets.event_rows, sets.first_event, n_risk, deaths, weight)


@dataclass(frozen=True)
class LogrankResult:
    chi2: NDArray[np.float64]  # (R,)
    u: NDArray[np.float64]  # (R, arms - 1): observed - expected per non-control arm
    v: NDArray[np.float64]  # (R, arms - 1, arms - 1)
    df: int


def logrank_statistics(design: LogrankDesign, assignments: NDArray[np.integer], n_arms: int, control: int = 0,
                       *, presorted: bool = False) -> LogrankResult:
    """The statistic for each row of `assignments` ((R, n) arm codes, in the design's sorted row
    order if `presorted`, else in the original row order)."""
    assignments = np.atleast_2d(np.asarray(assignments))
    if not presorted:
        assignments = assignments.take(design.order, axis=1)
    return logrank_horizons([design], assignments, n_arms, control)[0]


def logrank_horizons(designs: list[LogrankDesign], assignments: NDArray[np.integer], n_arms: int,
                     control: int = 0) -> list[LogrankResult]:
    """The statistic under each design for each row of `assignments` (sorted in the designs'
    shared order). The designs are one follow-up censored at several horizons: the arms are
    counted once under the longest, whose segments and event times refine the others', and
    the others' counts are sums of its counts (each is checked; if not, counted directly)."""
    assignments = np.atleast_2d(np.asarray(assignments))
    others = [a for a in range(n_arms) if a != control]
    finest = max(range(len(designs)), key=lambda i: len(designs[i].deaths))
    maps = [_refinement(designs[finest], d) for d in designs]
    n_rep, n = assignments.shape
    chunk = max(1, _CHUNK_ELEMENTS // max(1, n))
    u_all = [np.zeros((n_rep, len(others))) for _ in designs]
    v_all = [np.zeros((n_rep, len(others), len(others))) for _ in designs]
    for lo in range(0, n_rep, chunk):
        block = assignments[lo: lo + chunk]
        fine = _count_arms(designs[finest], block, others)
        for i, design in enumerate(designs):
            if not len(design.deaths):
                continue
            mapping = maps[i]
            counts = _count_arms(design, block, others) if mapping is None else (
                np.add.reduceat(fine[0], mapping[0], axis=2), fine[1][:, :, mapping[1]])
            u_all[i][lo: lo + chunk], v_all[i][lo: lo + chunk] = _scores(design, *counts)
    return [_chi2(u, v) for u, v in zip(u_all, v_all, strict=True)]


def _count_arms(design: LogrankDesign, block: NDArray[np.integer], others: list[int]
                ) -> tuple[NDArray[np.int32], NDArray[np.int32]]:
    """Per row and non-control arm: the arm's rows per segment (R, k, segments) and its events
    per event time (R, k, times). The costly pass: int32 sums over a boolean array."""
    segments, observed = [], []
    for arm in others:
        in_arm = block == arm
        if len(design.deaths):
            segments.append(np.add.reduceat(in_arm, design.segment_starts, axis=1, dtype=np.int32))
            observed.append(np.add.reduceat(in_arm.take(design.event_rows, axis=1), design.first_event, axis=1,
                                            dtype=np.int32))
        else:
            segments.append(np.zeros((len(block), len(design.segment_starts)), dtype=np.int32))
            observed.append(np.zeros((len(block), 0), dtype=np.int32))
    return np.stack(segments, axis=1), np.stack(observed, axis=1)


def _refinement(fine: LogrankDesign, coarse: LogrankDesign) -> tuple[NDArray[np.intp], NDArray[np.intp]] | None:
    """Where `coarse`'s segments begin among `fine`'s, and which of `fine`'s event times are
    `coarse`'s, if fine refines coarse (same order, every boundary and event time shared)."""
    if fine is coarse:
        return np.arange(len(fine.segment_starts)), np.arange(len(fine.deaths))
    if not len(coarse.deaths) or not np.array_equal(fine.order, coarse.order):
        return None
    segments = np.searchsorted(fine.segment_starts, coarse.segment_starts)
    times = np.searchsorted(fine.time_starts, coarse.time_starts)
    if (segments.max() >= len(fine.segment_starts) or times.max() >= len(fine.time_starts)
            or not np.array_equal(fine.segment_starts[segments], coarse.segment_starts)
            or not np.array_equal(fine.time_starts[times], coarse.time_starts)
            or not np.array_equal(fine.deaths[times], coarse.deaths)
            or not np.isin(coarse.event_rows, fine.event_rows).all()):
        return None
    return segments, times


def _scores(design: LogrankDesign, segments: NDArray[np.int32], observed: NDArray[np.int32]
            ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """U (R, k) and V (R, k, k) from the arm counts."""
    at_or_after = np.zeros((*segments.shape[:2], segments.shape[2] + 1), dtype=np.int64)
    at_or_after[:, :, :-1] = segments[:, :, ::-1].cumsum(axis=2, dtype=np.int64)[:, :, ::-1]
    n_arm = at_or_after[:, :, design.first_segment] - at_or_after[:, :, design.end_segment]
    frac = n_arm / design.n_risk
    u = observed.sum(axis=2) - (design.deaths * frac).sum(axis=2)
    weighted = frac * design.weight
    k = frac.shape[1]
    v = -np.einsum("raj,rbj->rab", weighted, frac)
    v[:, np.arange(k), np.arange(k)] += weighted.sum(axis=2)
    return u, v


def _chi2(u: NDArray[np.float64], v: NDArray[np.float64]) -> LogrankResult:
    k = u.shape[1]
    if k == 1:
        var = v[:, 0, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            chi2 = np.where(var > 1e-12, u[:, 0] ** 2 / var, np.nan)
    else:
        chi2 = np.einsum("ra,rab,rb->r", u, np.linalg.pinv(v), u)
        chi2[np.abs(np.linalg.det(v)) < 1e-12] = np.nan
    return LogrankResult(chi2, u, v, k)


def logrank_many(
    time: NDArray[np.float64],
    event: NDArray[np.int_],
    strata: NDArray[np.int_] | None,
    assignments: NDArray[np.int_],
    n_arms: int,
    control: int = 0,
) -> LogrankResult:
    """The (stratified) log-rank statistic for each row of `assignments` (shape (R, n), arm codes)."""
    return logrank_statistics(logrank_design(time, event, strata), assignments, n_arms, control)


def logrank(
    time: NDArray[np.float64],
    event: NDArray[np.int_],
    arm: NDArray[np.int_],
    n_arms: int,
    control: int = 0,
    strata: NDArray[np.int_] | None = None,
) -> dict[str, float | int | bool | None]:
    """One log-rank test as a JSON-ready dict (`chi2`, `df`, `p`, `stratified`)."""
    from scipy.stats import chi2 as chi2_dist

    result = logrank_many(time, event, strata, np.asarray(arm)[None, :], n_arms, control)
    stat = float(result.chi2[0])
    n_strata = 1 if strata is None else len(np.unique(strata))
    finite = bool(np.isfinite(stat))
    return {
        "chi2": stat if finite else None,
        "df": result.df,
        "p": float(chi2_dist.sf(stat, result.df)) if finite else None,
        "stratified": strata is not None and n_strata > 1,
        "strata": n_strata,
    }
