"""Randomization inference: re-run the assignment procedure R times, recompute the statistic.

The design-based p-value is (1 + #{replicates with chi2 >= observed}) / (R + 1), the statistic
being the stratified log-rank chi-square, computed for all replicates at once (`logrank_many`).

A re-randomizer is any callable `rerandomize(R, rng) -> ndarray (R, n)` of arm codes (0..arms-1,
the same coding and row order as the analysed frame), drawn with the numpy Generator it is
given. The database entrance passes the trial's registered procedure; the flat-file default,
`permute_within_strata`, permutes the observed arm labels within each stratum (complete
randomization within strata, keeping each stratum's arm counts).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trials.analysis.logrank import logrank_many

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
    observed = float(logrank_many(time, event, strata, arm[None, :], n_arms, control).chi2[0])
    if not np.isfinite(observed) or replicates <= 0:
        return {"p": None, "replicates": 0, "statistic": "stratified log-rank chi2", "observed": None}
    rng = np.random.default_rng(seed)
    exceed = done = 0
    while done < replicates:
        batch = min(_BATCH, replicates - done)
        draws = np.asarray(rerandomize(batch, rng))
        if draws.shape != (batch, len(arm)):
            raise ValueError(f"rerandomize returned shape {draws.shape}, expected {(batch, len(arm))}")
        stats = logrank_many(time, event, strata, draws, n_arms, control).chi2
        exceed += int(np.sum(np.nan_to_num(stats, nan=0.0) >= observed - 1e-9 * max(1.0, observed)))
        done += batch
        if progress is not None:
            progress(batch)
    return {"p": (1 + exceed) / (replicates + 1), "replicates": replicates,
            "statistic": "stratified log-rank chi2", "observed": observed, "seed": seed}
