"""Restricted mean survival time and its Greenwood-type variance (survRM2)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trials.analysis.km import kaplan_meier
from trials.analysis.rmst import rmst, rmst_contrast


def _km_step(t: np.ndarray, e: np.ndarray):  # type: ignore[no-untyped-def]
    table = kaplan_meier(t, e)
    return lambda u: np.array([table.at(x)[0] for x in np.atleast_1d(u)])


def test_rmst_equals_numerical_integral_of_km() -> None:
    """Reference: midpoint-rule integral of the KM step function on a 0.001-week grid."""
    rng = np.random.default_rng(1)
    t = np.ceil(rng.exponential(30, 200))
    e = (rng.random(200) < 0.8).astype(int)
    for tau in (10.0, 25.5, 52.0):
        grid = np.arange(0, tau, 0.001) + 0.0005
        ref = float(np.sum(_km_step(t, e)(grid)) * 0.001)
        assert rmst(t, e, tau)[0] == pytest.approx(ref, abs=1e-6)


def test_rmst_matches_lifelines_point_estimate() -> None:
    """Reference: lifelines.utils.restricted_mean_survival_time (point estimate only)."""
    from lifelines import KaplanMeierFitter
    from lifelines.utils import restricted_mean_survival_time

    rng = np.random.default_rng(2)
    t = np.ceil(rng.exponential(30, 150))
    e = (rng.random(150) < 0.7).astype(int)
    kmf = KaplanMeierFitter().fit(t, e)
    assert rmst(t, e, 40.0)[0] == pytest.approx(restricted_mean_survival_time(kmf, t=40.0), abs=1e-8)


def test_variance_matches_independent_loop() -> None:
    """Reference: the Klein & Moeschberger (4.5.2) formula written as a loop over event times,
    var = sum_j [integral_{t_j}^{tau} S(u) du]^2 d_j / (Y_j (Y_j - d_j)), the integral done numerically.
    Hand-checked data set: times 2, 3+, 3, 5, 6+, 8, tau 7.
    """
    t = np.array([2, 3, 3, 5, 6, 8], float)
    e = np.array([1, 0, 1, 1, 0, 1])
    tau = 7.0
    step = _km_step(t, e)
    ref = 0.0
    for tj in np.unique(t[(e == 1) & (t <= tau)]):
        y = np.sum(t >= tj)
        d = np.sum((t == tj) & (e == 1))
        if y > d:
            grid = np.arange(tj, tau, 0.0005) + 0.00025
            area = float(np.sum(step(grid)) * 0.0005)
            ref += area**2 * d / (y * (y - d))
    value, var = rmst(t, e, tau)
    # S: 1 on [0,2), 5/6 on [2,3), 5/6*4/5=2/3 on [3,5), 2/3*2/3=4/9 on [5,7]
    assert value == pytest.approx(2 + 5 / 6 + 2 * 2 / 3 + 2 * 4 / 9)
    assert var == pytest.approx(ref, rel=1e-4)


def test_variance_agrees_with_bootstrap() -> None:
    """Reference: nonparametric bootstrap variance (1000 resamples, seed 0); agreement within 15%."""
    rng = np.random.default_rng(5)
    t = np.ceil(rng.exponential(40, 300))
    e = (rng.random(300) < 0.75).astype(int)
    _, var = rmst(t, e, 52.0)
    boot = []
    for _ in range(1000):
        idx = rng.integers(0, 300, 300)
        boot.append(rmst(t[idx], e[idx], 52.0)[0])
    assert var == pytest.approx(np.var(boot, ddof=1), rel=0.15)


def test_contrast_is_treatment_minus_control() -> None:
    c = rmst_contrast("1", "0", (30.0, 4.0), (35.0, 5.0))
    assert c["difference"] == -5.0 and c["se"] == pytest.approx(3.0)
    assert c["ci"][0] < -5 < c["ci"][1]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 30), st.booleans()), min_size=1, max_size=30), st.floats(1, 40))
def test_rmst_bounded_by_tau(rows: list[tuple[int, bool]], tau: float) -> None:
    """Invariant: 0 <= RMST <= tau, variance >= 0."""
    t = np.array([r[0] for r in rows], float)
    e = np.array([int(r[1]) for r in rows])
    value, var = rmst(t, e, tau)
    assert -1e-9 <= value <= tau + 1e-9 and var >= 0
