"""The portfolio page: all trials at a glance, with a timeline and a Holm-adjusted view."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from trials.audit import record_event, sha256_hex
from trials.reports.environment import environment
from trials.reports.figures import Span, timeline


def _timeline_svg(rows: list[dict[str, Any]]) -> str | None:
    spans = []
    dated = [r for r in rows if r["first_enrolled_on"] is not None]
    if not dated:
        return None
    origin = min(r["first_enrolled_on"] for r in dated)

    def weeks(day: dt.date) -> float:
        return (day - origin).days / 7

    for row in dated:
        ends = [f["due"] for f in row["followups"] if f["due"] is not None]
        end = max(ends) if ends else row["first_enrolled_on"]
        marks = [(weeks(f["due"]), f"{f['weeks']}w") for f in row["followups"] if f["due"] is not None]
        if row["as_of"] is not None:
            marks.append((weeks(row["as_of"]), "data"))
        spans.append(Span(row["id"], weeks(row["first_enrolled_on"]), weeks(end), marks))
    last = max(s.end for s in spans)
    ticks = {}
    for year in range(origin.year, origin.year + int(last // 52) + 3):
        day = dt.date(year, 1, 1)
        if 0 <= weeks(day) <= last + 1:
            ticks[weeks(day)] = str(year)
    return timeline(spans, title="Trials from first enrollment to the last follow-up", xlabel="Calendar time",
                    tick_labels=ticks)


def portfolio_context(session: Session, today: dt.date | None = None) -> dict[str, Any]:
    from trials.portfolio import holm_groups, portfolio_status

    rows = portfolio_status(session, today)
    return {"rows": rows, "timeline_svg": _timeline_svg(rows), "holm": holm_groups(rows),
            "generated_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")}


def write_portfolio(session: Session, output: Path, *, lang: str = "en", template_dir: Path | None = None) -> str:
    """Render the portfolio page, write it, record `portfolio_report_generated`; returns its SHA-256."""
    html = environment(lang, False, template_dir).get_template("portfolio.html").render(
        portfolio=portfolio_context(session))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(html, encoding="utf-8")
    digest = sha256_hex(html)
    record_event(session, "portfolio_report_generated", payload={"file": output.name, "sha256": digest})
    return digest
