"""The analysis core end to end: the JSON contract, several arms, degenerate inputs."""

from __future__ import annotations

import json
import warnings

import jsonschema
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trials import __version__
from trials.analysis.engine import AnalysisOptions, analyse, contract_schema, horizon_key
from trials.analysis.warnings import AnalysisWarning


def _run(frame: pd.DataFrame, **kw) -> dict:  # type: ignore[no-untyped-def,type-arg]
    opts = AnalysisOptions(time="weeks", event="event", arm="arm", ri_replicates=kw.pop("ri_replicates", 50), **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AnalysisWarning)
        result = analyse(frame, opts)
    jsonschema.validate(json.loads(json.dumps(result)), contract_schema())
    return result


def test_full_contract_validates(trial: pd.DataFrame) -> None:
    out = _run(trial, strata=["stratum"], adjust=["x"], competing="exit", horizons=[52, 104],
               subgroups=["barrier"], business_case={"weekly_cost_dkk": {"cash_assistance": 3000,
                                                                        "sickness_benefit": 4200},
                                                    "intervention_cost_per_case_dkk": 4000},
               benefit_type="benefit", ri_replicates=99)
    assert set(out["horizons"]) == {"52", "104"}
    h = out["horizons"]["52"]
    assert set(h["km"]) == {"0", "1"} and out["n"]["0"] + out["n"]["1"] == 400
    assert h["logrank"]["stratified"] is True and h["logrank"]["unstratified"]["stratified"] is False
    assert h["cox"]["arm"] == "1" and h["cox"]["control"] == "0" and h["cox"]["stratified"]
    assert h["cox"]["adjusted_for"] == ["x"]
    assert h["rmst"]["difference"] == h["rmst"]["contrasts"][0]["difference"]
    assert set(h["cif"]) == {"ordinary_job", "education", "flexjob"}
    assert h["ri"]["replicates"] == 99 and 0 < h["ri"]["p"] <= 1
    assert out["business_case"]["arm"] == "1"
    assert out["provenance"]["version"] == __version__ and out["provenance"]["audit_head"] is None
    # Events counted within the horizon; KM share consistent with survival.
    assert h["events"]["1"] == int(((trial["arm"] == "1") & (trial["event"] == 1) & (trial["weeks"] <= 52)).sum())
    assert h["km"]["1"]["share_self_sufficient"] == pytest.approx(1 - h["km"]["1"]["survival"])


def test_default_horizon_is_last_observed_time(trial: pd.DataFrame) -> None:
    out = _run(trial, ri_replicates=0)
    assert list(out["horizons"]) == [horizon_key(trial["weeks"].max())]
    assert horizon_key(52.0) == "52" and horizon_key(26.5) == "26.5"


def test_three_arms_give_lists_of_contrasts(sim) -> None:  # type: ignore[no-untyped-def]
    frame = sim(600, hr=1.4, seed=4, arms=("control", "a", "b"))
    out = _run(frame, control="control", strata=["stratum"], horizons=[52])
    h = out["horizons"]["52"]
    assert out["arms"] == ["a", "b", "control"] and out["control"] == "control"
    for key in ("cox", "status", "km_difference"):
        assert [c["arm"] for c in h[key]] == ["a", "b"] and all(c["control"] == "control" for c in h[key])
    assert [c["arm"] for c in h["rmst"]["contrasts"]] == ["a", "b"] and "difference" not in h["rmst"]
    assert h["logrank"]["df"] == 2


def test_protocol_arm_order_and_rerandomize_injection(trial: pd.DataFrame) -> None:
    seen: list[int] = []

    def registered(r: int, rng: np.random.Generator) -> np.ndarray:
        seen.append(r)
        return rng.integers(0, 2, (r, len(trial)))

    out = _run(trial.assign(arm=trial["arm"].map({"0": "control", "1": "coach"})), arms=["control", "coach"],
               rerandomize=registered, ri_replicates=120, horizons=[52])
    assert out["arms"] == ["control", "coach"] and sum(seen) == 120
    assert out["horizons"]["52"]["ri"]["procedure"] == "registered assignment procedure"


def test_cluster_trial_reports_icc_and_robust_cox(sim) -> None:  # type: ignore[no-untyped-def]
    out = _run(sim(400, hr=1.3, seed=6, clusters=20), cluster="team", strata=["stratum"], horizons=[104])
    h = out["horizons"]["104"]
    assert h["cox"]["cluster_robust"] and "statsmodels" in h["cox"]["method"]
    assert h["cox"]["ph_test_p"] is not None
    assert h["status"]["cov_type"] == "cluster" and h["cluster"]["clusters"] == 20


def test_targets_reported(trial: pd.DataFrame) -> None:
    out = _run(trial, ri_replicates=0, target_n=500, minimum_detectable_hr=1.3)
    assert out["targets"]["reached_target_n"] is False
    assert out["targets"]["detectable_hr_with_observed_events"] > 1


# --- degenerate inputs: a warning, no crash ---------------------------------------------


