"""The effect report: the analysis result turned into a document a committee can read.

`build_report` makes the template context (documented in docs/reports.md): display-ready
rows and sentences in the chosen language, figures as inline SVG. `render_report` renders
it as HTML or Markdown; JSON reports are the analysis result itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trials.reports.environment import environment
from trials.reports.figures import Curve, ForestRow, forest, step_curves
from trials.reports.formatting import NumberFormat
from trials.reports.texts import translator
from trials.vocab import EXIT_KINDS

AT_RISK_STEP_WEEKS = 13


@dataclass(frozen=True)
class TrialInfo:
    """What the report says about the registered protocol."""

    id: str
    title: str
    hypothesis: str
    unit: str
    method: str
    factors: Sequence[str]
    weights: Mapping[str, int]
    control: str
    event_exits: Sequence[str]
    competing_exits: Sequence[str]
    consecutive_weeks: int
    version: int = 1
    amendments: Sequence[tuple[int, str]] = ()


@dataclass(frozen=True)
class Outcomes:
    """The analysed units' outcomes, for the curves: weeks, event (1/0), arm, exit kind."""

    time: Sequence[float]
    event: Sequence[int]
    arm: Sequence[str]
    exit_kind: Sequence[str | None] | None = None


@dataclass
class ReportInput:
    trial: TrialInfo
    result: Mapping[str, Any]
    outcomes: Outcomes
    flow: Mapping[str, Any] | None = None
    baseline: Mapping[str, Any] | None = None
    population: str = "itt"
    deviations: list[str] = field(default_factory=list)
    generated_at: dt.datetime | None = None


