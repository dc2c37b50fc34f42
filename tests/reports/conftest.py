"""A small analysed trial to render reports from (analysed once per test session)."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from trials.reports.effect import Outcomes, ReportInput, TrialInfo


def synthetic_trial(n: int = 300, seed: int = 3) -> tuple[Any, dict[str, Any]]:
    import numpy as np
    import pandas as pd

    from trials.analysis.engine import AnalysisOptions, analyse

    rng = np.random.default_rng(seed)
    arm = rng.integers(0, 2, n)
    latent = rng.exponential(60 / np.log(2) * np.where(arm == 1, 1 / 1.3, 1), n)
    censor = rng.uniform(20, 120, n)
    frame = pd.DataFrame({
        "time": np.minimum(latent, censor).round(),
        "event": (latent <= censor).astype(int),
        "arm": np.where(arm == 1, "treatment", "control"),
        "stratum": rng.choice(["a", "b"], n),
        "barrier": rng.choice(["social", "physical", "diffuse"], n, p=[0.45, 0.45, 0.1]),
    })
    frame["kind"] = np.where(frame.event == 1, rng.choice(["ordinary_job", "education", "flexjob"], n), "")
    frame.loc[frame.kind == "flexjob", "event"] = 0
    options = AnalysisOptions(time="time", event="event", arm="arm", control="control", strata=["stratum"],
                              competing="kind", horizons=[52, 104], ri_replicates=100, subgroups=["barrier"],
                              business_case={"weekly_cost_dkk": {"cash_assistance": 3500},
                                             "intervention_cost_per_case_dkk": 5000})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = analyse(frame, options)
    result["provenance"].update(protocol_sha256="a" * 64, outcome_snapshot=7, audit_head="b" * 64)
    return frame, result


@pytest.fixture(scope="session")
def report_input() -> ReportInput:
    frame, result = synthetic_trial()
    info = TrialInfo(
        id="street-walker", title="Street walker <early contact>", hypothesis="Early contact helps.", unit="case",
        method="permuted_blocks", factors=["months_band"], weights={"control": 1, "treatment": 1}, control="control",
        event_exits=["ordinary_job", "education"], competing_exits=["flexjob"], consecutive_weeks=4, version=2,
        amendments=[(2, "clarified eligibility")],
    )
    arms = [
        {"arm": arm, "allocated": result["n"][arm], "withdrawn": 3, "crossed_over": 0, "not_treated": 7,
         "censored": 40, "analysed": result["n"][arm]}
        for arm in result["arms"]
    ]
    flow = {"pool": 2000, "eligible": 420, "randomized": result["n_total"], "arms": arms}
    baseline = {
        "arms": ["control", "treatment"],
        "rows": [
            {"variable": "months_unemployed (mean, SD)", "cells": {}, "smd": 0.03, "counts": None, "shares": None,
             "means": {"control": 14.2, "treatment": 13.9}, "sds": {"control": 20.5, "treatment": 19.0}},
            {"variable": "primary_barrier = diffuse", "cells": {}, "smd": -0.08, "means": None, "sds": None,
             "counts": {"control": 3, "treatment": 12}, "shares": {"control": 0.02, "treatment": None}},
        ],
    }
    return ReportInput(info, result, Outcomes(frame.time, frame.event, frame.arm, frame.kind), flow=flow,
                       baseline=baseline)