def _warned(frame: pd.DataFrame, pattern: str, **kw) -> dict:  # type: ignore[no-untyped-def,type-arg]
    opts = AnalysisOptions(time="weeks", event="event", arm="arm", ri_replicates=20, **kw)
    with pytest.warns(AnalysisWarning, match=pattern):
        result = analyse(frame, opts)
    jsonschema.validate(json.loads(json.dumps(result)), contract_schema())
    assert any(__import__("re").search(pattern, w) for w in result["warnings"])
    return result


def test_arm_with_no_events(trial: pd.DataFrame) -> None:
    frame = trial.copy()
    frame.loc[frame["arm"] == "1", "event"] = 0
    out = _warned(frame, "Arm 1 has no events", strata=["stratum"])
    h = next(iter(out["horizons"].values()))
    assert h["cox"]["hr"] is None and h["km"]["1"]["survival"] == 1.0


def test_stratum_with_one_arm_only(trial: pd.DataFrame) -> None:
    frame = trial.copy()
    frame.loc[frame["stratum"] == "2", "arm"] = "0"
    out = _warned(frame, "one arm only", strata=["stratum"])
    assert next(iter(out["horizons"].values()))["logrank"]["p"] is not None


def test_all_censored(trial: pd.DataFrame) -> None:
    out = _warned(trial.assign(event=0), "No events", strata=["stratum"], competing="exit")
    h = next(iter(out["horizons"].values()))
    assert h["logrank"]["chi2"] is None and h["ri"]["p"] is None and h["status"]["risk_difference"] is None


def test_ties_everywhere(trial: pd.DataFrame) -> None:
    """Every event at week 10, everyone else censored at week 20."""
    frame = trial.assign(weeks=np.where(trial["event"] == 1, 10.0, 20.0))
    out = _warned(frame, "heavy ties", strata=["stratum"])
    assert next(iter(out["horizons"].values()))["cox"]["hr"] is not None


def test_fewer_than_ten_units() -> None:
    frame = pd.DataFrame({"weeks": [3, 5, 8, 2, 9, 4], "event": [1, 0, 1, 1, 1, 0], "arm": ["0", "1"] * 3})
    _warned(frame, "Only 6 units")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 12), st.booleans(), st.sampled_from("ab"), st.sampled_from("xyz"),
                          st.sampled_from(["", "ordinary_job", "flexjob", "moved"])), min_size=2, max_size=30))
def test_any_small_frame_gives_a_valid_result(rows: list[tuple[int, bool, str, str, str]]) -> None:
    """Invariant: any frame with both arms present yields a schema-valid result (warnings, no crash)."""
    frame = pd.DataFrame(rows, columns=["weeks", "event", "arm", "stratum", "exit"]).assign(
        event=lambda f: f["event"].astype(int))
    if frame["arm"].nunique() < 2:
        frame.loc[0, "arm"] = "b" if frame.loc[0, "arm"] == "a" else "a"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = analyse(frame, AnalysisOptions(time="weeks", event="event", arm="arm", strata=["stratum"],
                                                competing="exit", ri_replicates=10, horizons=[6, 12]))
    jsonschema.validate(json.loads(json.dumps(result, allow_nan=False)), contract_schema())


def test_fitter_shape_and_summary(trial: pd.DataFrame) -> None:
    from trials.analysis.engine import EffectAnalysis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AnalysisWarning)
        fitted = EffectAnalysis(AnalysisOptions(time="weeks", event="event", arm="arm", ri_replicates=0,
                                                horizons=[52])).fit(trial)
    assert fitted.to_dict() is fitted.result_
    assert "horizon 52" in fitted.summary() and "Cox HR 1 vs 0" in fitted.summary()


def test_options_are_checked_at_construction() -> None:
    from trials.errors import InputError

    with pytest.raises(InputError, match="horizons must be positive"):
        AnalysisOptions(time="t", event="e", arm="a", horizons=[0])
    with pytest.raises(InputError, match="cannot also be a stratum"):
        AnalysisOptions(time="t", event="e", arm="a", strata=["a"])


def test_cluster_randomized_file_permutes_clusters(sim) -> None:  # type: ignore[no-untyped-def]
    frame = sim(300, seed=12, clusters=20)
    frame["arm"] = (frame["team"].astype(int) % 2).astype(str)  # one arm per team
    out = _run(frame, cluster="team", horizons=[52])
    assert out["horizons"]["52"]["ri"]["procedure"] == "permutation of the clusters' arms within strata"


def test_few_clusters_warn_that_robust_errors_overstate_certainty() -> None:
    """With fewer than 20 randomized clusters the sandwich variance is biased downwards
    (a known small-sample property), so the result must say to rely on randomization inference."""
    import numpy as np
    import pandas as pd

    from trials.analysis.engine import AnalysisOptions, analyse

    rng = np.random.default_rng(5)
    cluster = np.repeat(np.arange(6), 40)
    frame = pd.DataFrame({"t": rng.integers(1, 60, 240).astype(float), "e": rng.integers(0, 2, 240),
                          "arm": np.where(cluster % 2 == 0, "control", "treatment"), "c": cluster})
    result = analyse(frame, AnalysisOptions(time="t", event="e", arm="arm", control="control", cluster="c",
                                            ri_replicates=20, prognostic=False))
    assert any("Only 6 clusters were randomized" in w for w in result["warnings"])
    assert result["few_clusters"] is True
