"""Randomization inference: design-based p-values from re-run assignments."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trials.analysis.ri import permute_within_strata, randomization_test


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3)), min_size=2, max_size=40), st.integers(0, 99))
def test_permutation_keeps_each_strata_arm_counts(rows: list[tuple[int, int]], seed: int) -> None:
    """Invariant: complete re-randomization within strata keeps every stratum's arm counts."""
    arm = np.array([r[0] for r in rows])
    strata = np.array([r[1] for r in rows])
    draws = permute_within_strata(arm, strata)(7, np.random.default_rng(seed))
    assert draws.shape == (7, len(arm))
    for s in np.unique(strata):
        for d in draws:
            assert sorted(d[strata == s]) == sorted(arm[strata == s])


def test_p_values_uniform_under_null(sim) -> None:  # type: ignore[no-untyped-def]
    """Calibration: under no effect the RI p-values (R = 99 each, 200 trials, fixed seeds) are uniform:
    Kolmogorov–Smirnov against U(0,1) with the discreteness of R=99 does not reject at 1%, and
    about 5% are <= 0.05."""
    from scipy.stats import kstest

    ps = []
    for seed in range(200):
        f = sim(80, hr=1.0, seed=seed)
        arm = (f["arm"] == "1").astype(int).to_numpy()
        strata = f["stratum"].astype(int).to_numpy()
        res = randomization_test(f["weeks"].to_numpy(float), f["event"].to_numpy(int), strata, arm, 2, 0,
                                 permute_within_strata(arm, strata), 99, seed)
        ps.append(res["p"])
    ps_arr = np.array(ps)
    assert kstest(ps_arr, "uniform").pvalue > 0.01
    assert 0.01 <= np.mean(ps_arr <= 0.05) <= 0.10


def test_strong_effect_gives_small_p(sim) -> None:  # type: ignore[no-untyped-def]
    f = sim(400, hr=2.0, seed=1)
    arm = (f["arm"] == "1").astype(int).to_numpy()
    res = randomization_test(f["weeks"].to_numpy(float), f["event"].to_numpy(int), None, arm, 2, 0,
                             permute_within_strata(arm, None), 199, 0)
    assert res["p"] == pytest.approx(1 / 200) and res["replicates"] == 199


def test_injected_procedure_is_used_and_shape_checked() -> None:
    """The injected callable decides the replicates: always the observed assignment gives p = 1."""
    t = np.arange(1.0, 21.0)
    e = np.ones(20, int)
    arm = np.tile([0, 1], 10)
    calls: list[int] = []

    def same(r: int, rng: np.random.Generator) -> np.ndarray:
        calls.append(r)
        return np.tile(arm, (r, 1))

    res = randomization_test(t, e, None, arm, 2, 0, same, 1200, 0)
    assert res["p"] == 1.0 and sum(calls) == 1200 and len(calls) == 3
    with pytest.raises(ValueError, match="shape"):
        randomization_test(t, e, None, arm, 2, 0, lambda r, rng: np.zeros((r, 3), int), 10, 0)


def test_cluster_permutation_keeps_clusters_whole() -> None:
    """Invariant: every unit of a cluster gets the same arm; the clusters' arm counts per stratum are kept."""
    from trials.analysis.ri import permute_clusters_within_strata

    rng = np.random.default_rng(0)
    cluster = rng.integers(0, 12, 200)
    cluster_arm = np.tile([0, 1], 6)
    cluster_stratum = np.repeat([0, 1], 6)
    arm, strata = cluster_arm[cluster], cluster_stratum[cluster]
    draws = permute_clusters_within_strata(arm, cluster, strata)(50, rng)
    for d in draws:
        for c in range(12):
            assert len(np.unique(d[cluster == c])) == 1
        per_cluster = np.array([d[cluster == c][0] for c in range(12)])
        for s in (0, 1):
            assert sorted(per_cluster[cluster_stratum == s]) == sorted(cluster_arm[cluster_stratum == s])
