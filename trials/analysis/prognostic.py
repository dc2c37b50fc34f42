"""Prognostic covariate adjustment: a cross-fitted prognostic score as a Cox covariate.

The score is a gradient-boosting prediction of each unit's martingale residual under the pooled
null model (event minus Nelson–Aalen cumulative hazard), from baseline covariates only (never
the arm), each fold predicted by a model fitted on the other folds. The report gives the ratio
of the arm's confidence-interval width with the score to without it: the precision gained. It
is reported beside the primary analysis and never used to choose what is reported.

The hazard ratio is non-collapsible: adjusting for a prognostic covariate moves the log-HR away
from 0 and often widens its CI even as the test gains power (Robinson & Jewell 1991). So beside
the CI-width ratio the report gives `efficiency_ratio` = (z with score / z without)^2, the
relative efficiency of the test of no effect, which is the precision gain that matters.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from trials.analysis.cox import E, T, cox_ci_width

if TYPE_CHECKING:
    import pandas as pd

FOLDS = 5


def martingale_null(time: np.ndarray, event: np.ndarray) -> np.ndarray:
    times, inverse = np.unique(time, return_inverse=True)
    d = np.bincount(inverse, weights=event, minlength=len(times))
    n = np.bincount(inverse, minlength=len(times))[::-1].cumsum()[::-1]
    cumhaz = np.cumsum(d / n)
    return np.asarray(event, dtype=float) - cumhaz[inverse]


def cross_fitted_score(features: np.ndarray, target: np.ndarray, seed: int, folds: int = FOLDS) -> np.ndarray:
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.model_selection import KFold

    score = np.zeros(len(target))
    for train, test in KFold(n_splits=folds, shuffle=True, random_state=seed).split(features):
        model = GradientBoostingRegressor(n_estimators=100, max_depth=2, learning_rate=0.05, random_state=seed)
        model.fit(features[train], target[train])
        score[test] = model.predict(features[test])
    return score


def prognostic_adjustment(data: pd.DataFrame, arms: list[tuple[str, str]], covariates: list[str], *,
                          strata: bool, seed: int, labels: list[str] | None = None) -> dict[str, Any] | None:
    """CI-width ratio (with score / without) per non-control arm; None if it cannot be estimated."""
    if not covariates or len(data) < 5 * FOLDS or data[E].sum() < 10:
        return None
    features = data[covariates].to_numpy(float)
    target = martingale_null(data[T].to_numpy(float), data[E].to_numpy(int))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        score = cross_fitted_score(features, target, seed)
    sd = score.std()
    frame = data.copy()
    frame["_prognostic_score"] = (score - score.mean()) / sd if sd > 0 else 0.0
    contrasts: list[dict[str, Any]] = []
    for name, col in arms:
        other = [c for _, c in arms if c != col]
        without = cox_ci_width(frame, col, other, strata=strata)
        with_score = cox_ci_width(frame, col, [*other, "_prognostic_score"], strata=strata) if sd > 0 else None
        if without is None or with_score is None:
            contrasts.append({"arm": name, "ci_width_ratio": None, "efficiency_ratio": None, "hr_with_score": None,
                              "hr_without_score": None})
            continue
        z_with, z_without = with_score[0] / with_score[1], without[0] / without[1]
        contrasts.append({"arm": name, "ci_width_ratio": with_score[1] / without[1],
                          "efficiency_ratio": (z_with / z_without) ** 2 if z_without else None,
                          "hr_with_score": float(np.exp(with_score[0])), "hr_without_score": float(np.exp(without[0]))})
    return {"method": f"gradient boosting on {', '.join(labels or covariates)}, {FOLDS}-fold cross-fitted martingale-residual "
                      "score as Cox covariate", "used_for_reporting": False, "contrasts": contrasts}
