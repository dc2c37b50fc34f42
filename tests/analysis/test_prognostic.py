"""Cross-fitted prognostic score: precision gained."""

from __future__ import annotations

import numpy as np

from trials.analysis.engine import AnalysisOptions, analyse
from trials.analysis.prognostic import martingale_null


def test_martingale_residuals_sum_to_zero() -> None:
    """Reference: martingale residuals of the Nelson–Aalen null model sum to zero (exactly, with ties)."""
    rng = np.random.default_rng(0)
    t = np.ceil(rng.exponential(10, 100))
    e = rng.integers(0, 2, 100)
    assert abs(martingale_null(t, e).sum()) < 1e-9


def test_strong_prognostic_covariate_narrows_ci(sim) -> None:  # type: ignore[no-untyped-def]
    """A strongly prognostic covariate gives a more efficient test of the arm (efficiency ratio > 1), while
    the CI-width ratio is reported as is (the HR is non-collapsible, so the width may grow); the score never
    replaces the reported Cox result."""
    frame = sim(600, hr=1.3, seed=8)
    rng = np.random.default_rng(1)
    z = rng.normal(size=len(frame))  # a baseline covariate with log-HR 1.2 per SD
    rate = np.log(2) / 60 * np.exp(1.2 * z) * np.where(frame["arm"] == "1", 1.3, 1.0)
    latent = rng.exponential(1 / rate)
    frame["z"] = z
    frame["weeks"] = np.ceil(np.minimum(latent, 104))
    frame["event"] = (latent <= 104).astype(int)
    opts = AnalysisOptions(time="weeks", event="event", arm="arm", adjust=["z"], ri_replicates=0, horizons=[104])
    out = analyse(frame, opts)["horizons"]["104"]["prognostic"]
    assert out["used_for_reporting"] is False
    [c] = out["contrasts"]
    assert c["efficiency_ratio"] > 1.1 and c["ci_width_ratio"] > 0
    assert c["hr_without_score"] < c["hr_with_score"]  # non-collapsibility: adjusted HR further from 1
