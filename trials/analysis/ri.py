"""Randomization inference: re-run the assignment procedure R times, recompute the statistic.

The design-based p-value is (1 + #{replicates with chi2 >= observed}) / (R + 1), the statistic
being the stratified log-rank chi-square, computed for all replicates at once
(`logrank.logrank_statistics`) and for every horizon on the same draws (`randomization_tests`).

A re-randomizer is any callable `rerandomize(R, rng) -> ndarray (R, n)` of arm codes (0..arms-1,
the same coding and row order as the analysed frame), drawn with the numpy Generator it is
given. The database entrance passes the trial's registered procedure; the flat-file default,
`permute_within_strata`, permutes the observed arm labels within each stratum (complete
randomization within strata, keeping each stratum's arm counts).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trials.analysis.logrank import logrank_design, logrank_horizons, logrank_statistics

Rerandomize = Callable[[int, np.random.Generator], NDArray[np.int_]]
Progress = Callable[[int], None]
_BATCH = 500


def permute_within_strata(arm: NDArray[np.int_], strata: NDArray[np.int_] | None) -> Rerandomize:
    arm = np.asarray(arm)
    groups = [np.arange(len(arm))] if strata is None else [np.flatnonzero(strata == s) for s in np.unique(strata)]

    def rerandomize(n_rep: int, rng: np.random.Generator) -> NDArray[np.int_]:
        out = np.empty((n_rep, len(arm)), dtype=arm.dtype)
        for idx in groups:
            perm = np.argsort(rng.random((n_rep, len(idx))), axis=1)
            out[:, idx] = arm[idx][perm]
        return out

    return rerandomize


def permute_clusters_within_strata(arm: NDArray[np.int_], cluster: NDArray[np.int_],
                                   strata: NDArray[np.int_] | None) -> Rerandomize:
    """Cluster randomization: permute the clusters' arms within strata; every unit takes its cluster's arm.

    Each cluster's arm and stratum are those of its first unit (a cluster trial has one arm per
    cluster; `engine` only uses this when that holds).
    """
    arm = np.asarray(arm)
    codes, first, inverse = np.unique(cluster, return_index=True, return_inverse=True)
    cluster_arm = arm[first]
    cluster_strata = None if strata is None else np.asarray(strata)[first]
    inner = permute_within_strata(cluster_arm, cluster_strata)

    def rerandomize(n_rep: int, rng: np.random.Generator) -> NDArray[np.int_]:
        return inner(n_rep, rng)[:, inverse]

    return rerandomize


def randomization_test(time: NDArray[np.float64], event: NDArray[np.int_], strata: NDArray[np.int_] | None,
                       arm: NDArray[np.int_], n_arms: int, control: int, rerandomize: Rerandomize,
                       replicates: int, seed: int, progress: Progress | None = None) -> dict[str, Any]:
    """The design-based p-value of the (stratified) log-rank statistic."""
    return randomization_tests([time], [event], strata, arm, n_arms, control, rerandomize, replicates, seed,
                               progress)[0]


def randomization_tests(times: Sequence[NDArray[np.float64]], events: Sequence[NDArray[np.int_]],
                        strata: NDArray[np.int_] | None, arm: NDArray[np.int_], n_arms: int, control: int,
                        rerandomize: Rerandomize, replicates: int, seed: int,
                        progress: Progress | None = None) -> list[dict[str, Any]]:
    """One randomization test per (time, event) pair (one per horizon), all on the same draws.

    The times must be one follow-up censored at different horizons (each a non-decreasing
    function of the same underlying time), so one sort serves them all; drawing and sorting
    the assignments once is most of the work on a large trial.
    """
    strata_codes = np.zeros(len(arm), dtype=int) if strata is None else np.asarray(strata)
    order = np.lexsort((np.max(np.stack([np.asarray(t, dtype=float) for t in times]), axis=0), strata_codes))
    designs = [logrank_design(t, e, strata, order) for t, e in zip(times, events, strict=True)]
    observed = [float(logrank_statistics(d, arm[None, :], n_arms, control).chi2[0]) for d in designs]
    testable = [i for i, value in enumerate(observed) if np.isfinite(value)]
    exceed = [0] * len(designs)
    if replicates > 0 and testable:
        rng = np.random.default_rng(seed)
        done = 0
        while done < replicates:
            batch = min(_BATCH, replicates - done)
            draws = np.asarray(rerandomize(batch, rng))
            if draws.shape != (batch, len(arm)):
                raise ValueError(f"rerandomize returned shape {draws.shape}, expected {(batch, len(arm))}")
            in_order = np.take(draws, order, axis=1)  # np.take: fancy indexing is ten times slower
            per_horizon = logrank_horizons([designs[i] for i in testable], in_order, n_arms, control)
            for i, result in zip(testable, per_horizon, strict=True):
                stats = np.nan_to_num(result.chi2, nan=0.0)
                exceed[i] += int(np.sum(stats >= observed[i] - 1e-9 * max(1.0, observed[i])))
            done += batch
            if progress is not None:
                progress(batch * len(designs))
    results: list[dict[str, Any]] = []
    for i, value in enumerate(observed):
        if i not in testable or replicates <= 0:
            results.append({"p": None, "replicates": 0, "statistic": "stratified log-rank chi2", "observed": None})
        else:
            results.append({"p": (1 + exceed[i]) / (replicates + 1), "replicates": replicates,
                            "statistic": "stratified log-rank chi2", "observed": value, "seed": seed})
    return results
