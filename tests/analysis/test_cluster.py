"""ICC (one-way ANOVA estimator) and design effect."""

from __future__ import annotations

import numpy as np
import pytest

from trials.analysis.cluster import icc_anova


def test_balanced_example_by_hand() -> None:
    """Reference: hand ANOVA on 3 clusters of 4: means 0.25, 0.5, 1.0; grand 7/12.
    MSB = 4 * sum((m - 7/12)^2) / 2; MSW = sum of within squares / 9; ICC = (MSB-MSW)/(MSB+3 MSW)."""
    y = np.array([1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 1], float)
    cluster = np.repeat([0, 1, 2], 4)
    means = np.array([0.25, 0.5, 1.0])
    msb = 4 * np.sum((means - 7 / 12) ** 2) / 2
    msw = (3 * 0.25**2 + 0.75**2 + 4 * 0.25 + 0) / 9
    icc = (msb - msw) / (msb + 3 * msw)
    out = icc_anova(y, cluster)
    assert out["icc"] == pytest.approx(icc)
    assert out["design_effect"] == pytest.approx(1 + 3 * icc)


def test_no_clustering_gives_icc_near_zero() -> None:
    """Calibration: independent outcomes, 40 clusters of 25: ICC close to 0, design effect close to 1."""
    rng = np.random.default_rng(0)
    out = icc_anova(rng.integers(0, 2, 1000).astype(float), np.repeat(np.arange(40), 25))
    assert out["icc"] is not None and out["icc"] < 0.03


def test_one_cluster_gives_none() -> None:
    assert icc_anova(np.ones(5), np.zeros(5, int))["icc"] is None
