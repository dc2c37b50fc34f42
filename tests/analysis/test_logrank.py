"""Stratified log-rank test, vectorised over assignments."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trials.analysis import logrank as logrank_module
from trials.analysis.logrank import logrank, logrank_design, logrank_horizons, logrank_many


def _arrays(frame):  # type: ignore[no-untyped-def]
    arm_names = sorted(frame["arm"].unique())
    arm = np.array([arm_names.index(a) for a in frame["arm"]])
    return frame["weeks"].to_numpy(float), frame["event"].to_numpy(int), arm, frame["stratum"].astype(int).to_numpy()


@pytest.mark.parametrize("stratified", [True, False])
def test_matches_statsmodels_survdiff(stratified: bool, sim) -> None:
    """Reference: statsmodels.duration.survfunc.survdiff(time, status, group, strata=...) (weekly ties)."""
    from statsmodels.duration.survfunc import survdiff

    t, e, arm, s = _arrays(sim(500, hr=1.3, seed=11))
    ours = logrank(t, e, arm, 2, 0, s if stratified else None)
    chi2, p = survdiff(t, e, arm, strata=s if stratified else None)
    assert ours["chi2"] == pytest.approx(chi2, rel=1e-9)
    assert ours["p"] == pytest.approx(p, rel=1e-7)
    assert ours["stratified"] is stratified


def test_three_arms_matches_survdiff(sim) -> None:
    """Reference: statsmodels survdiff with three groups and strata (2 degrees of freedom)."""
    from statsmodels.duration.survfunc import survdiff

    t, e, arm, s = _arrays(sim(600, hr=1.3, seed=5, arms=("a", "b", "c")))
    ours = logrank(t, e, arm, 3, 0, s)
    chi2, p = survdiff(t, e, arm, strata=s)
    assert ours["df"] == 2
    assert ours["chi2"] == pytest.approx(chi2, rel=1e-8)
    # The statistic does not depend on which arm is the reference.
    assert logrank(t, e, arm, 3, 2, s)["chi2"] == pytest.approx(chi2, rel=1e-8)


def test_vectorised_equals_one_at_a_time(sim) -> None:
    """Reference: the same function called once per assignment vector."""
    t, e, _, s = _arrays(sim(200, seed=2))
    rng = np.random.default_rng(0)
    draws = rng.integers(0, 2, (25, len(t)))
    many = logrank_many(t, e, s, draws, 2, 0).chi2
    single = [logrank_many(t, e, s, d[None, :], 2, 0).chi2[0] for d in draws]
    assert np.allclose(many, single)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000))
def test_invariant_to_row_order(sim, seed: int) -> None:
    """Invariant: permuting the rows does not change the statistic."""
    t, e, arm, s = _arrays(sim(60, seed=seed % 50 + 1))
    perm = np.random.default_rng(seed).permutation(len(t))
    a = logrank(t, e, arm, 2, 0, s)["chi2"]
    b = logrank(t[perm], e[perm], arm[perm], 2, 0, s[perm])["chi2"]
    assert a == pytest.approx(b, rel=1e-9, abs=1e-12)


def test_size_under_the_null(sim) -> None:
    """Calibration: under HR = 1 the stratified log-rank rejects at about 5% (400 trials, fixed seeds).

    Binomial(400, 0.05) has SD 1.1 percentage points; accept 2%-9%.
    """
    rejections = 0
    for seed in range(400):
        t, e, arm, s = _arrays(sim(150, hr=1.0, seed=seed))
        rejections += logrank(t, e, arm, 2, 0, s)["p"] < 0.05
    assert 0.02 <= rejections / 400 <= 0.09


def test_no_events_gives_none() -> None:
    out = logrank(np.array([5.0, 6, 7, 8]), np.zeros(4, int), np.array([0, 1, 0, 1]), 2)
    assert out["chi2"] is None and out["p"] is None


@pytest.mark.parametrize("arms", [2, 3])
def test_horizons_from_the_longest_equal_each_horizon_alone(sim, arms: int) -> None:  # type: ignore[no-untyped-def]
    """Reference: logrank_many at each horizon separately (the shorter horizons' counts are sums of
    the longest's; the test also checks that this path, not the direct count, was taken)."""
    t, e, _, s = _arrays(sim(400, seed=7))
    draws = np.random.default_rng(1).integers(0, arms, (30, len(t)))
    order = np.lexsort((t, s))
    horizons = [26.0, 52.0, 104.0]
    designs = [logrank_design(np.minimum(t, h), (e == 1) & (t <= h), s, order) for h in horizons]
    assert all(logrank_module._refinement(designs[-1], d) is not None for d in designs)
    together = logrank_horizons(designs, draws[:, order], arms, 0)
    for h, result in zip(horizons, together, strict=True):
        alone = logrank_many(np.minimum(t, h), (e == 1) & (t <= h), s, draws, arms, 0)
        assert np.allclose(result.chi2, alone.chi2, rtol=1e-12, equal_nan=True)


def test_designs_that_do_not_nest_are_counted_directly(sim) -> None:  # type: ignore[no-untyped-def]
    t, e, _, s = _arrays(sim(300, seed=8))
    other_events = np.random.default_rng(2).integers(0, 2, len(t))  # not the same follow-up
    order = np.lexsort((t, s))
    designs = [logrank_design(t, e, s, order), logrank_design(t, other_events, s, order)]
    assert logrank_module._refinement(designs[0], designs[1]) is None
    draws = np.random.default_rng(3).integers(0, 2, (10, len(t)))
    together = logrank_horizons(designs, draws[:, order], 2, 0)
    assert np.allclose(together[1].chi2, logrank_many(t, other_events, s, draws, 2, 0).chi2, rtol=1e-12)
