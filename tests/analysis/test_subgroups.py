"""Subgroups: per-level hazard ratios and the interaction test."""

from __future__ import annotations

import numpy as np
import pytest

from trials.analysis.engine import AnalysisOptions, analyse


def test_interaction_detects_effect_in_one_subgroup_only(sim) -> None:  # type: ignore[no-untyped-def]
    """Reference: construction. HR 2 in 'social', HR 1 in 'physical': the interaction test rejects and
    the per-level HRs straddle; with the same HR in both it does not reject."""
    frame = sim(800, hr=1.0, seed=21)
    rng = np.random.default_rng(0)
    social_treated = (frame["barrier"] == "social") & (frame["arm"] == "1")
    frame.loc[social_treated, "weeks"] = np.ceil(frame.loc[social_treated, "weeks"] * rng.uniform(0.2, 0.6,
                                                                                                   social_treated.sum()))
    opts = AnalysisOptions(time="weeks", event="event", arm="arm", strata=["stratum"], subgroups=["barrier"],
                           ri_replicates=0, horizons=[104])
    with pytest.warns(UserWarning):
        out = analyse(frame, opts)["subgroups"]
    [var] = out["variables"]
    assert var["label"] == "exploratory" and var["interaction"]["p"] < 0.01
    hrs = {lvl["level"]: lvl["contrasts"][0]["hr"] for lvl in var["levels"]}
    assert hrs["social"] > 1.5 > hrs["physical"]


def test_preregistered_label(sim) -> None:  # type: ignore[no-untyped-def]
    opts = AnalysisOptions(time="weeks", event="event", arm="arm", subgroups=["barrier"], ri_replicates=0,
                           preregistered_subgroups=["barrier"])
    out = analyse(sim(300, seed=2), opts)["subgroups"]
    assert out["variables"][0]["label"] == "pre-registered"
    assert out["variables"][0]["interaction"]["p"] is not None
