"""Stratified Cox regression with Efron's ties in numpy, for the many small models of a report.

lifelines and statsmodels fit the reported primary Cox model and check each other (`cox.py`).
The subgroup hazard ratios, the subgroup interaction tests and the prognostic comparison fit
a dozen more models, where both libraries spend most of their time on per-stratum bookkeeping
(lifelines summarises every stratum of the training data, statsmodels loops over strata in
Python). This fit is vectorised over all strata and event times at once; tests check its
estimates, standard errors and log-likelihood against both libraries.

Efron's partial log-likelihood, for each stratum and event time with d tied events D:
sum_{i in D} x_i b - sum_{l=0}^{d-1} log(S0 - l/d * S0_D), S0 summing exp(x b) over the risk
set and S0_D over D; Newton-Raphson from b = 0 with step halving.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from trials.analysis.risksets import RiskSets, risk_sets

MAX_ITERATIONS = 50
TOLERANCE = 1e-9


@dataclass(frozen=True)
class EfronFit:
    params: NDArray[np.float64]
    se: NDArray[np.float64]
    log_likelihood: float
    converged: bool


@dataclass(frozen=True)
class _Ties:
    """The risk sets (`risksets.RiskSets`) and, per tied event, its event time and l / d."""

    sets: RiskSets
    pair_time: NDArray[np.intp]  # per (event time, l < d): the event time
    pair_fraction: NDArray[np.float64]  # per (event time, l < d): l / d


def _ties(time: NDArray[np.float64], event: NDArray[np.int_], strata: NDArray[np.int_]) -> _Ties:
    sets = risk_sets(time, event, strata)
    deaths = sets.deaths
    pair_time = np.repeat(np.arange(len(deaths)), deaths)
    pair_l = np.arange(len(pair_time)) - np.repeat(np.cumsum(deaths) - deaths, deaths)
    return _Ties(sets, pair_time, pair_l / deaths[pair_time])


def _at_risk(values: NDArray[np.float64], ties: _Ties) -> NDArray[np.float64]:
    """Per event time, the sum of `values` (rows sorted, first axis) over its risk set."""
    tail = np.zeros((len(values) + 1, *values.shape[1:]))
    tail[:-1] = values[::-1].cumsum(axis=0)[::-1]
    return tail[ties.sets.time_starts] - tail[ties.sets.ends]


def _evaluate(x: NDArray[np.float64], ties: _Ties, beta: NDArray[np.float64]
              ) -> tuple[float, NDArray[np.float64], NDArray[np.float64]]:
    """Log-likelihood, gradient and Hessian at beta (x sorted)."""
    risk = np.exp(x @ beta)
    rx = risk[:, None] * x
    rxx = rx[:, :, None] * x[:, None, :]
    s0, s1, s2 = _at_risk(risk, ties), _at_risk(rx, ties), _at_risk(rxx, ties)
    ev, first = ties.sets.event_rows, ties.sets.first_event
    d0 = np.add.reduceat(risk[ev], first)
    d1 = np.add.reduceat(rx[ev], first, axis=0)
    d2 = np.add.reduceat(rxx[ev], first, axis=0)
    j, f = ties.pair_time, ties.pair_fraction
    denom = s0[j] - f * d0[j]
    num1 = s1[j] - f[:, None] * d1[j]
    num2 = s2[j] - f[:, None, None] * d2[j]
    loglik = float((x[ev] @ beta).sum() - np.log(denom).sum())
    mean1 = num1 / denom[:, None]
    gradient = x[ev].sum(axis=0) - mean1.sum(axis=0)
    hessian = -(num2 / denom[:, None, None]).sum(axis=0) + np.einsum("ka,kb->ab", mean1, mean1)
    return loglik, gradient, hessian


def fit_efron(time: NDArray[np.float64], event: NDArray[np.int_], covariates: NDArray[np.float64],
              strata: NDArray[np.int_] | None = None) -> EfronFit:
    """Maximum partial likelihood (Efron ties), stratified if `strata` is given."""
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=int)
    x = np.asarray(covariates, dtype=float).reshape(len(time), -1)
    strata = np.zeros(len(time), dtype=int) if strata is None else np.unique(np.asarray(strata),
                                                                             return_inverse=True)[1]
    ties = _ties(time, event, strata)
    x = x[ties.sets.order] - x.mean(axis=0)  # centring changes no estimate and keeps exp() in range
    beta = np.zeros(x.shape[1])
    if not len(ties.sets.deaths):
        raise ValueError("no events: the Cox model cannot be estimated")
    converged = False
    # Separation (an arm or level without events) sends an estimate towards infinity: exp()
    # under- or overflows, which the step halving and the non-convergence flag handle.
    with np.errstate(all="ignore"):
        loglik, gradient, hessian = _evaluate(x, ties, beta)
        for _ in range(MAX_ITERATIONS):
            step = np.linalg.lstsq(hessian, -gradient, rcond=None)[0]  # also when singular
            for _halving in range(30):
                new = _evaluate(x, ties, beta + step)
                # A step may only lose what rounding of a sum of many logs can (near the optimum).
                if np.isfinite(new[0]) and new[0] >= loglik - 1e-10 * (1 + abs(loglik)):
                    break
                step = step / 2
            else:
                break  # no step improves the likelihood: stop where it is (not converged)
            beta, (loglik, gradient, hessian) = beta + step, new
            if np.max(np.abs(step)) < TOLERANCE:
                converged = True
                break
        eigenvalues = np.linalg.eigvalsh(-hessian)
        if not np.all(np.isfinite(eigenvalues)) or eigenvalues.min() <= 1e-8 * max(1.0, eigenvalues.max()):
            # No information about some direction (separation): the estimate is not identified.
            return EfronFit(beta, np.full(len(beta), np.inf), loglik, False)
        se = np.sqrt(np.diag(np.linalg.inv(-hessian)))
    return EfronFit(beta, se, loglik, converged)
