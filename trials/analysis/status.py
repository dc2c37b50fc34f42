"""Status at the horizon (self-sufficient or not) as a risk difference and an odds ratio.

Both are statsmodels regressions adjusted for the randomization strata (stratum indicators):
the risk difference from least squares (the linear probability model; the same estimate as a
Gaussian GLM with identity link in one solve instead of iterations), the odds ratio from a
binomial GLM with logit link. Standard errors are heteroskedasticity-robust (HC1: HC0 times
n / (n - k)) or, for cluster trials, cluster-robust. Units censored before the horizon without an event have
no known status and are left out (counted in `excluded_censored`).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from trials.analysis.km import Z95
from trials.analysis.warnings import WarningLog

if TYPE_CHECKING:
    import pandas as pd

from trials.analysis.cox import CLUSTER, STRATUM, E, T


def status_contrasts(data: pd.DataFrame, horizon: float, arms: list[tuple[str, str]], control: str, *,
                     strata: bool, cluster: bool, log: WarningLog, label: str = "") -> list[dict[str, Any]]:
    import pandas as pd
    import statsmodels.api as sm
    from scipy.stats import norm

    reached = (data[E] == 1) & (data[T] <= horizon)
    known = reached | (data[T] >= horizon)
    excluded = int((~known).sum())
    if excluded > 0.1 * len(data):
        log.warn(f"{label}{excluded} unit(s) censored before week {horizon:g} without an event have no known "
                 "status and are left out of the status analysis.")
    d = data.loc[known]
    y = reached.loc[known].astype(float).to_numpy()
    cov_type = "cluster" if cluster else "HC1"
    cov_kwds = {"groups": pd.factorize(d[CLUSTER])[0]} if cluster else None
    base = {"control": control, "n": int(len(y)), "excluded_censored": excluded, "stratified": strata,
            "cov_type": cov_type}
    empty: dict[str, Any] = {"risk_difference": None, "ci": [None, None], "p": None, "odds_ratio": None,
                             "odds_ratio_ci": [None, None], "odds_ratio_p": None}
    if len(y) == 0 or y.min() == y.max():
        log.warn(f"{label}Status at week {horizon:g} is the same for every unit; no risk difference or odds ratio.")
        return [{"arm": name, **base, **empty} for name, _ in arms]
    arm_cols = [col for _, col in arms]
    design = d[arm_cols].astype(float)
    if strata and d[STRATUM].nunique() > 1:
        design = pd.concat([design, pd.get_dummies(d[STRATUM], prefix="s", drop_first=True, dtype=float)], axis=1)
    x = sm.add_constant(design.to_numpy(float), has_constant="add")
    rd = lo = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            rd = sm.OLS(y, x).fit(cov_type=cov_type, cov_kwds=cov_kwds)
        except Exception as exc:  # noqa: BLE001
            log.warn(f"{label}Risk-difference model failed: {exc}".split("\n")[0])
        try:
            lo = sm.GLM(y, x, family=sm.families.Binomial()).fit(cov_type=cov_type, cov_kwds=cov_kwds)
            if not np.all(np.isfinite(lo.bse)) or np.max(np.abs(lo.params[1: 1 + len(arms)])) > 15:
                raise ValueError("separation: an arm has all or no units self-sufficient")
        except Exception as exc:  # noqa: BLE001
            log.warn(f"{label}Odds-ratio model failed at week {horizon:g}: {exc}".split("\n")[0])
            lo = None
    out = []
    for i, (name, _) in enumerate(arms, start=1):
        entry: dict[str, Any] = {"arm": name, **base, **empty}
        if rd is not None and np.isfinite(rd.bse[i]):
            b, se = float(rd.params[i]), float(rd.bse[i])
            entry.update(risk_difference=b, ci=[b - Z95 * se, b + Z95 * se], se=se,
                         p=float(2 * norm.sf(abs(b) / se)) if se > 0 else None)
        if lo is not None:
            b, se = float(lo.params[i]), float(lo.bse[i])
            entry.update(odds_ratio=float(np.exp(b)), odds_ratio_ci=[float(np.exp(b - Z95 * se)),
                                                                     float(np.exp(b + Z95 * se))],
                         odds_ratio_p=float(2 * norm.sf(abs(b) / se)) if se > 0 else None)
        out.append(entry)
    return out
