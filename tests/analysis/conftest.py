"""Simulated trials for the analysis tests: weekly times (ties), strata, a covariate, exit kinds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest


def simulate_trial(n: int = 400, hr: float = 1.0, seed: int = 1, arms: Sequence[str] = ("0", "1"),
                   strata: int = 3, clusters: int = 0, weekly: bool = True, median: float = 60.0) -> pd.DataFrame:
    """Exponential times to self-sufficiency (control median `median` weeks), uniform censoring 30-150."""
    rng = np.random.default_rng(seed)
    arm = rng.choice(np.asarray(arms), n)
    stratum = rng.integers(0, strata, n)
    x = rng.normal(size=n)
    rate = np.log(2) / median * np.exp(0.3 * stratum + 0.5 * x) * np.where(arm != arms[0], hr, 1.0)
    latent = rng.exponential(1 / rate)
    censor = rng.uniform(30, 150, n)
    time = np.minimum(latent, censor)
    if weekly:
        time = np.ceil(time)
    exited = latent <= censor
    kind = np.where(exited, rng.choice(["ordinary_job", "education", "flexjob"], n, p=[0.6, 0.2, 0.2]), "")
    event = np.isin(kind, ["ordinary_job", "education"]).astype(int)
    frame = pd.DataFrame({"weeks": time, "event": event, "arm": arm, "stratum": stratum.astype(str), "x": x,
                          "exit": kind, "barrier": rng.choice(["physical", "social"], n),
                          "benefit": rng.choice(["cash_assistance", "sickness_benefit"], n)})
    if clusters:
        frame["team"] = rng.integers(0, clusters, n).astype(str)
    return frame


@pytest.fixture
def trial() -> pd.DataFrame:
    return simulate_trial(400, hr=1.4, seed=7)


@pytest.fixture(scope="session")
def sim():  # type: ignore[no-untyped-def]
    """The simulator itself, for tests that need many trials."""
    return simulate_trial
