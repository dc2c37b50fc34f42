"""Cox model: lifelines and statsmodels (Efron) agree; cluster-robust SEs; CI coverage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trials.analysis.cox import CLUSTER, STRATUM, E, T, cox_contrasts
from trials.analysis.warnings import AnalysisWarning, WarningLog


def _data(frame: pd.DataFrame, arms=("0", "1"), cluster: str | None = None) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    data = pd.DataFrame({T: frame["weeks"].to_numpy(float), E: frame["event"].to_numpy(int)})
    for i, a in enumerate(arms[1:], start=1):
        data[f"arm_{i}"] = (frame["arm"] == a).astype(float).to_numpy()
    data[STRATUM] = frame["stratum"].astype(int).to_numpy()
    data["adj_0"] = frame["x"].to_numpy(float)
    if cluster:
        data[CLUSTER] = frame[cluster].astype(int).to_numpy()
    return data


def test_lifelines_matches_statsmodels_efron_stratified(sim) -> None:  # type: ignore[no-untyped-def]
    """Reference: statsmodels PHReg(ties="efron", strata=...) log-HR, to 1e-4 (weekly ties, adjusted)."""
    from statsmodels.duration.hazard_regression import PHReg

    frame = sim(600, hr=1.3, seed=3)
    data = _data(frame)
    [c] = cox_contrasts(data, [("1", "arm_1")], "0", ["adj_0"], strata=True, cluster=False, log=WarningLog())
    ref = PHReg(data[T], data[["arm_1", "adj_0"]].to_numpy(), status=data[E], strata=data[STRATUM],
                ties="efron").fit()
    assert c["log_hr"] == pytest.approx(ref.params[0], abs=1e-4)
    assert c["se"] == pytest.approx(ref.bse[0], rel=1e-3)
    assert c["method"].startswith("lifelines")
    assert c["cross_check"]["statsmodels_log_hr"] == pytest.approx(c["log_hr"], abs=1e-4)
    assert c["hr"] == pytest.approx(np.exp(c["log_hr"]))
    assert 0 <= c["ph_test_p"] <= 1


def test_cluster_robust_uses_statsmodels_efron_sandwich(sim) -> None:  # type: ignore[no-untyped-def]
    """Reference: statsmodels PHReg(..., ties="efron").fit(groups=cluster) robust SE; lifelines cluster_col
    (Breslow-type sandwich) reported as the cross-check and close but not identical under ties."""
    from statsmodels.duration.hazard_regression import PHReg

    frame = sim(500, hr=1.3, seed=4, clusters=25)
    data = _data(frame, cluster="team")
    [c] = cox_contrasts(data, [("1", "arm_1")], "0", [], strata=True, cluster=True, log=WarningLog())
    ref = PHReg(data[T], data[["arm_1"]].to_numpy(), status=data[E], strata=data[STRATUM],
                ties="efron").fit(groups=data[CLUSTER])
    assert c["cluster_robust"] is True
    assert "statsmodels" in c["method"] and "cluster-robust" in c["method"]
    assert c["se"] == pytest.approx(ref.bse[0], rel=1e-8)
    assert c["cross_check"]["lifelines_log_hr"] == pytest.approx(c["log_hr"], abs=1e-4)
    assert c["cross_check"]["lifelines_se"] == pytest.approx(c["se"], rel=0.15)


def test_units_censored_before_any_event_do_not_void_the_cluster_robust_se(sim) -> None:  # type: ignore[no-untyped-def]
    """Regression (the demo's caseworker trial had no HR): units censored at week 0, before their
    stratum's first event, made statsmodels' score residuals NaN and with them the cluster-robust
    SE. They are in no risk set, so leaving them out changes nothing: reference = the same data
    without them."""
    from statsmodels.duration.hazard_regression import PHReg

    frame = sim(500, hr=1.3, seed=4, clusters=25)
    data = _data(frame, cluster="team")
    early = data.iloc[:6].copy()
    early[T], early[E] = 0.0, 0
    with_early = pd.concat([data, early], ignore_index=True)
    [c] = cox_contrasts(with_early, [("1", "arm_1")], "0", [], strata=True, cluster=True, log=WarningLog())
    ref = PHReg(data[T], data[["arm_1"]].to_numpy(), status=data[E], strata=data[STRATUM],
                ties="efron").fit(groups=data[CLUSTER])
    assert c["se"] == pytest.approx(ref.bse[0], rel=1e-8)
    assert c["log_hr"] == pytest.approx(ref.params[0], abs=1e-10)


def test_three_arms_give_one_contrast_per_arm(sim) -> None:  # type: ignore[no-untyped-def]
    """Reference: statsmodels PHReg (Efron) with two arm indicators."""
    from statsmodels.duration.hazard_regression import PHReg

    frame = sim(600, hr=1.4, seed=9, arms=("c", "t1", "t2"))
    data = _data(frame, arms=("c", "t1", "t2"))
    out = cox_contrasts(data, [("t1", "arm_1"), ("t2", "arm_2")], "c", [], strata=True, cluster=False,
                        log=WarningLog())
    ref = PHReg(data[T], data[["arm_1", "arm_2"]].to_numpy(), status=data[E], strata=data[STRATUM],
                ties="efron").fit()
    assert [c["arm"] for c in out] == ["t1", "t2"]
    assert [c["log_hr"] for c in out] == pytest.approx(list(ref.params), abs=1e-4)


def test_ci_covers_true_hr_about_95_percent(sim) -> None:  # type: ignore[no-untyped-def]
    """Calibration of the fast numpy fit: its 95% CI covers the true HR (1.5, continuous times) in
    about 95% of 200 trials.

    Binomial(200, 0.95) SD is 1.5 points; accept 90%-99%.
    """
    covered = 0
    for seed in range(200):
        data = _data(sim(200, hr=1.5, seed=1000 + seed, weekly=False))
        [c] = cox_contrasts(data, [("1", "arm_1")], "0", ["adj_0"], strata=True, cluster=False, log=WarningLog(),
                            fast=True)
        covered += c["ci"][0] <= 1.5 <= c["ci"][1]
    assert 0.90 <= covered / 200 <= 0.99


def test_arm_without_events_warns_instead_of_crashing() -> None:
    data = pd.DataFrame({T: [3.0, 4, 5, 6, 7, 8], E: [1, 1, 1, 0, 0, 0], "arm_1": [0.0, 0, 0, 1, 1, 1],
                         STRATUM: 0})
    log = WarningLog()
    with pytest.warns(AnalysisWarning, match="no events"):
        [c] = cox_contrasts(data, [("1", "arm_1")], "0", [], strata=False, cluster=False, log=log)
    assert c["hr"] is None and log.messages
