"""The analysis core: one DataFrame in, the JSON contract of docs/analysis.md out.

Both entrances call `analyse(frame, options)`. The flat-file entrance (`trials analyze`) passes
a CSV read by `frame.read_csv`; the database entrance builds the frame from a trial (one row per
randomized unit: assigned arm, stratum, cluster, baseline covariates, derived outcome) and
passes the protocol's settings, its registered re-randomization procedure and provenance.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from trials.analysis import km as km_mod
from trials.analysis.cox import CLUSTER, STRATUM, E, T, cox_contrasts
from trials.analysis.frame import Prepared, prepare
from trials.analysis.logrank import logrank
from trials.analysis.ri import (
    Progress,
    Rerandomize,
    permute_clusters_within_strata,
    permute_within_strata,
    randomization_tests,
)
from trials.analysis.warnings import WarningLog
from trials.errors import InputError, Problem

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_SEED = 20190604
SCHEMA_VERSION = "1"


@dataclass
class AnalysisOptions:
    """What to analyse and how. Column names refer to the frame given to `analyse`.

    `arms` fixes the order of the arms (protocol order); by default the arm values sorted.
    `control` defaults to the first arm. `horizons` default to the last observed time.
    `competing` names a column of exit kinds (empty = still on support or censored); kinds in
    `censoring_kinds` censor in the cumulative incidence. `rerandomize(R, rng) -> (R, n)` arm
    codes (indices into the arm order) re-runs the assignment procedure for randomization
    inference; by default arm labels are permuted within strata. `preregistered_subgroups` is
    True (all listed subgroups are pre-registered) or the pre-registered column names.
    """

    time: str
    event: str
    arm: str
    control: str | None = None
    arms: list[str] | None = None
    strata: list[str] = field(default_factory=list)
    cluster: str | None = None
    adjust: list[str] = field(default_factory=list)
    competing: str | None = None
    censoring_kinds: Collection[str] = ("moved", "died")
    horizons: list[float] | None = None
    ri_replicates: int = 10_000
    seed: int = DEFAULT_SEED
    rerandomize: Rerandomize | None = None
    subgroups: list[str] = field(default_factory=list)
    preregistered_subgroups: bool | Collection[str] = False
    prognostic: bool = True
    business_case: Mapping[str, Any] | None = None
    benefit_type: str | None = None
    target_n: int | None = None
    minimum_detectable_hr: float | None = None
    alpha: float = 0.05
    power: float = 0.8
    provenance: Mapping[str, Any] = field(default_factory=dict)
    progress: Progress | None = None
    source: str = "analysis frame"

    def __post_init__(self) -> None:
        where = "analysis options"
        problems = []
        if self.horizons is not None and (not self.horizons or any(not float(h) > 0 for h in self.horizons)):
            problems.append(Problem(where, "horizons must be positive times", key="horizons"))
        if self.ri_replicates < 0:
            problems.append(Problem(where, "the number of re-randomizations cannot be negative", key="ri_replicates"))
        if not 0 < self.alpha < 1 or not 0 < self.power < 1:
            problems.append(Problem(where, "alpha and power must be between 0 and 1", key="alpha"))
        if self.arm in self.strata or self.arm in self.adjust or self.arm == self.cluster:
            problems.append(Problem(where, f"the arm column {self.arm!r} cannot also be a stratum, covariate or "
                                    "cluster", key="arm"))
        if problems:
            raise InputError(problems)


class EffectAnalysis:
    """The fitter-shaped face of `analyse`: options checked at construction, `fit` returns self.

    `EffectAnalysis(AnalysisOptions(time="weeks", event="event", arm="arm")).fit(frame)` leaves the
    JSON-ready result in `result_` (also `to_dict()`), and `summary()` is the text a person reads.
    """

    def __init__(self, options: AnalysisOptions):
        self.options = options

    def fit(self, frame: pd.DataFrame) -> EffectAnalysis:
        self.result_ = analyse(frame, self.options)
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.result_

    def summary(self) -> str:
        from trials.analysis.summary import summary_lines

        return "\n".join(summary_lines(self.result_) + [f"warning: {w}" for w in self.result_["warnings"]])


def horizon_key(value: float) -> str:
    """The JSON key of a horizon: 52.0 -> "52", 26.5 -> "26.5"."""
    return f"{float(value):g}"


def one_or_list(items: list[dict[str, Any]]) -> dict[str, Any] | list[dict[str, Any]]:
    """A contrast is an object with two arms and a list of objects (one per non-control arm) with more."""
    return items[0] if len(items) == 1 else items


def analyse(frame: pd.DataFrame, options: AnalysisOptions) -> dict[str, Any]:
    """Run every estimate at every horizon; return the JSON-ready result (see docs/analysis.md)."""
    from trials import __version__

    log = WarningLog()
    prep = prepare(frame, options, options.source)
    names = prep.arm_names
    horizons = [float(h) for h in options.horizons] if options.horizons else [float(prep.time.max())]
    _design_warnings(prep, log)

    result: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "arms": names,
        "control": names[prep.control],
        "n": {name: int(np.sum(prep.arm == i)) for i, name in enumerate(names)},
        "n_total": int(len(prep.arm)),
        "strata": {"columns": list(options.strata), "count": len(prep.stratum_labels) or 1},
        "cluster": options.cluster,
        # True when so few clusters were randomized that robust errors overstate certainty.
        "few_clusters": prep.cluster is not None and 0 < len(np.unique(prep.cluster)) < FEW_CLUSTERS,
        "adjusted_for": list(options.adjust),
        "horizons": {},
    }
    labels = [f"Week {h:g}: " if len(horizons) > 1 else "" for h in horizons]
    ri = _ri(prep, options, horizons, log, labels)
    for h, label, ri_at_h in zip(horizons, labels, ri, strict=True):
        result["horizons"][horizon_key(h)] = _at_horizon(prep, options, h, log, label, ri_at_h)

    last = horizons[-1]
    data = _model_frame(prep, last)
    arms_cols = _arm_columns(prep)
    if options.subgroups:
        from trials.analysis.subgroups import subgroup_analysis

        pre = options.preregistered_subgroups
        prereg = set(options.subgroups) if pre is True else set() if pre is False else set(pre)
        for col in options.subgroups:
            data[col] = prep.frame[col].astype(str).to_numpy()
        result["subgroups"] = subgroup_analysis(data, options.subgroups, arms_cols, names[prep.control],
                                                strata=prep.strata is not None, preregistered=prereg,
                                                horizon=last, log=log)
    else:
        result["subgroups"] = None
    result["business_case"] = _business(prep, options, result["horizons"][horizon_key(last)], log)
    result["targets"] = _targets(prep, options, result["horizons"][horizon_key(last)])
    result = _finite(result)
    result["warnings"] = log.messages
    result["provenance"] = {
        "software": "trials", "version": __version__,
        "protocol_sha256": None, "outcome_snapshot": None, "audit_head": None,
        "source": options.source, "seed": options.seed,
        **dict(options.provenance),
    }
    return result


def _finite(value: Any) -> Any:
    """Plain Python values with every non-finite number (inf, nan) as None, so the JSON is standard."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    return value


