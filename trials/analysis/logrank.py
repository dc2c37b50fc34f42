"""Stratified log-rank test in numpy, vectorised over many arm-assignment vectors at once.

For every stratum and every distinct event time t_j the test sums, per non-control arm a,
observed minus expected events O_aj - d_j N_aj / n_j and the hypergeometric covariance
d_j (n_j - d_j) / (n_j - 1) * (N_aj / n_j) (delta_ab - N_bj / n_j). The statistic is
U' V^-1 U, chi-square with (arms - 1) degrees of freedom. lifelines has no stratified log-rank.

The numbers at risk and events per arm are differences of reverse cumulative sums over the
rows sorted by (stratum, time), so R re-randomizations cost O(R n) memory and time: this is
what randomization inference (`ri.py`) runs 10,000 times.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

_CHUNK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class _Design:
    """What does not depend on the assignment: sort order and the (stratum, event time) grid."""

    order: NDArray[np.intp]
    event_sorted: NDArray[np.float64]
    first: NDArray[np.intp]  # first row of the tie group (stratum, t_j)
    after: NDArray[np.intp]  # first row after the tie group
    end: NDArray[np.intp]  # first row after the stratum
    n_risk: NDArray[np.float64]
    deaths: NDArray[np.float64]
    weight: NDArray[np.float64]  # d (n - d) / (n - 1)


def _design(time: NDArray[np.float64], event: NDArray[np.int_], strata: NDArray[np.int_]) -> _Design:
    order = np.lexsort((time, strata))
    t, e, s = time[order], event[order].astype(float), strata[order]
    n = len(t)
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = (t[1:] != t[:-1]) | (s[1:] != s[:-1])
    starts = np.flatnonzero(new_group)
    afters = np.append(starts[1:], n)
    new_stratum = np.ones(n, dtype=bool)
    new_stratum[1:] = s[1:] != s[:-1]
    stratum_starts = np.flatnonzero(new_stratum)
    stratum_ends = np.append(stratum_starts[1:], n)
    stratum_of_row = np.cumsum(new_stratum) - 1
    ends = stratum_ends[stratum_of_row[starts]]
    cum_e = np.concatenate([[0.0], np.cumsum(e)])
    deaths = cum_e[afters] - cum_e[starts]
    keep = deaths > 0
    starts, afters, ends, deaths = starts[keep], afters[keep], ends[keep], deaths[keep]
    n_risk = (ends - starts).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(n_risk > 1, deaths * (n_risk - deaths) / (n_risk - 1), 0.0)
    return _Design(order, e, starts, afters, ends, n_risk, deaths, weight)


@dataclass(frozen=True)
class LogrankResult:
    chi2: NDArray[np.float64]  # (R,)
    u: NDArray[np.float64]  # (R, arms - 1): observed - expected per non-control arm
    v: NDArray[np.float64]  # (R, arms - 1, arms - 1)
    df: int


def logrank_many(
    time: NDArray[np.float64],
    event: NDArray[np.int_],
    strata: NDArray[np.int_] | None,
    assignments: NDArray[np.int_],
    n_arms: int,
    control: int = 0,
) -> LogrankResult:
    """The (stratified) log-rank statistic for each row of `assignments` (shape (R, n), arm codes)."""
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=int)
    strata = np.zeros(len(time), dtype=int) if strata is None else np.asarray(strata)
    assignments = np.atleast_2d(np.asarray(assignments))
    design = _design(time, event, strata)
    others = [a for a in range(n_arms) if a != control]
    k = len(others)
    n_rep, n = assignments.shape
    chunk = max(1, _CHUNK_ELEMENTS // max(1, n * k))
    u_all = np.empty((n_rep, k))
    v_all = np.empty((n_rep, k, k))
    for lo in range(0, n_rep, chunk):
        block = assignments[lo: lo + chunk][:, design.order]
        frac = np.empty((block.shape[0], k, len(design.deaths)))
        u = np.empty((block.shape[0], k))
        for i, arm in enumerate(others):
            ind = (block == arm).astype(float)
            cum = np.zeros((ind.shape[0], n + 1))
            cum[:, :n] = ind[:, ::-1].cumsum(axis=1)[:, ::-1]
            ind *= design.event_sorted
            cum_e = np.zeros((ind.shape[0], n + 1))
            cum_e[:, :n] = ind[:, ::-1].cumsum(axis=1)[:, ::-1]
            n_arm = cum[:, design.first] - cum[:, design.end]
            d_arm = cum_e[:, design.first] - cum_e[:, design.after]
            frac[:, i, :] = n_arm / design.n_risk
            u[:, i] = (d_arm - design.deaths * frac[:, i, :]).sum(axis=1)
        weighted = frac * design.weight
        v = -np.einsum("raj,rbj->rab", weighted, frac)
        v[:, np.arange(k), np.arange(k)] += weighted.sum(axis=2)
        u_all[lo: lo + chunk] = u
        v_all[lo: lo + chunk] = v
    if k == 1:
        var = v_all[:, 0, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            chi2 = np.where(var > 1e-12, u_all[:, 0] ** 2 / var, np.nan)
    else:
        chi2 = np.einsum("ra,rab,rb->r", u_all, np.linalg.pinv(v_all), u_all)
        chi2[np.abs(np.linalg.det(v_all)) < 1e-12] = np.nan
    return LogrankResult(chi2, u_all, v_all, k)


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
