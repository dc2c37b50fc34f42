"""Stratified log-rank test, vectorised over assignments."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trials.analysis.logrank import logrank, logrank_many


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
