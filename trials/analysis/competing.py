"""Aalen–Johansen cumulative incidence per exit kind, deterministic under ties (numpy only).

CIF_k(t) = sum over t_j <= t of S(t_j-) d_kj / n_j, with S the all-cause Kaplan–Meier estimate.
All exit kinds at the same week are handled together, exactly, so weekly data (all ties) give
one answer. lifelines' `AalenJohansenFitter` instead jitters tied times at random; the tests
cross-check this implementation against statsmodels `CumIncidenceRight`, which does not.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def cumulative_incidence(time: NDArray[np.float64], cause: NDArray[np.int_], n_causes: int,
                         horizon: float) -> NDArray[np.float64]:
    """CIF at `horizon` for causes 1..n_causes (0 = censored); returns an array of n_causes."""
    time = np.asarray(time, dtype=float)
    cause = np.asarray(cause, dtype=int)
    times, inverse = np.unique(time, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(times)).astype(float)
    at_risk = counts[::-1].cumsum()[::-1]
    d = np.zeros((n_causes + 1, len(times)))
    np.add.at(d, (cause, inverse), 1.0)
    d_any = d[1:].sum(axis=0)
    surv = np.cumprod(1.0 - d_any / at_risk)
    surv_before = np.concatenate([[1.0], surv[:-1]])
    hazard = d[1:] / at_risk
    cif = np.cumsum(surv_before * hazard, axis=1)
    idx = int(np.searchsorted(times, horizon, side="right")) - 1
    if idx < 0:
        return np.zeros(n_causes)
    return cif[:, idx]