def as_list(value: Any) -> list[Any]:
    """Contrasts are one object with two arms and a list with more; reports want a list."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def build_report(data: ReportInput, *, lang: str = "en", public: bool = False) -> dict[str, Any]:
    """The template context of the effect report."""
    fmt = NumberFormat(lang, public)
    t = translator(lang)
    result = data.result
    generated = (data.generated_at or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    horizons = [_horizon(key, value, data, fmt, t) for key, value in result["horizons"].items()]
    return {
        "trial": data.trial,
        "population": data.population,
        "generated_at": generated,
        "summary": _summary(data, fmt, t),
        "flow": data.flow,
        "baseline": data.baseline,
        "horizons": horizons,
        "subgroups": _subgroups(result.get("subgroups"), fmt, t),
        "business": _business(result.get("business_case"), fmt, t),
        "warnings": list(result.get("warnings", [])),
        "methods": _methods(data, t, lang),
        "deviations": _deviations(data, t),
        "provenance": result.get("provenance", {}),
    }


def render_report(data: ReportInput, *, fmt: str = "html", lang: str = "en", public: bool = False,
                  template_dir: Path | None = None) -> str:
    """The report as one self-contained HTML page or as Markdown."""
    env = environment(lang, public, template_dir)
    template = env.get_template("effect.html" if fmt == "html" else "effect.md")
    return template.render(report=build_report(data, lang=lang, public=public), result=data.result)


def _summary(data: ReportInput, fmt: NumberFormat, t: Any) -> list[str]:
    result = data.result
    arms = ", ".join(t("summary_arm", n=fmt.count(result["n"][arm]), arm=arm) for arm in result["arms"])
    sentences = [t("summary_tried", title=data.trial.title, n=fmt.count(result["n_total"]), arms=arms)]
    control = result["control"]
    for key, horizon in result["horizons"].items():
        for contrast in as_list(horizon.get("km_difference")):
            arm = contrast["arm"]
            rmst = next((c for c in as_list(horizon["rmst"].get("contrasts")) if c["arm"] == arm), None)
            weeks_diff = None if rmst is None else rmst["difference"]
            sentences.append(t(
                "summary_horizon", weeks=key, arm=arm,
                treated=fmt.percent(horizon["km"][arm]["share_self_sufficient"]),
                control=fmt.percent(horizon["km"][control]["share_self_sufficient"]),
                points=fmt.points(contrast["difference"]),
                ci=fmt.interval(contrast["ci"], 1, scale=100),
                weeks_diff=fmt.number(None if weeks_diff is None else abs(weeks_diff), 1),
                more_less=t("fewer") if (weeks_diff or 0) <= 0 else t("more"),
            ))
            cox = next((c for c in as_list(horizon.get("cox")) if c.get("arm") == arm), None)
            p = None if cox is None else cox.get("p")
            if result.get("few_clusters") and (horizon.get("ri") or {}).get("p") is not None:
                p = horizon["ri"]["p"]  # robust errors are too small with few clusters: the design-based p
            if p is not None:
                sentences.append(t("certainty_strong" if p < 0.05 else "certainty_weak", p=fmt.p_value(p)))
    return sentences


def _horizon(key: str, horizon: Mapping[str, Any], data: ReportInput, fmt: NumberFormat, t: Any) -> dict[str, Any]:
    weeks = float(horizon["horizon"])
    outcomes = data.outcomes
    time = np.minimum(np.asarray(outcomes.time, dtype=float), weeks)
    event = np.asarray(outcomes.event, dtype=int) * (np.asarray(outcomes.time, dtype=float) <= weeks)
    arms_of = np.asarray(outcomes.arm, dtype=object)
    arms = list(data.result["arms"])
    at_risk_times = [float(x) for x in np.arange(0, weeks + 1e-9, AT_RISK_STEP_WEEKS)]
    curves, at_risk = [], {}
    from trials.analysis.km import kaplan_meier, loglog_ci

    for arm in arms:
        mask = arms_of == arm
        table = kaplan_meier(time[mask], event[mask])
        x = np.concatenate([[0.0], table.time])
        share = np.concatenate([[0.0], 1.0 - table.survival])
        bounds = [loglog_ci(s, g) for s, g in zip(table.survival, table.greenwood, strict=True)]
        lower = np.concatenate([[0.0], [1.0 - (b[1] if b[1] is not None else 1.0) for b in bounds]])
        upper = np.concatenate([[0.0], [1.0 - (b[0] if b[0] is not None else 0.0) for b in bounds]])
        curves.append(Curve(arm, x, share, lower, upper))
        at_risk[arm] = [table.at_risk_at(w) for w in at_risk_times]
    km_svg = step_curves(curves, title=f"{t('km_title')} ({t('horizon_weeks', weeks=key)})", xlabel=t("weeks_since"),
                         ylabel=t("share_self_sufficient"), xmax=weeks)
    return {
        "key": key,
        "weeks": weeks,
        "km_svg": km_svg,
        "at_risk": {"times": at_risk_times, "arms": at_risk},
        "cif_svg": _cif_svg(data, weeks, key, t, fmt.lang),
        "effect_rows": _effect_rows(horizon, data.result, fmt, t),
        "ri": _ri_text(horizon.get("ri"), fmt, t),
    }


def _cif_svg(data: ReportInput, weeks: float, key: str, t: Any, lang: str) -> str | None:
    outcomes = data.outcomes
    if outcomes.exit_kind is None:
        return None
    from trials.analysis.competing import cumulative_incidence

    kinds_of = np.asarray([k or "" for k in outcomes.exit_kind], dtype=object)
    time = np.asarray(outcomes.time, dtype=float)
    kinds = sorted({k for k in kinds_of[time <= weeks] if k and k not in ("moved", "died")})
    if not kinds:
        return None
    cause = np.zeros(len(time), dtype=int)
    for j, kind in enumerate(kinds, start=1):
        cause[(kinds_of == kind) & (time <= weeks)] = j
    clipped = np.minimum(time, weeks)
    grid = np.arange(0, weeks + 1e-9, 2.0)
    curves = []
    arms_of = np.asarray(data.outcomes.arm, dtype=object)
    for arm in data.result["arms"]:
        mask = arms_of == arm
        values = np.array([cumulative_incidence(clipped[mask], cause[mask], len(kinds), w) for w in grid])
        for j, kind in enumerate(kinds):
            curves.append(Curve(f"{EXIT_KINDS.label(kind, lang)} – {arm}", grid, values[:, j], colour=j,
                                dashed=arm != data.result["control"]))
    return step_curves(curves, title=f"{t('cif_title')} ({t('horizon_weeks', weeks=key)})", xlabel=t("weeks_since"),
                       ylabel=t("cumulative_incidence"), xmax=weeks)


def _effect_rows(horizon: Mapping[str, Any], result: Mapping[str, Any], fmt: NumberFormat, t: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def row(measure: str, arm: str, estimate: str, ci: str = "", p: str = "", is_count: bool = False) -> None:
        rows.append({"measure": measure, "arm": arm, "estimate": estimate, "ci": ci, "p": p, "is_count": is_count})

    for arm in result["arms"]:
        row(t("events"), arm, fmt.count(horizon["events"][arm]), is_count=True)
    for arm in result["arms"]:
        km = horizon["km"][arm]
        row(t("share_by_horizon"), arm, fmt.percent(km["share_self_sufficient"]), fmt.interval(km["ci"], 1, scale=100))
    for c in as_list(horizon.get("km_difference")):
        row(t("difference_points"), c["arm"], fmt.points(c["difference"]), fmt.interval(c["ci"], 1, scale=100))
    for c in as_list(horizon.get("cox")):
        if c.get("hr") is not None:
            row(t("hazard_ratio"), c["arm"], fmt.number(c["hr"], 2), fmt.interval(c["ci"], 2), fmt.p_value(c.get("p")))
    logrank = horizon.get("logrank") or {}
    if logrank.get("chi2") is not None:
        row(t("logrank"), "", f"χ² = {fmt.number(logrank['chi2'], 2)}", "", fmt.p_value(logrank.get("p")))
    rmst = horizon.get("rmst") or {}
    for arm, value in (rmst.get("arms") or {}).items():
        row(t("rmst"), arm, fmt.number(value["rmst"], 1), fmt.interval(value.get("ci"), 1))
    for c in as_list(rmst.get("contrasts")):
        row(t("rmst_difference"), c["arm"], fmt.number(c["difference"], 1), fmt.interval(c["ci"], 1),
            fmt.p_value(c.get("p")))
    for c in as_list(horizon.get("status")):
        if c.get("risk_difference") is not None:
            row(t("status_rd"), c["arm"], fmt.points(c["risk_difference"]), fmt.interval(c.get("ci"), 1, scale=100),
                fmt.p_value(c.get("p")))
        if c.get("odds_ratio") is not None:
            row(t("status_or"), c["arm"], fmt.number(c["odds_ratio"], 2), fmt.interval(c.get("odds_ratio_ci"), 2),
                fmt.p_value(c.get("odds_ratio_p")))
    cluster = horizon.get("cluster")
    if cluster and cluster.get("icc") is not None:
        row(t("icc"), "", f"{fmt.number(cluster['icc'], 3)} ({fmt.number(cluster.get('design_effect'), 2)})")
    return rows


def _ri_text(ri: Mapping[str, Any] | None, fmt: NumberFormat, t: Any) -> str | None:
    if not ri or ri.get("p") is None:
        return None
    procedure = t("ri_registered") if ri.get("procedure", "").startswith("registered") else t("ri_permutation")
    return t("ri_text", replicates=fmt.integer(ri["replicates"]), p=fmt.p_value(ri["p"]), procedure=procedure)


def _subgroups(subgroups: Mapping[str, Any] | None, fmt: NumberFormat, t: Any) -> dict[str, Any] | None:
    if not subgroups or not subgroups.get("variables"):
        return None
    rows, forest_rows = [], []
    for variable in subgroups["variables"]:
        status = t("preregistered") if variable.get("preregistered") else t("exploratory")
        p = fmt.p_value((variable.get("interaction") or {}).get("p"))
        for level in variable["levels"]:
            for contrast in level["contrasts"]:
                label = f"{variable['variable']} = {level['level']}"
                if len(level["contrasts"]) > 1:
                    label += f" ({contrast['arm']})"
                hr, ci = contrast.get("hr"), contrast.get("ci") or [None, None]
                suppressed = fmt.public and level["n"] < 5
                rows.append({"label": label, "status": status, "n": level["n"], "events": level["events"],
                             "hr": "–" if suppressed else fmt.number(hr, 2),
                             "ci": "–" if suppressed else fmt.interval(ci, 2), "interaction_p": p})
                forest_rows.append(ForestRow(label, None if suppressed else hr, ci[0], ci[1]))
    svg = forest(forest_rows, title=t("forest_title"), xlabel=t("hr_axis"))
    return {"svg": svg, "rows": rows}


def _business(business: Any, fmt: NumberFormat, t: Any) -> list[dict[str, str]] | None:
    items = as_list(business)
    if not items:
        return None
    rows = []
    for item in items:
        ci = item.get("ci", {})
        prefix = f"{item['arm']}: " if len(items) > 1 else ""
        for key, label, render in (
            ("weeks_saved_total", t("weeks_saved"), lambda v: fmt.number(v, 0)),
            ("gross_saving_dkk", t("gross_saving"), fmt.dkk),
            ("net_saving_dkk", t("net_saving"), fmt.dkk),
            ("return_on_investment", t("roi"), lambda v: fmt.number(v, 2)),
        ):
            interval = ci.get(key) or [None, None]
            both = None not in interval
            rows.append({"measure": prefix + label, "estimate": render(item.get(key)),
                         "ci": f"{render(interval[0])} – {render(interval[1])}" if both else "–"})
        rows.append({"measure": prefix + t("total_cost"), "estimate": fmt.dkk(item.get("total_cost_dkk")), "ci": ""})
    return rows


def _targets(result: Mapping[str, Any], fmt: NumberFormat, t: Any) -> list[str]:
    """Whether the trial reached the protocol's target n and minimum detectable hazard ratio."""
    targets = result.get("targets") or {}
    out = []
    if targets.get("target_n"):
        out.append(t("target_n", target=fmt.integer(targets["target_n"]), n=fmt.integer(result["n_total"])))
    if targets.get("minimum_detectable_hr") and targets.get("detectable_hr_with_observed_events"):
        out.append(t("target_hr", planned=fmt.number(targets["minimum_detectable_hr"], 2),
                     detectable=fmt.number(targets["detectable_hr_with_observed_events"], 2)))
    return out


def _methods(data: ReportInput, t: Any, lang: str) -> list[str]:
    trial = data.trial
    factors = ", ".join(trial.factors) or "–"
    weights = ":".join(str(w) for w in trial.weights.values())
    method = trial.method.replace("_", " ")
    exits = ", ".join(EXIT_KINDS.label(k, lang) for k in trial.event_exits)
    competing = ", ".join(EXIT_KINDS.label(k, lang) for k in trial.competing_exits) or "–"
    return [
        t("method_design", unit_text=t(f"unit_{trial.unit}"), method=method, factors=factors, weights=weights),
        t("method_outcome", k=trial.consecutive_weeks, events=exits, competing=competing),
        t("method_analysis"),
        t("population_itt" if data.population == "itt" else "population_pp"),
        *_targets(data.result, NumberFormat(lang), t),
    ]


def _deviations(data: ReportInput, t: Any) -> list[str]:
    items = [t("amendment", version=version, reason=reason) for version, reason in data.trial.amendments]
    if data.population != "itt":
        items.append(t("population_pp"))
    return items + list(data.deviations)
