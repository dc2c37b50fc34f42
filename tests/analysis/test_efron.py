"""The numpy Efron Cox fit against lifelines and statsmodels (both Efron), on tied weekly data."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from trials.analysis.efron import fit_efron


def weekly(n: int, seed: int, strata: int = 6) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    s = rng.integers(0, strata, n)
    x = np.column_stack([rng.integers(0, 2, n), rng.normal(size=n), rng.integers(0, 2, n)]).astype(float)
    rate = np.exp(0.3 * x[:, 0] - 0.4 * x[:, 1] + 0.1 * s) / 40
    t = np.minimum(np.ceil(rng.exponential(1 / rate)), 104.0)  # weeks: heavy ties, censored at 104
    return t, (t < 104).astype(int), x, s


@pytest.mark.parametrize("stratified", [True, False])
def test_matches_statsmodels_phreg_efron(stratified: bool) -> None:
    from statsmodels.duration.hazard_regression import PHReg

    t, e, x, s = weekly(1_500, 1)
    ours = fit_efron(t, e, x, s if stratified else None)
    ref = PHReg(t, x, status=e, strata=s if stratified else None, ties="efron").fit()
    assert ours.converged
    assert ours.params == pytest.approx(ref.params, abs=1e-8)
    assert ours.se == pytest.approx(ref.bse, rel=1e-7)
    assert ours.log_likelihood == pytest.approx(ref.llf, rel=1e-12)


def test_matches_lifelines_coxph_stratified() -> None:
    from lifelines import CoxPHFitter

    t, e, x, s = weekly(1_200, 2)
    frame = pd.DataFrame({"t": t, "e": e, "a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "s": s})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = CoxPHFitter().fit(frame, "t", "e", strata=["s"])
    ours = fit_efron(t, e, x, s)
    assert ours.params == pytest.approx(ref.params_.to_numpy(), abs=1e-6)
    assert ours.se == pytest.approx(ref.standard_errors_.to_numpy(), rel=1e-5)
    assert ours.log_likelihood == pytest.approx(ref.log_likelihood_, rel=1e-9)


def test_without_ties_efron_is_the_exact_partial_likelihood() -> None:
    """Reference: with distinct times Efron's and Breslow's likelihoods coincide (statsmodels Breslow)."""
    from statsmodels.duration.hazard_regression import PHReg

    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 1))
    t = rng.exponential(np.exp(-0.5 * x[:, 0]))
    e = (rng.random(300) < 0.8).astype(int)
    ours = fit_efron(t, e, x)
    ref = PHReg(t, x, status=e, ties="breslow").fit()
    assert ours.params == pytest.approx(ref.params, abs=1e-8)
    assert ours.log_likelihood == pytest.approx(ref.llf, rel=1e-12)


def test_no_events_is_refused() -> None:
    with pytest.raises(ValueError, match="no events"):
        fit_efron(np.arange(1.0, 11.0), np.zeros(10, dtype=int), np.arange(10.0)[:, None])


def test_separation_is_flagged_not_a_crash() -> None:
    """An arm with no events: the estimate runs off towards -infinity; the fit says it did not
    converge, gives an infinite standard error, keeps a finite log-likelihood, and warns nothing."""
    rng = np.random.default_rng(4)
    arm = np.repeat([0.0, 1.0], 50)
    t = np.ceil(rng.exponential(20, 100))
    e = np.where(arm == 1, 0, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = fit_efron(t, e, arm[:, None])
    assert not fit.converged and fit.params[0] < -5 and np.isfinite(fit.log_likelihood)
    assert np.isinf(fit.se[0])
