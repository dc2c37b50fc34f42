"""`trials followup TRIAL`: which follow-ups are due.

For each horizon of the protocol (52 and 104 weeks by default): how many enrolled cases have
been followed that long by the as-of date of the latest outcome snapshot (a case reaches
horizon h on its enrollment date + h weeks), when the last case reaches it, and whether the
analysis at that horizon is complete, partial or not yet possible.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from trials.outcomes.snapshots import enrolled_cases, latest_snapshot, require_trial
from trials.protocol import load_protocol

COMPLETE, PARTIAL, NOT_YET = "complete", "partial", "not_yet_possible"


def reaches_on(enrolled_on: dt.date, weeks: int) -> dt.date:
    """The date a case enrolled on `enrolled_on` has been followed for `weeks` whole weeks."""
    return enrolled_on + dt.timedelta(weeks=weeks)


def followup_status(session: Session, trial_id: str) -> dict[str, Any]:
    require_trial(session, trial_id)
    protocol = load_protocol(session, trial_id)
    cases = enrolled_cases(session, trial_id)
    snapshot = latest_snapshot(session, trial_id)
    as_of = snapshot.as_of if snapshot is not None else None
    horizons = []
    for weeks in protocol.outcome.horizons_weeks:
        dates = [reaches_on(case.enrolled_on, weeks) for case in cases]
        reached = sum(1 for d in dates if as_of is not None and d <= as_of)
        if reached == 0:
            analysis = NOT_YET
        elif reached == len(cases):
            analysis = COMPLETE
        else:
            analysis = PARTIAL
        horizons.append({
            "weeks": weeks,
            "enrolled": len(cases),
            "reached": reached,
            "last_case_reaches_on": max(dates) if dates else None,
            "analysis": analysis,
        })
    return {
        "trial": trial_id,
        "snapshot": snapshot.id if snapshot is not None else None,
        "as_of": as_of,
        "enrolled": len(cases),
        "horizons": horizons,
    }
