"""`trials report TRIAL`: analyse a trial from the database and write its effect report.

The analysis reads the database without holding the write lock; then writing the report,
a change of state an auditor may ask about, appends a `report_generated` audit event with
the file's SHA-256 and the headline effect (which `trials status` shows).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from trials.audit import canonical_json, record_event, sha256_hex
from trials.errors import InputError
from trials.models import Case
from trials.reports.effect import Outcomes, ReportInput, TrialInfo, as_list, render_report

if TYPE_CHECKING:
    import pandas as pd

    from trials.analysis.trial import TrialAnalysis

FORMATS = ("html", "md", "json", "pdf")
# Frame columns that identify or locate a case rather than describe it: not baseline rows.
NOT_BASELINE = {"case_id", "arm", "stratum", "cluster", "caseworker", "team", "as_of", "barriers", "enrolled_on",
                "months_band"}


@dataclass(frozen=True)
class WrittenReport:
    path: Path | None  # None: the JSON report was returned as `text` instead of written
    sha256: str
    headline: dict[str, Any]
    text: str | None = None


def trial_info(analysis: TrialAnalysis, amendments: list[tuple[int, str]]) -> TrialInfo:
    protocol = analysis.protocol
    return TrialInfo(
        id=protocol.id, title=protocol.title, hypothesis=protocol.hypothesis.strip(), unit=protocol.unit,
        method=protocol.stratification.method, factors=list(protocol.stratification.factors),
        weights=dict(protocol.arms), control=protocol.control_arm, event_exits=list(protocol.outcome.event_exits),
        competing_exits=list(protocol.outcome.competing_exits),
        consecutive_weeks=protocol.outcome.consecutive_weeks, version=analysis.version, amendments=amendments,
    )


def flow_numbers(session: Session, analysis: TrialAnalysis) -> dict[str, Any]:
    """CONSORT numbers: pool, eligible, randomized, and per arm what happened to the cases."""
    from trials.analysis.trial import enrollment_events
    from trials.cases.pool import eligibility_conditions

    protocol = analysis.protocol
    pool = session.scalar(select(func.count()).select_from(Case)) or 0
    conditions = eligibility_conditions(protocol.eligibility)
    if protocol.unit != "case":
        conditions.append(getattr(Case, protocol.unit).is_not(None))
    eligible = session.scalar(select(func.count()).select_from(Case).where(*conditions)) or 0
    randomized = analysis.randomized
    events = enrollment_events(session, protocol.id)
    frame = analysis.frame
    last = max(float(h) for h in analysis.result["horizons"])
    arms = []
    for arm in protocol.arms:
        keys = set(randomized.loc[randomized["arm"] == arm, "case_id"])
        analysed = frame[frame["arm"] == arm]
        censored = int(((analysed["event"] == 0) & (analysed["time_weeks"] < last)).sum())
        arms.append({
            "arm": arm,
            "allocated": len(keys),
            **{kind: len(keys & events.get(kind, set())) for kind in ("withdrawn", "crossed_over", "not_treated")},
            "censored": censored,
            "analysed": int(len(analysed)),
        })
    return {"pool": pool, "eligible": max(eligible, len(randomized)), "randomized": len(randomized), "arms": arms}


def baseline_table(frame: pd.DataFrame, arms: list[str], control: str) -> dict[str, Any]:
    """Mean (SD) of numeric baseline variables and counts of categories, with SMDs vs control."""
    import pandas as pd

    from trials.balance import smd

    treated = next(arm for arm in arms if arm != control)
    rows: list[dict[str, Any]] = []
    outcome = {"time_weeks", "event", "exit_kind", "weeks_on_support_52", "weeks_on_support_104", "status_52",
               "status_104", "relapses"}
    for column in frame.columns:
        if column in NOT_BASELINE or column in outcome:
            continue
        values = frame[column]
        numeric = pd.to_numeric(values, errors="coerce")
        label = column.removeprefix("covariates_")
        if numeric.notna().sum() == values.notna().sum() and values.notna().any():
            rows.append({
                "variable": f"{label} (mean, SD)", "cells": {}, "counts": None, "shares": None,
                "means": {arm: float(numeric[frame["arm"] == arm].mean()) for arm in arms},
                "sds": {arm: float(numeric[frame["arm"] == arm].std()) for arm in arms},
                "smd": smd(numeric[frame["arm"] == treated].dropna(), numeric[frame["arm"] == control].dropna()),
            })
            continue
        for level in sorted(values.dropna().astype(str).unique()):
            indicator = (values.astype(str) == level).astype(float)
            counts = {arm: int(indicator[frame["arm"] == arm].sum()) for arm in arms}
            sizes = {arm: int((frame["arm"] == arm).sum()) for arm in arms}
            rows.append({
                "variable": f"{label} = {level}", "cells": {}, "counts": counts, "means": None, "sds": None,
                "shares": {arm: counts[arm] / sizes[arm] if sizes[arm] and counts[arm] >= 5 else None for arm in arms},
                "smd": smd(indicator[frame["arm"] == treated], indicator[frame["arm"] == control]),
            })
    return {"arms": arms, "rows": rows}


def report_input(session: Session, analysis: TrialAnalysis) -> ReportInput:
    from trials.models import ProtocolVersion

    amendments = [
        (row.version, row.reason or "")
        for row in session.scalars(select(ProtocolVersion).where(
            ProtocolVersion.trial_id == analysis.protocol.id, ProtocolVersion.version > 1
        ).order_by(ProtocolVersion.version))
    ]
    frame = analysis.frame
    return ReportInput(
        trial=trial_info(analysis, amendments),
        result=analysis.result,
        outcomes=Outcomes(frame["time_weeks"].tolist(), frame["event"].tolist(), frame["arm"].tolist(),
                          [None if k is None or k != k else str(k) for k in frame["exit_kind"].tolist()]),
        flow=flow_numbers(session, analysis),
        baseline=baseline_table(frame, list(analysis.protocol.arms), analysis.protocol.control_arm),
        population=analysis.population,
    )


def headline(result: Mapping[str, Any]) -> dict[str, Any]:
    """The effect at the last horizon in a few numbers (for `trials status`)."""
    key = list(result["horizons"])[-1]
    horizon = result["horizons"][key]
    cox = as_list(horizon.get("cox"))
    difference = as_list(horizon.get("km_difference"))
    return {
        "horizon_weeks": key,
        "hr": cox[0].get("hr") if cox else None,
        "hr_ci": cox[0].get("ci") if cox else None,
        "p": cox[0].get("p") if cox else None,
        "share_difference": difference[0].get("difference") if difference else None,
    }


@dataclass(frozen=True)
class RenderedReport:
    """A report made from a read-only look at the database, not yet recorded."""

    trial_id: str
    analysis: TrialAnalysis
    fmt: str
    lang: str
    public: bool
    output: Path | None
    content: bytes


def render_trial_report(session: Session, trial_id: str, output: Path | None, *, fmt: str = "html",
                        lang: str = "en", public: bool = False, population: str = "itt",
                        snapshot_id: int | None = None, horizons: list[int] | None = None,
                        ri_replicates: int = 10_000, template_dir: Path | None = None,
                        progress: Any = None) -> RenderedReport:
    """Analyse the trial and write the report file (JSON without `output` stays in memory)."""
    from trials.analysis.trial import analyse_trial
    from trials.reports.browser import html_to_pdf

    if output is None and fmt != "json":
        raise InputError([f"-o FILE is required for --format {fmt}"])
    analysis = analyse_trial(session, trial_id, population=population, snapshot_id=snapshot_id, horizons=horizons,
                             ri_replicates=ri_replicates, progress=progress)
    if fmt == "json":
        text = json.dumps(analysis.result, indent=2, ensure_ascii=False, default=_json_default) + "\n"
    else:
        text = render_report(report_input(session, analysis), fmt="md" if fmt == "md" else "html", lang=lang,
                             public=public, template_dir=template_dir)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "pdf":
            html_file = output.with_suffix(".html")
            html_file.write_text(text, encoding="utf-8")
            html_to_pdf(html_file, output)
        else:
            output.write_text(text, encoding="utf-8")
    content = output.read_bytes() if output is not None else text.encode("utf-8")
    return RenderedReport(trial_id, analysis, fmt, lang, public, output, content)


def record_report(session: Session, rendered: RenderedReport) -> WrittenReport:
    """Append the `report_generated` audit event (file SHA-256, headline effect)."""
    digest = sha256_hex(rendered.content)
    summary = headline(rendered.analysis.result)
    record_event(session, "report_generated", trial_id=rendered.trial_id, payload={
        "format": rendered.fmt, "lang": rendered.lang, "public": rendered.public,
        "population": rendered.analysis.population, "snapshot": rendered.analysis.snapshot_id,
        "horizons": list(rendered.analysis.result["horizons"]),
        "file": None if rendered.output is None else rendered.output.name,
        "sha256": digest, "headline": json.loads(canonical_json(summary)),
    })
    text = rendered.content.decode("utf-8") if rendered.output is None else None
    return WrittenReport(rendered.output, digest, summary, text)


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
