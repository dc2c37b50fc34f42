"""Cluster trials: intracluster correlation (one-way ANOVA estimator) and design effect."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def icc_anova(y: NDArray[np.float64], cluster: NDArray[np.int_]) -> dict[str, float | int | None]:
    """ICC of an outcome by cluster, and design effect 1 + (m0 - 1) ICC with m0 the adjusted mean size.

    ANOVA estimator (Donner 1986): ICC = (MSB - MSW) / (MSB + (m0 - 1) MSW), with
    m0 = (N - sum m_i^2 / N) / (k - 1). Negative estimates are truncated at 0.
    """
    y = np.asarray(y, dtype=float)
    codes, inverse = np.unique(cluster, return_inverse=True)
    k, n = len(codes), len(y)
    result: dict[str, float | int | None] = {"clusters": int(k), "mean_cluster_size": n / k if k else None,
                                             "icc": None, "design_effect": None}
    if k < 2 or n <= k:
        return result
    sizes = np.bincount(inverse).astype(float)
    means = np.bincount(inverse, weights=y) / sizes
    grand = y.mean()
    msb = float(np.sum(sizes * (means - grand) ** 2) / (k - 1))
    msw = float(np.sum((y - means[inverse]) ** 2) / (n - k))
    m0 = (n - np.sum(sizes**2) / n) / (k - 1)
    denom = msb + (m0 - 1) * msw
    icc = 0.0 if denom <= 0 else max(0.0, (msb - msw) / denom)
    result.update(icc=float(icc), design_effect=float(1 + (m0 - 1) * icc), adjusted_mean_size=float(m0))
    return result
