"""Status at the horizon: risk difference (least squares) and odds ratio (logit GLM)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trials.analysis.cox import CLUSTER, STRATUM, E, T
from trials.analysis.status import status_contrasts
from trials.analysis.warnings import WarningLog


def _two_by_two() -> pd.DataFrame:
    # control: 30 of 100 self-sufficient by week 52; treatment: 45 of 100. Nobody censored early.
    y = np.r_[np.ones(30), np.zeros(70), np.ones(45), np.zeros(55)]
    arm = np.r_[np.zeros(100), np.ones(100)]
    return pd.DataFrame({T: np.where(y == 1, 10.0, 60.0), E: y.astype(int), "arm_1": arm, STRATUM: 0,
                         CLUSTER: np.arange(200) // 10})


def test_unstratified_matches_two_by_two_table() -> None:
    """Reference: hand computation from the 2x2 table: RD = 0.45 - 0.30, OR = (45*70)/(55*30),
    HC1-robust SE of RD = the unpooled Wald SE sqrt(p1 q1/n1 + p0 q0/n0) (which is HC0 for two
    groups) times sqrt(n/(n-k)) with k = 2 parameters."""
    [c] = status_contrasts(_two_by_two(), 52.0, [("1", "arm_1")], "0", strata=False, cluster=False,
                           log=WarningLog())
    assert c["risk_difference"] == pytest.approx(0.15)
    assert c["odds_ratio"] == pytest.approx(45 * 70 / (55 * 30))
    wald = np.sqrt(0.45 * 0.55 / 100 + 0.3 * 0.7 / 100)
    assert c["se"] == pytest.approx(wald * np.sqrt(200 / 198), rel=1e-9)
    assert c["cov_type"] == "HC1" and c["excluded_censored"] == 0


def test_cluster_robust_changes_only_the_se() -> None:
    """Reference: the point estimates above; cluster-robust SE differs from HC1."""
    data = _two_by_two()
    [hc] = status_contrasts(data, 52.0, [("1", "arm_1")], "0", strata=False, cluster=False, log=WarningLog())
    [cl] = status_contrasts(data, 52.0, [("1", "arm_1")], "0", strata=False, cluster=True, log=WarningLog())
    assert cl["risk_difference"] == pytest.approx(hc["risk_difference"])
    assert cl["cov_type"] == "cluster" and cl["se"] != pytest.approx(hc["se"])


def test_censored_before_horizon_are_left_out() -> None:
    data = _two_by_two()
    data.loc[:9, [T, E]] = [5.0, 0]
    [c] = status_contrasts(data, 52.0, [("1", "arm_1")], "0", strata=False, cluster=False, log=WarningLog())
    assert c["excluded_censored"] == 10 and c["n"] == 190


def test_all_same_status_warns() -> None:
    data = _two_by_two()
    data[E] = 0
    data[T] = 60.0
    log = WarningLog()
    with pytest.warns(UserWarning):
        [c] = status_contrasts(data, 52.0, [("1", "arm_1")], "0", strata=False, cluster=False, log=log)
    assert c["risk_difference"] is None
