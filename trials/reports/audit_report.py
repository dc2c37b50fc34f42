"""`trials audit report TRIAL`: what an auditor files — was the assignment random, concealed
and never altered?

The page shows the verification result (hash chain, re-derived allocations, protocol hashes,
seed), every protocol version with its hash and amendment reason, the seed commitment (and
the seed once revealed), the enrollment timeline, balance per stratum over time, the SRM
test, every withdrawal or crossover, every back-dated enrollment, and the chain head.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from trials.audit import record_event, sha256_hex
from trials.models import Assignment, Case, Enrollment, EnrollmentEvent
from trials.reports.environment import environment
from trials.reports.figures import Curve, step_curves


def audit_context(session: Session, trial_id: str) -> dict[str, Any]:
    """The audit report's template context (documented in docs/reports.md)."""
    from trials.audit import verify
    from trials.balance import balance
    from trials.protocol import show_trial

    trial = show_trial(session, trial_id)
    verification = verify(session, trial_id)
    trial_balance = balance(session, trial_id)
    enrollments = session.execute(
        select(Enrollment, Case.case_key, Assignment.stratum_label).join(Case, Case.id == Enrollment.case_id)
        .join(Assignment, Assignment.id == Enrollment.assignment_id)
        .where(Enrollment.trial_id == trial_id).order_by(Enrollment.sequence)
    ).all()
    events = session.execute(
        select(EnrollmentEvent, Case.case_key).join(Enrollment, Enrollment.id == EnrollmentEvent.enrollment_id)
        .join(Case, Case.id == Enrollment.case_id).where(Enrollment.trial_id == trial_id)
        .order_by(EnrollmentEvent.recorded_at)
    ).all()
    backdated = [
        {"sequence": e.sequence, "case": key, "stated": e.enrolled_on.isoformat(),
         "recorded": e.enrolled_at.strftime("%Y-%m-%d %H:%M UTC")}
        for e, key, _stratum in enrollments if e.enrolled_on < e.enrolled_at.date()
    ]
    return {
        "trial": trial,
        "verification": verification.as_dict() | {"summary": verification.summary() if verification.ok else None},
        "balance": trial_balance,
        "timeline_svg": _timeline(enrollments, trial_balance["arms"]) if enrollments else None,
        "imbalance_svg": _imbalance(enrollments, trial_balance["arms"]) if enrollments else None,
        "enrolled": len(enrollments),
        "events": [{"kind": ev.kind, "case": key, "reason": ev.reason, "effective_on": ev.effective_on.isoformat(),
                    "recorded": ev.recorded_at.strftime("%Y-%m-%d %H:%M UTC")} for ev, key in events],
        "backdated": backdated,
    }


def _timeline(enrollments: Sequence[Any], arms: list[str]) -> str:
    """Cumulative enrollments per arm by enrollment date."""
    import numpy as np

    first = min(row[0].enrolled_on for row in enrollments)
    weeks = [(row[0].enrolled_on - first).days / 7 for row in enrollments]
    curves = []
    for arm in arms:
        mine = sorted(w for w, row in zip(weeks, enrollments, strict=True) if row[0].arm == arm)
        if mine:
            curves.append(Curve(arm, np.array([0.0, *mine]), np.arange(0, len(mine) + 1) / len(enrollments)))
    return step_curves(curves, title="Enrollment timeline", xlabel=f"Weeks since {first.isoformat()}",
                       ylabel="Share of all enrollments", xmax=max(1.0, max(weeks)), percent=True)


def _imbalance(enrollments: Sequence[Any], arms: list[str]) -> str:
    """The largest within-stratum difference between arms after each enrollment."""
    import numpy as np

    per_stratum: dict[str, Counter[str]] = {}
    worst = []
    for enrollment, _key, stratum in enrollments:
        counts = per_stratum.setdefault(stratum, Counter())
        counts[enrollment.arm] += 1
        worst.append(max(max(c[a] for a in arms) - min(c[a] for a in arms) for c in per_stratum.values()))
    n = len(worst)
    return step_curves([Curve("largest within-stratum difference between arms", np.arange(1, n + 1), np.array(worst))],
                       title="Balance over time", xlabel="Enrollments", ylabel="Cases", xmax=n, percent=False,
                       ymax=max(max(worst), 1) + 1)


def write_audit_report(session: Session, trial_id: str, output: Path, *, template_dir: Path | None = None) -> str:
    """Render the audit report, write it, and record an `audit_report_generated` event; returns its SHA-256."""
    env = environment("en", False, template_dir)
    html = env.get_template("audit.html").render(audit=audit_context(session, trial_id))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(html, encoding="utf-8")
    digest = sha256_hex(html)
    record_event(session, "audit_report_generated", trial_id=trial_id, payload={"file": output.name, "sha256": digest})
    return digest
