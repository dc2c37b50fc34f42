"""Restricted mean time on public support up to a horizon, with the Greenwood-type variance.

RMST(tau) is the area under the Kaplan–Meier curve S(t) from 0 to tau: the expected weeks on
support within the horizon (the Hjørring plan's measure). The variance is the one R's survRM2
(`rmst1`) uses: sum over event times t_j <= tau of A_j^2 d_j / (n_j (n_j - d_j)), A_j being the
area under S from t_j to tau. (lifelines 0.30's `restricted_mean_survival_time(...,
return_variance=True)` is the variance of min(T, tau), not of the estimate.)
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from trials.analysis.km import Z95, KMTable, kaplan_meier


def rmst_from_table(table: KMTable, tau: float) -> tuple[float, float]:
    """(RMST, variance) up to tau from a Kaplan–Meier table, as survRM2::rmst1."""
    idx = table.time <= tau
    times = table.time[idx]
    surv = table.survival[idx]
    n_risk = table.at_risk[idx]
    n_event = table.events[idx]
    grid = np.append(times, tau)
    widths = np.diff(np.concatenate([[0.0], grid]))
    heights = np.concatenate([[1.0], surv])
    areas = widths * heights
    rmst = float(areas.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(n_risk - n_event > 0, n_event / (n_risk * (n_risk - n_event)), 0.0)
    # Area from t_j to tau: the sum of the areas after t_j.
    tail = np.cumsum(areas[1:][::-1])[::-1]
    variance = float(np.sum(tail**2 * terms))
    return rmst, variance


def rmst(time: NDArray[np.float64], event: NDArray[np.int_], tau: float) -> tuple[float, float]:
    return rmst_from_table(kaplan_meier(time, event), tau)


def rmst_summary(value: float, variance: float) -> dict[str, object]:
    se = float(np.sqrt(variance))
    return {"rmst": value, "se": se, "ci": [value - Z95 * se, value + Z95 * se]}


def rmst_contrast(arm: str, control: str, treated: tuple[float, float], ref: tuple[float, float]) -> dict[str, object]:
    """Difference treatment - control in restricted mean weeks, with normal CI and p."""
    from scipy.stats import norm

    diff = treated[0] - ref[0]
    se = float(np.sqrt(treated[1] + ref[1]))
    p = float(2 * norm.sf(abs(diff) / se)) if se > 0 else None
    return {"arm": arm, "control": control, "difference": diff, "se": se,
            "ci": [diff - Z95 * se, diff + Z95 * se], "p": p}