FEW_CLUSTERS = 20


def _design_warnings(prep: Prepared, log: WarningLog) -> None:
    if prep.cluster is not None and 0 < len(np.unique(prep.cluster)) < FEW_CLUSTERS:
        log.warn(f"Only {len(np.unique(prep.cluster))} clusters were randomized: cluster-robust standard errors "
                 f"are too small with fewer than {FEW_CLUSTERS} clusters, so the Cox p-value and confidence "
                 "interval overstate the certainty; rely on the randomization-inference p-value.")
    n = len(prep.arm)
    if n < 10:
        log.warn(f"Only {n} units: estimates are very imprecise and large-sample tests unreliable.")
    for i, name in enumerate(prep.arm_names):
        if not np.any(prep.arm == i):
            log.warn(f"Arm {name} has no units.")
    if prep.strata is not None:
        for s, lab in enumerate(prep.stratum_labels):
            present = np.unique(prep.arm[prep.strata == s])
            if len(present) < 2:
                log.warn(f"Stratum {lab!r} has units in one arm only; it adds nothing to the stratified tests.")


def _censor(prep: Prepared, horizon: float) -> tuple[np.ndarray, np.ndarray]:
    """Administrative censoring at the horizon."""
    time = np.minimum(prep.time, horizon)
    event = ((prep.event == 1) & (prep.time <= horizon)).astype(int)
    return time, event


def _arm_columns(prep: Prepared) -> list[tuple[str, str]]:
    return [(prep.arm_names[i], f"arm_{i}") for i in prep.treatment]


def _model_frame(prep: Prepared, horizon: float) -> pd.DataFrame:
    import pandas as pd

    time, event = _censor(prep, horizon)
    data = pd.DataFrame({T: time, E: event})
    for i in prep.treatment:
        data[f"arm_{i}"] = (prep.arm == i).astype(float)
    data[STRATUM] = prep.strata if prep.strata is not None else 0
    if prep.cluster is not None:
        data[CLUSTER] = prep.cluster
    for col in prep.covariates.columns:
        data[col] = prep.covariates[col].to_numpy(float)
    return data


