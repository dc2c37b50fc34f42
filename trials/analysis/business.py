"""The business case (økonomisk potentialeberegning) carried from the RMST difference.

weeks saved per case = RMST(control) - RMST(treatment) up to the horizon;
gross saving = weeks saved per case x cases x weekly benefit cost (DKK);
net saving = gross saving - intervention cost per case x cases - fixed cost;
return on investment = net saving / cost. Every quantity is linear in the RMST difference, so its
95% CI is the RMST difference's CI carried through the same formula.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trials.analysis.warnings import WarningLog


def weekly_cost(spec: Mapping[str, Any], benefit_shares: Mapping[str, float] | None, log: WarningLog) -> float | None:
    """DKK per week on support: a number, or a table by benefit type weighted by the treated cases' mix."""
    costs = spec.get("weekly_cost_dkk")
    if costs is None:
        return None
    if isinstance(costs, (int, float)):
        return float(costs)
    costs = {str(k): float(v) for k, v in dict(costs).items()}
    if not costs:
        return None
    if benefit_shares:
        missing = [b for b in benefit_shares if b not in costs]
        if missing:
            log.warn(f"Business case: no weekly cost for benefit type(s) {', '.join(sorted(missing))}; "
                     "those cases are costed at the mean of the given rates.")
        mean = sum(costs.values()) / len(costs)
        return sum(share * costs.get(b, mean) for b, share in benefit_shares.items())
    if len(costs) > 1:
        log.warn("Business case: several weekly costs but no benefit type per case; the plain mean is used.")
    return sum(costs.values()) / len(costs)


def business_case(contrast: Mapping[str, Any], cases: int, spec: Mapping[str, Any],
                  benefit_shares: Mapping[str, float] | None, log: WarningLog) -> dict[str, Any] | None:
    """The business case for one treatment arm from its RMST contrast (treatment - control, weeks)."""
    rate = weekly_cost(spec, benefit_shares, log)
    if rate is None or contrast.get("difference") is None:
        return None
    per_case_cost = float(spec.get("intervention_cost_per_case_dkk", 0.0))
    fixed = float(spec.get("fixed_cost_dkk", 0.0))
    cases = int(spec.get("cases", cases))
    cost = per_case_cost * cases + fixed

    def carry(difference: float) -> dict[str, float | None]:
        weeks = -difference
        gross = weeks * cases * rate
        net = gross - cost
        return {"weeks_saved_per_case": weeks, "weeks_saved_total": weeks * cases, "gross_saving_dkk": gross,
                "net_saving_dkk": net, "return_on_investment": net / cost if cost > 0 else None}

    point = carry(float(contrast["difference"]))
    low, high = (carry(float(x)) for x in reversed(contrast["ci"]))  # a larger difference saves less
    return {
        "arm": contrast["arm"], "control": contrast["control"], "horizon": contrast.get("tau"),
        "cases": cases, "weekly_cost_dkk": rate, "intervention_cost_per_case_dkk": per_case_cost,
        "fixed_cost_dkk": fixed, "total_cost_dkk": cost, **point,
        "ci": {key: [low[key], high[key]] for key in point},
    }
