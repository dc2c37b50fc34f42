"""Kaplan–Meier estimate with Greenwood variance and log(-log) confidence intervals (numpy only).

S(t) is the probability of still being on public support at week t; 1 - S(t) is the cumulative
share self-sufficient. Computed by hand rather than through lifelines so ties (weekly data) and
the RMST variance use exactly the same table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Z95 = 1.959963984540054


@dataclass(frozen=True)
class KMTable:
    """One row per distinct observed time (event or censoring), ascending."""

    time: NDArray[np.float64]
    at_risk: NDArray[np.float64]
    events: NDArray[np.float64]
    censored: NDArray[np.float64]
    survival: NDArray[np.float64]
    greenwood: NDArray[np.float64]  # sum d / (n (n - d)) up to and including each time

    def at(self, t: float) -> tuple[float, float]:
        """S(t) and its Greenwood sum at time t (right-continuous step function)."""
        idx = int(np.searchsorted(self.time, t, side="right")) - 1
        if idx < 0:
            return 1.0, 0.0
        return float(self.survival[idx]), float(self.greenwood[idx])

    def at_risk_at(self, t: float) -> int:
        """Number still at risk just before time t (observed time >= t)."""
        idx = int(np.searchsorted(self.time, t, side="left"))
        if idx >= len(self.time):
            return 0
        return int(self.at_risk[idx])


def kaplan_meier(time: NDArray[np.float64], event: NDArray[np.int_]) -> KMTable:
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=int)
    times, inverse = np.unique(time, return_inverse=True)
    events = np.bincount(inverse, weights=event, minlength=len(times)).astype(float)
    counts = np.bincount(inverse, minlength=len(times)).astype(float)
    at_risk = counts[::-1].cumsum()[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(at_risk > 0, 1.0 - events / at_risk, 1.0)
        gw_terms = np.where(at_risk > events, events / (at_risk * (at_risk - events)), 0.0)
    survival = np.asarray(np.cumprod(factor), dtype=float)
    greenwood = np.cumsum(gw_terms)
    return KMTable(times, at_risk, events, counts - events, survival, greenwood)


def loglog_ci(survival: float, greenwood: float, z: float = Z95) -> tuple[float | None, float | None]:
    """Confidence interval for S on the log(-log) scale (lifelines' and R's `conf.type="log-log"`)."""
    if survival <= 0.0:
        return 0.0, 0.0
    if survival >= 1.0:
        return 1.0, 1.0
    log_s = np.log(survival)
    se = np.sqrt(greenwood) / abs(log_s)
    lower = survival ** np.exp(z * se)
    upper = survival ** np.exp(-z * se)
    return float(lower), float(upper)


def km_summary(table: KMTable, horizon: float) -> dict[str, object]:
    """The per-arm `km` entry of the JSON contract at one horizon."""
    s, gw = table.at(horizon)
    lower, upper = loglog_ci(s, gw)
    share_ci = [None if upper is None else 1.0 - upper, None if lower is None else 1.0 - lower]
    se = s * np.sqrt(gw)
    return {
        "survival": s,
        "survival_ci": [lower, upper],
        "share_self_sufficient": 1.0 - s,
        "ci": share_ci,
        "se": float(se),
        "at_risk": table.at_risk_at(horizon),
    }


def at_risk_table(table: KMTable, times: list[float]) -> list[dict[str, float | int]]:
    """Numbers at risk at the given times (the table printed under a KM plot)."""
    return [{"time": float(t), "at_risk": table.at_risk_at(t)} for t in times]