def _at_horizon(prep: Prepared, options: AnalysisOptions, h: float, log: WarningLog, label: str,
                ri: dict[str, Any]) -> dict[str, Any]:
    """Every estimate at one horizon; `ri` is its randomization test (drawn for all horizons at once)."""
    names, control = prep.arm_names, prep.control
    time, event = _censor(prep, h)
    out: dict[str, Any] = {"horizon": h}
    out["events"] = {name: int(event[prep.arm == i].sum()) for i, name in enumerate(names)}
    if event.sum() == 0:
        log.warn(f"{label}No events by week {h:g}: every unit is censored; there is no effect to estimate.")
    else:
        for name, count in out["events"].items():
            if count == 0:
                log.warn(f"{label}Arm {name} has no events by week {h:g}.")
        distinct = len(np.unique(time[event == 1]))
        if event.sum() >= 10 and distinct <= 2:
            log.warn(f"{label}Almost all events fall on {distinct} distinct time(s): heavy ties; Efron's "
                     "approximation is used and the estimates are approximate.")

    # Kaplan–Meier per arm and the difference in share self-sufficient.
    grid = [float(t) for t in np.linspace(0.0, h, 5)]
    tables = {i: km_mod.kaplan_meier(time[prep.arm == i], event[prep.arm == i]) for i in range(len(names))}
    out["km"] = {}
    for i, name in enumerate(names):
        entry = km_mod.km_summary(tables[i], h)
        entry["events"] = out["events"][name]
        entry["at_risk_table"] = km_mod.at_risk_table(tables[i], grid)
        out["km"][name] = entry
    ref = out["km"][names[control]]
    diffs = []
    for i in prep.treatment:
        arm = out["km"][names[i]]
        d = arm["share_self_sufficient"] - ref["share_self_sufficient"]
        se = float(np.hypot(arm["se"], ref["se"]))
        diffs.append({"arm": names[i], "control": names[control], "difference": d, "se": se,
                      "ci": [d - km_mod.Z95 * se, d + km_mod.Z95 * se]})
    out["km_difference"] = one_or_list(diffs)

    # Log-rank, stratified and unstratified.
    unstrat = logrank(time, event, prep.arm, len(names), control, None)
    strat: dict[str, Any] = dict(unstrat)
    if prep.strata is not None:
        strat = dict(logrank(time, event, prep.arm, len(names), control, prep.strata))
    strat["unstratified"] = unstrat
    out["logrank"] = strat

    # Cox, status, RMST, competing risks.
    data = _model_frame(prep, h)
    arms_cols = _arm_columns(prep)
    covs = list(prep.covariates.columns)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        cox = cox_contrasts(data, arms_cols, names[control], covs, strata=prep.strata is not None,
                            cluster=prep.cluster is not None, log=log, label=label)
    for c in cox:
        c["adjusted_for"] = list(prep.covariate_names)
    out["cox"] = one_or_list(cox)
    out["rmst"] = _rmst(prep, tables, h)
    out["cif"] = _cif(prep, options, time, h) if prep.exit_kind is not None else None
    from trials.analysis.status import status_contrasts

    out["status"] = one_or_list(status_contrasts(data, h, arms_cols, names[control], strata=prep.strata is not None,
                                                 cluster=prep.cluster is not None, log=log, label=label))
    if prep.cluster is not None:
        from trials.analysis.cluster import icc_anova

        known = (event == 1) | (prep.time >= h)
        out["cluster"] = icc_anova(event[known].astype(float), prep.cluster[known])
    else:
        out["cluster"] = None
    out["ri"] = ri
    out["prognostic"] = None
    if options.prognostic and covs:
        from trials.analysis.prognostic import prognostic_adjustment

        out["prognostic"] = prognostic_adjustment(data, arms_cols, covs, strata=prep.strata is not None,
                                                  seed=options.seed, labels=prep.covariate_names)
    return out


def _rmst(prep: Prepared, tables: dict[int, km_mod.KMTable], h: float) -> dict[str, Any]:
    from trials.analysis.rmst import rmst_contrast, rmst_from_table, rmst_summary

    names = prep.arm_names
    values = {i: rmst_from_table(tables[i], h) for i in tables}
    contrasts = []
    for i in prep.treatment:
        c = rmst_contrast(names[i], names[prep.control], values[i], values[prep.control])
        c["tau"] = h
        contrasts.append(c)
    out: dict[str, Any] = {"tau": h, "arms": {names[i]: rmst_summary(*values[i]) for i in tables},
                           "contrasts": contrasts}
    if len(contrasts) == 1:
        out.update({k: v for k, v in contrasts[0].items() if k != "tau"})
    return out


