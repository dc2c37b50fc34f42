"""Cox proportional hazards, stratified by the randomization strata, Efron ties.

Without clusters the estimate is lifelines' `CoxPHFitter(strata=...)` and statsmodels' `PHReg`
(Efron) is fitted beside it as a cross-check. With clusters the standard errors must be
cluster-robust; lifelines' sandwich estimator ignores ties (weekly data are all ties), so the
reported result is statsmodels `PHReg(..., ties="efron").fit(groups=cluster)` and lifelines'
`cluster_col` result is kept as the cross-check. `method` names which one is reported.
The proportional-hazards check is lifelines' scaled Schoenfeld residual test (rank time).
The many small models beside it (subgroups, prognostic comparison) use `efron.fit_efron`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from trials.analysis.km import Z95
from trials.analysis.warnings import AnalysisWarning, WarningLog

if TYPE_CHECKING:
    import pandas as pd

T, E, STRATUM, CLUSTER = "_T", "_E", "_stratum", "_cluster"
PH_ALPHA = 0.05
MAX_SE = 5.0  # a log-HR standard error above this means the data carry no information


@dataclass
class CoxFit:
    """Log-HRs and standard errors of the named covariates from one engine."""

    engine: str
    params: dict[str, float]
    se: dict[str, float]
    ph_p: dict[str, float | None]


def _lifelines(data: pd.DataFrame, covariates: list[str], strata: bool, cluster: bool, ph_test: bool) -> CoxFit:
    from lifelines import CoxPHFitter
    from lifelines.statistics import proportional_hazard_test

    cols = [T, E, *covariates] + ([STRATUM] if strata else []) + ([CLUSTER] if cluster else [])
    frame = data[cols]
    cph = CoxPHFitter()
    cph.fit(frame, T, E, strata=[STRATUM] if strata else None, cluster_col=CLUSTER if cluster else None,
            robust=cluster)
    params = {c: float(cph.params_[c]) for c in covariates}
    se = {c: float(cph.standard_errors_[c]) for c in covariates}
    ph_p: dict[str, float | None] = {c: None for c in covariates}
    if ph_test:
        try:
            if cluster:  # the residual test does not use the sandwich; refit without the cluster column
                frame = frame.drop(columns=[CLUSTER])
                cph = CoxPHFitter().fit(frame, T, E, strata=[STRATUM] if strata else None)
            test = proportional_hazard_test(cph, frame, time_transform="rank")
            for name, p in zip(test.name, np.atleast_1d(test.p_value), strict=True):
                key = name if isinstance(name, str) else name[0]
                if key in ph_p:
                    ph_p[key] = float(p)
        except Exception:  # noqa: BLE001 - a failed diagnostic must not sink the estimate
            pass
    return CoxFit("lifelines CoxPHFitter (Efron ties)", params, se, ph_p)


def _numpy_efron(data: pd.DataFrame, covariates: list[str], strata: bool) -> CoxFit:
    from trials.analysis.efron import fit_efron

    fit = fit_efron(data[T].to_numpy(float), data[E].to_numpy(int), data[covariates].to_numpy(float),
                    data[STRATUM].to_numpy() if strata else None)
    if not fit.converged:
        warnings.warn("the numpy Efron fit did not converge", RuntimeWarning, stacklevel=2)
    return CoxFit(FAST_ENGINE, dict(zip(covariates, map(float, fit.params), strict=True)),
                  dict(zip(covariates, map(float, fit.se), strict=True)), {c: None for c in covariates})


FAST_ENGINE = "trials Efron fit (numpy; tested against lifelines and statsmodels)"


def _statsmodels(data: pd.DataFrame, covariates: list[str], strata: bool, cluster: bool) -> CoxFit:
    import pandas as pd
    from statsmodels.duration.hazard_regression import PHReg

    # Units censored before the first event of their stratum are in no risk set: they change no
    # estimate, but PHReg gives them NaN score residuals, which turn the cluster-robust
    # covariance into NaN. Leave them out.
    groups = data[STRATUM] if strata else pd.Series(0, index=data.index)
    first_event = data[T].where(data[E] == 1).groupby(groups).transform("min")
    data = data[data[T] >= first_event]
    model = PHReg(data[T].to_numpy(float), data[covariates].to_numpy(float), status=data[E].to_numpy(int),
                  strata=data[STRATUM].to_numpy() if strata else None, ties="efron")
    result = model.fit(groups=data[CLUSTER].to_numpy() if cluster else None)
    params = dict(zip(covariates, map(float, result.params), strict=True))
    se = dict(zip(covariates, map(float, result.bse), strict=True))
    return CoxFit("statsmodels PHReg (Efron ties)", params, se, {c: None for c in covariates})


def cox_contrasts(data: pd.DataFrame, arms: list[tuple[str, str]], control: str, adjust: list[str], *,
                  strata: bool, cluster: bool, log: WarningLog, label: str = "", fast: bool = False
                  ) -> list[dict[str, Any]]:
    """One contrast per non-control arm. `arms` pairs each arm's name with its 0/1 column in `data`.

    `fast` (the many small models of the subgroup analysis, never with clusters) fits with
    `efron.fit_efron` alone: no proportional-hazards test and no cross-check by a second engine.
    """
    from scipy.stats import norm

    arm_cols = [col for _, col in arms]
    covariates = arm_cols + adjust
    empty = {"hr": None, "ci": [None, None], "p": None, "log_hr": None, "se": None, "ph_test_p": None}
    base = {"control": control, "stratified": strata, "adjusted_for": list(adjust), "cluster_robust": cluster}
    events_by_arm = {name: float(data.loc[data[col] == 1, E].sum()) for name, col in arms}
    events_control = float(data.loc[data[arm_cols].sum(axis=1) == 0, E].sum())
    if events_control == 0 or any(v == 0 for v in events_by_arm.values()):
        log.warn(f"{label}Cox model not estimated: an arm has no events, so the hazard ratio is 0 or infinite.")
        return [{"arm": name, **base, **empty, "method": None, "cross_check": None} for name, _ in arms]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        life = sm = quick = None
        if fast and not cluster:
            try:
                quick = _numpy_efron(data, covariates, strata)
            except Exception as exc:  # noqa: BLE001 - a singular information matrix
                log.warn(f"{label}Cox model did not converge: {exc}".split("\n")[0])
        else:
            try:
                life = _lifelines(data, covariates, strata, cluster, ph_test=True)
            except Exception as exc:  # noqa: BLE001 - ConvergenceError and friends
                log.warn(f"{label}Cox model (lifelines) did not converge: {exc}".split("\n")[0])
            try:
                sm = _statsmodels(data, covariates, strata, cluster)
            except Exception as exc:  # noqa: BLE001
                log.warn(f"{label}Cox model (statsmodels) failed: {exc}".split("\n")[0])
    for w in caught:
        if issubclass(w.category, AnalysisWarning):
            log.warn(str(w.message))
        elif "converge" in str(w.message).lower():
            log.warn(f"{label}Cox model: convergence problem ({str(w.message).splitlines()[0][:120]}).")
    primary = quick or ((sm or life) if cluster else (life or sm))
    if primary is None:
        return [{"arm": name, **base, **empty, "method": None, "cross_check": None} for name, _ in arms]
    out = []
    for name, col in arms:
        b, se = primary.params[col], primary.se[col]
        if not (np.isfinite(b) and np.isfinite(se)) or se > MAX_SE:
            log.warn(f"{label}Cox estimate for arm {name} is unstable (too few events or separation); not reported.")
            out.append({"arm": name, **base, **empty, "method": primary.engine, "cross_check": None})
            continue
        ph_p = life.ph_p.get(col) if life else None
        if ph_p is not None and ph_p < PH_ALPHA:
            log.warn(f"{label}Proportional hazards doubtful for arm {name} (Schoenfeld test p = {ph_p:.3f}): "
                     "the effect seems to change over follow-up, so read the hazard ratio as an average "
                     "and look at the Kaplan–Meier curves and RMST.")
        cross = None if quick else {
            "lifelines_log_hr": life.params[col] if life else None,
            "lifelines_se": life.se[col] if life else None,
            "statsmodels_log_hr": sm.params[col] if sm else None,
            "statsmodels_se": sm.se[col] if sm else None,
        }
        out.append({
            "arm": name, **base,
            "hr": float(np.exp(b)), "ci": [float(np.exp(b - Z95 * se)), float(np.exp(b + Z95 * se))],
            "p": float(2 * norm.sf(abs(b) / se)) if se > 0 else None,
            "log_hr": b, "se": se, "ph_test_p": ph_p,
            "method": primary.engine + (", cluster-robust sandwich SE" if cluster else ""),
            "cross_check": cross,
        })
    return out


def cox_ci_width(data: pd.DataFrame, arm_col: str, adjust: list[str], *, strata: bool) -> tuple[float, float] | None:
    """(log-HR, CI width on the log scale) for one arm column; used by the prognostic comparison."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = _numpy_efron(data, [arm_col, *adjust], strata)
    except Exception:  # noqa: BLE001 - a singular information matrix
        return None
    return fit.params[arm_col], 2 * Z95 * fit.se[arm_col]
