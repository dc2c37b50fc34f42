"""The database entrance of the analysis: a registered trial -> the analysis frame -> `analyse`.

Every randomized case by assigned arm (intention to treat), its frozen stratum, cluster and
covariates, and the derived outcome of a named snapshot; randomization inference re-runs the
trial's own registered procedure (`trials.design.load_design`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from trials.analysis.engine import AnalysisOptions, analyse
from trials.audit import head
from trials.errors import InputError
from trials.models import Enrollment, EnrollmentEvent
from trials.protocol import Protocol, latest_version, load_protocol
from trials.strata import months_band

if TYPE_CHECKING:
    import pandas as pd

    from trials.analysis.ri import Progress

POPULATIONS = ("itt", "per-protocol")
# Enrollment events that take a case out of the per-protocol population.
PER_PROTOCOL_EXCLUDES = ("withdrawn", "crossed_over", "not_treated")
DEFAULT_SUBGROUPS = ("primary_barrier", "months_band")


@dataclass
class TrialAnalysis:
    """The result of `analyse_trial` with what a report needs beside it."""

    protocol: Protocol
    version: int
    population: str
    snapshot_id: int
    frame: pd.DataFrame  # the analysed rows (after the population filter)
    randomized: pd.DataFrame  # every randomized case, analysed or not (the report's flow diagram)
    result: dict[str, Any]
    excluded: dict[str, int]  # case counts left out, by reason


def enrollment_events(session: Session, trial_id: str) -> dict[str, set[str]]:
    """Per event kind, the keys (case_id column of the frame) of the cases it was recorded for."""
    from trials.models import Case

    rows = session.execute(
        select(EnrollmentEvent.kind, Case.case_key)
        .join(Enrollment, Enrollment.id == EnrollmentEvent.enrollment_id)
        .join(Case, Case.id == Enrollment.case_id)
        .where(Enrollment.trial_id == trial_id)
    )
    found: dict[str, set[str]] = {}
    for kind, key in rows:
        found.setdefault(kind, set()).add(key)
    return found


def analyse_trial(session: Session, trial_id: str, *, population: str = "itt", snapshot_id: int | None = None,
                  horizons: list[int] | None = None, ri_replicates: int = 10_000,
                  progress: Progress | None = None) -> TrialAnalysis:
    """Analyse a trial from the database (ITT by default, the primary analysis)."""
    from trials.design import load_design
    from trials.outcomes.export import analysis_dataframe
    from trials.outcomes.snapshots import get_snapshot

    if population not in POPULATIONS:
        raise InputError([f"--population must be one of {', '.join(POPULATIONS)}"])
    protocol = load_protocol(session, trial_id)
    version = latest_version(session, trial_id)
    snapshot = get_snapshot(session, trial_id, snapshot_id)
    frame = analysis_dataframe(session, trial_id, snapshot.id)
    design = load_design(session, trial_id)

    keep = frame["time_weeks"].notna().to_numpy()
    excluded = {"no_outcome_in_snapshot": int((~keep).sum())}
    if population == "per-protocol":
        events = enrollment_events(session, trial_id)
        out = set().union(*(events.get(kind, set()) for kind in PER_PROTOCOL_EXCLUDES))
        deviating = frame["case_id"].isin(out).to_numpy()
        excluded["per_protocol"] = int((deviating & keep).sum())
        keep &= ~deviating
    analysed = frame[keep].reset_index(drop=True)
    if analysed.empty:
        raise InputError([f"trial {trial_id!r} has no case with an outcome in snapshot {snapshot.id}"])
    analysed["time_weeks"] = analysed["time_weeks"].astype(float)
    analysed["event"] = analysed["event"].astype(int)
    analysed["months_band"] = [
        months_band(float(m), protocol.stratification.months_bands) for m in analysed["months_unemployed"]
    ]
    kept_rows = keep.nonzero()[0]

    def rerandomize(n_rep: int, rng: Any) -> Any:
        draws = design.rerandomize(n_rep, rng)
        return draws if len(kept_rows) == draws.shape[1] else draws.take(kept_rows, axis=1)

    audit_head = head(session)
    preregistered = list(protocol.subgroups)
    subgroups = preregistered or [s for s in DEFAULT_SUBGROUPS if s in analysed.columns]
    options = AnalysisOptions(
        time="time_weeks", event="event", arm="arm", control=protocol.control_arm, arms=list(protocol.arms),
        strata=["stratum"], cluster="cluster" if protocol.unit != "case" else None, competing="exit_kind",
        horizons=[float(h) for h in (horizons or protocol.outcome.horizons_weeks)], ri_replicates=ri_replicates,
        seed=int(snapshot.source_sha256[:8], 16), rerandomize=rerandomize,
        subgroups=[s for s in subgroups if s in analysed.columns],
        preregistered_subgroups=set(preregistered),
        business_case=protocol.business_case or None, benefit_type="benefit_type",
        target_n=protocol.target_n, minimum_detectable_hr=protocol.minimum_detectable_hr,
        provenance={
            "trial": trial_id, "protocol_version": version.version, "protocol_sha256": version.sha256,
            "outcome_snapshot": snapshot.id, "outcome_source_sha256": snapshot.source_sha256,
            "as_of": snapshot.as_of.isoformat(), "audit_head": audit_head.hash if audit_head else None,
            "population": population,
        },
        progress=progress, source=f"trial {trial_id}",
    )
    result = analyse(analysed, options)
    result["population"] = population
    result["excluded"] = excluded
    return TrialAnalysis(protocol, version.version, population, snapshot.id, analysed, frame, result, excluded)
