"""Portfolio tracking: every trial's lifecycle, enrollment, alarms, follow-ups and last report.

`trials status` prints it; `trials portfolio report` renders it as a page with a timeline and
a Holm-adjusted view of the trials that report on the same outcome.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from trials.models import AuditEvent, Enrollment, OutcomeSnapshot, Trial
from trials.protocol import load_protocol

STATES = ("registered", "enrolling", "closed", "in follow-up", "reported")


def _last_report(session: Session, trial_id: str) -> dict[str, Any] | None:
    event = session.scalars(
        select(AuditEvent).where(AuditEvent.trial_id == trial_id, AuditEvent.action == "report_generated")
        .order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    if event is None:
        return None
    payload = json.loads(event.payload)
    return {"at": event.occurred_at, "format": payload.get("format"), "population": payload.get("population"),
            "snapshot": payload.get("snapshot"), "headline": payload.get("headline")}


def trial_status(session: Session, trial: Trial, today: dt.date | None = None) -> dict[str, Any]:
    """The status row of one trial (see `STATES` for the lifecycle)."""
    from trials.balance import balance
    from trials.outcomes.followup import COMPLETE, followup_status

    protocol = load_protocol(session, trial.id)
    today = today or dt.date.today()
    by_arm: Counter[str] = Counter({arm: count for arm, count in session.execute(
        select(Enrollment.arm, func.count()).where(Enrollment.trial_id == trial.id).group_by(Enrollment.arm)
    )})
    enrolled = sum(by_arm.values())
    followup = followup_status(session, trial.id)
    report = _last_report(session, trial.id)
    has_outcomes = session.scalar(
        select(func.count()).select_from(OutcomeSnapshot).where(OutcomeSnapshot.trial_id == trial.id)
    )
    final_complete = bool(followup["horizons"]) and followup["horizons"][-1]["analysis"] == COMPLETE
    if enrolled == 0:
        state = "registered"
    elif report is not None and final_complete:
        state = "reported"
    elif has_outcomes:
        state = "in follow-up"
    elif trial.closed_at is not None:
        state = "closed"
    else:
        state = "enrolling"
    alarms: list[str] = []
    if enrolled:
        trial_balance = balance(session, trial.id)
        alarms += trial_balance["warnings"]
        sizes = protocol.stratification.block_sizes
        if protocol.stratification.method == "permuted_blocks" and sizes and \
                trial_balance["max_imbalance"] > max(sizes) / 2:
            alarms.append(f"within-stratum imbalance {trial_balance['max_imbalance']:g} exceeds the block bound")
    due = [
        {"weeks": h["weeks"], "due": h["last_case_reaches_on"], "data_in": h["analysis"], "reached": h["reached"]}
        for h in followup["horizons"]
    ]
    upcoming = [h for h in due if h["due"] is not None and h["data_in"] != COMPLETE]
    return {
        "id": trial.id,
        "title": trial.title,
        "unit": trial.unit,
        "state": state,
        "enrolled": enrolled,
        "by_arm": {arm: by_arm.get(arm, 0) for arm in protocol.arms},
        "target_n": protocol.target_n,
        "alarms": alarms,
        "followups": due,
        "next_followup": upcoming[0] if upcoming else None,
        "as_of": followup["as_of"],
        "last_report": report,
        "outcome": {"event_exits": list(protocol.outcome.event_exits),
                    "consecutive_weeks": protocol.outcome.consecutive_weeks},
        "first_enrolled_on": session.scalar(select(func.min(Enrollment.enrolled_on))
                                            .where(Enrollment.trial_id == trial.id)),
        "today": today,
    }


def portfolio_status(session: Session, today: dt.date | None = None) -> list[dict[str, Any]]:
    """The status of every registered trial, in id order."""
    return [trial_status(session, trial, today) for trial in session.scalars(select(Trial).order_by(Trial.id))]


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def holm_groups(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Trials reporting on the same outcome definition, with Holm-adjusted p-values of their last reports."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        headline = (row["last_report"] or {}).get("headline") or {}
        if headline.get("p") is None:
            continue
        outcome = row["outcome"]
        key = f"{' + '.join(outcome['event_exits'])} ({outcome['consecutive_weeks']} weeks)"
        groups.setdefault(key, []).append(row)
    out = []
    for key, members in sorted(groups.items()):
        adjusted = holm([m["last_report"]["headline"]["p"] for m in members])
        out.append({"outcome": key, "trials": [
            {"id": m["id"], "hr": m["last_report"]["headline"].get("hr"), "p": m["last_report"]["headline"]["p"],
             "p_holm": p, "horizon_weeks": m["last_report"]["headline"].get("horizon_weeks")}
            for m, p in zip(members, adjusted, strict=True)
        ]})
    return out