def _cif(prep: Prepared, options: AnalysisOptions, time: np.ndarray, h: float) -> dict[str, dict[str, float]]:
    from trials.analysis.competing import cumulative_incidence

    assert prep.exit_kind is not None
    censoring = set(options.censoring_kinds)
    raw = np.array([None if k is None or k in censoring else k for k in prep.exit_kind], dtype=object)
    raw = np.where((raw == None) & (prep.event == 1), "self_sufficient", raw)  # noqa: E711
    exited = (prep.time <= h) & (raw != None)  # noqa: E711
    kinds = sorted({str(k) for k in raw[exited]})
    cause = np.zeros(len(time), dtype=int)
    for j, kind in enumerate(kinds, start=1):
        cause[exited & (raw == kind)] = j
    out: dict[str, dict[str, float]] = {kind: {} for kind in kinds}
    for i, name in enumerate(prep.arm_names):
        mask = prep.arm == i
        values = cumulative_incidence(time[mask], cause[mask], len(kinds), h) if mask.any() else np.zeros(len(kinds))
        for j, kind in enumerate(kinds):
            out[kind][name] = float(values[j])
    return out


def _ri(prep: Prepared, options: AnalysisOptions, horizons: list[float], log: WarningLog,
        labels: list[str]) -> list[dict[str, Any]]:
    """Randomization inference at every horizon, on one set of draws (the costly part)."""
    procedure = "permutation of the observed arms within strata"
    rerandomize = options.rerandomize
    if rerandomize is None and prep.cluster is not None and _one_arm_per_cluster(prep):
        rerandomize = permute_clusters_within_strata(prep.arm, prep.cluster, prep.strata)
        procedure = "permutation of the clusters' arms within strata"
    elif rerandomize is None:
        rerandomize = permute_within_strata(prep.arm, prep.strata)
    censored = [_censor(prep, h) for h in horizons]
    results = randomization_tests([t for t, _ in censored], [e for _, e in censored], prep.strata, prep.arm,
                                  len(prep.arm_names), prep.control, rerandomize, options.ri_replicates,
                                  options.seed, options.progress)
    for result, label in zip(results, labels, strict=True):
        result["procedure"] = "registered assignment procedure" if options.rerandomize else procedure
        if options.ri_replicates > 0 and result["p"] is None:
            log.warn(f"{label}Randomization inference not possible: the log-rank statistic is undefined.")
    return results


def _one_arm_per_cluster(prep: Prepared) -> bool:
    assert prep.cluster is not None
    pairs = np.unique(np.stack([prep.cluster, prep.arm]), axis=1)
    return len(np.unique(pairs[0])) == pairs.shape[1]


def _business(prep: Prepared, options: AnalysisOptions, last: dict[str, Any],
              log: WarningLog) -> dict[str, Any] | list[dict[str, Any]] | None:
    if not options.business_case:
        return None
    from trials.analysis.business import business_case

    shares = None
    if options.benefit_type:
        treated = prep.frame.loc[prep.arm != prep.control, options.benefit_type].astype(str)
        shares = treated.value_counts(normalize=True).to_dict()
    items = []
    for contrast in last["rmst"]["contrasts"]:
        cases = int(np.sum(prep.arm == prep.arm_names.index(contrast["arm"])))
        item = business_case(contrast, cases, options.business_case, shares, log)
        if item is not None:
            items.append(item)
    return one_or_list(items) if items else None


def _targets(prep: Prepared, options: AnalysisOptions, last: dict[str, Any]) -> dict[str, Any]:
    """Whether the trial reached the protocol's target n and what HR its events can detect."""
    from trials.analysis.power import detectable_hr_from_events

    events = int(sum(last["events"].values()))
    share = float(np.mean(prep.arm != prep.control)) if len(prep.arm_names) == 2 else 0.5
    mdhr = detectable_hr_from_events(events, share, options.alpha, options.power) if events > 0 else None
    return {
        "target_n": options.target_n,
        "reached_target_n": None if options.target_n is None else len(prep.arm) >= options.target_n,
        "minimum_detectable_hr": options.minimum_detectable_hr,
        "detectable_hr_with_observed_events": mdhr,
        "reached_minimum_detectable_hr": None if options.minimum_detectable_hr is None or mdhr is None else
        bool(abs(np.log(mdhr)) <= abs(np.log(options.minimum_detectable_hr))),
        "alpha": options.alpha, "power": options.power,
    }




def contract_schema() -> dict[str, Any]:
    """The JSON Schema of `analyse`'s result, shipped as trials/analysis/schema.json."""
    import json
    from importlib.resources import files

    return dict(json.loads(files("trials.analysis").joinpath("schema.json").read_text(encoding="utf-8")))


__all__ = ["AnalysisOptions", "EffectAnalysis", "analyse", "contract_schema", "horizon_key"]
