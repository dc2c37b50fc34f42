"""What works for whom: hazard ratio per subgroup level, an interaction test, forest-plot rows.

Per level, the stratified Cox model of `cox.py` on that level's units (its fast numpy fit,
`efron.fit_efron`). The interaction test is a likelihood-ratio test of arm x level terms in a
Cox model stratified by randomization stratum x level (so level main effects are absorbed). Subgroups are labelled exploratory unless the
protocol pre-registered them.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from trials.analysis.cox import STRATUM, E, T, cox_contrasts
from trials.analysis.warnings import WarningLog

if TYPE_CHECKING:
    import pandas as pd

MIN_EVENTS = 5


def interaction_test(data: pd.DataFrame, arm_cols: list[str], variable: str, *, strata: bool) -> dict[str, Any]:
    import pandas as pd
    from scipy.stats import chi2

    from trials.analysis.efron import fit_efron

    levels = pd.get_dummies(data[variable].astype(str), prefix="lvl", drop_first=True, dtype=float)
    arms = data[arm_cols].to_numpy(float)
    inter = [arms[:, [a]] * levels[[lvl]].to_numpy() for a in range(len(arm_cols)) for lvl in levels.columns]
    inter = [column for column in inter if column.sum() > 0]
    if not inter:
        return {"p": None, "df": 0, "chi2": None}
    groups = data[variable].astype(str) + "|" + (data[STRATUM].astype(str) if strata else "")
    time, event, codes = data[T].to_numpy(float), data[E].to_numpy(int), pd.factorize(groups)[0]
    small = fit_efron(time, event, arms, codes)
    big = fit_efron(time, event, np.hstack([arms, *inter]), codes)
    stat = max(0.0, 2 * (big.log_likelihood - small.log_likelihood))
    return {"chi2": float(stat), "df": len(inter), "p": float(chi2.sf(stat, len(inter)))}


def subgroup_analysis(data: pd.DataFrame, variables: list[str], arms: list[tuple[str, str]], control: str, *,
                      strata: bool, preregistered: set[str], horizon: float, log: WarningLog) -> dict[str, Any]:
    arm_cols = [col for _, col in arms]
    out: list[dict[str, Any]] = []
    thin = 0
    for variable in variables:
        levels = []
        for level, part in data.groupby(variable, sort=True):
            events = int(part[E].sum())
            if events < MIN_EVENTS:
                thin += 1
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                local = WarningLog()
                contrasts = cox_contrasts(part, arms, control, [], strata=strata and part[STRATUM].nunique() > 1,
                                          cluster=False, log=local, fast=True)
            levels.append({"level": str(level), "n": int(len(part)), "events": events,
                           "contrasts": contrasts})
        try:
            inter = interaction_test(data, arm_cols, variable, strata=strata)
        except Exception:  # noqa: BLE001 - too few events for the bigger model
            inter = {"p": None, "df": 0, "chi2": None}
        out.append({"variable": variable, "preregistered": variable in preregistered,
                    "label": "pre-registered" if variable in preregistered else "exploratory",
                    "interaction": inter, "levels": levels})
    if thin:
        log.warn(f"{thin} subgroup level(s) have fewer than {MIN_EVENTS} events; their hazard ratios are unstable.")
    if any(v not in preregistered for v in variables):
        log.warn("Subgroup results not pre-registered in the protocol are exploratory: they generate hypotheses, "
                 "they do not test them.")
    return {"horizon": horizon, "variables": out}
