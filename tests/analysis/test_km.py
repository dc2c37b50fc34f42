"""Kaplan–Meier table, Greenwood variance and log(-log) CI."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trials.analysis.km import kaplan_meier, km_summary, loglog_ci


def test_km_matches_hand_computation() -> None:
    """Reference: hand computation on 6 units.

    times 1, 2+, 3, 3, 4+, 5 (+ censored). At t=1: 6 at risk, 1 event -> S = 5/6.
    t=3: 4 at risk, 2 events -> S = 5/6 * 2/4 = 5/12. t=5: 1 at risk, 1 event -> S = 0.
    Greenwood at t=3: 1/(6*5) + 2/(4*2) = 1/30 + 1/4.
    """
    t = np.array([1, 2, 3, 3, 4, 5], float)
    e = np.array([1, 0, 1, 1, 0, 1])
    table = kaplan_meier(t, e)
    assert table.time.tolist() == [1, 2, 3, 4, 5]
    assert table.at_risk.tolist() == [6, 5, 4, 2, 1]
    assert table.at(1)[0] == pytest.approx(5 / 6)
    assert table.at(2.5)[0] == pytest.approx(5 / 6)
    assert table.at(3)[0] == pytest.approx(5 / 12)
    assert table.at(3)[1] == pytest.approx(1 / 30 + 1 / 4)
    assert table.at(0.5) == (1.0, 0.0)
    assert table.at(5)[0] == 0.0
    assert table.at_risk_at(3) == 4 and table.at_risk_at(3.5) == 2 and table.at_risk_at(9) == 0


def test_km_ci_matches_lifelines() -> None:
    """Reference: lifelines KaplanMeierFitter (exponential Greenwood = log(-log) CI, alpha 0.05)."""
    from lifelines import KaplanMeierFitter

    rng = np.random.default_rng(3)
    t = np.ceil(rng.exponential(20, 150))
    e = (rng.random(150) < 0.7).astype(int)
    table = kaplan_meier(t, e)
    kmf = KaplanMeierFitter().fit(t, e)
    for h in (5.0, 15.0, 30.0):
        s, gw = table.at(h)
        assert s == pytest.approx(float(kmf.survival_function_at_times(h).iloc[0]), abs=1e-12)
        lo, hi = loglog_ci(s, gw)
        ref = kmf.confidence_interval_survival_function_.loc[:h].iloc[-1]
        assert lo == pytest.approx(ref.iloc[0], abs=1e-8)
        assert hi == pytest.approx(ref.iloc[1], abs=1e-8)


def test_summary_share_is_one_minus_survival() -> None:
    table = kaplan_meier(np.array([1.0, 2, 3, 4]), np.array([1, 1, 0, 1]))
    out = km_summary(table, 2.0)
    assert out["share_self_sufficient"] == pytest.approx(1 - out["survival"])
    assert out["ci"][0] == pytest.approx(1 - out["survival_ci"][1])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 20), st.booleans()), min_size=1, max_size=40))
def test_km_is_non_increasing_and_order_free(rows: list[tuple[int, bool]]) -> None:
    """Invariant: S is a non-increasing step function in [0, 1], independent of row order."""
    t = np.array([r[0] for r in rows], float)
    e = np.array([int(r[1]) for r in rows])
    table = kaplan_meier(t, e)
    assert np.all(np.diff(table.survival) <= 1e-12)
    assert np.all((table.survival >= 0) & (table.survival <= 1))
    perm = np.random.default_rng(0).permutation(len(t))
    assert np.allclose(kaplan_meier(t[perm], e[perm]).survival, table.survival)
