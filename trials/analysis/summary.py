"""The analysis result in plain text lines, for a person at a terminal (`trials analyze` without --json)."""

from __future__ import annotations

from typing import Any


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _ci(pair: list[Any] | None) -> str:
    return "(-)" if not pair else f"({_fmt(pair[0])} to {_fmt(pair[1])})"


def as_list(value: Any) -> list[dict[str, Any]]:
    """A contrast value (object with two arms, list with more) as a list."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def summary_lines(result: dict[str, Any]) -> list[str]:
    lines = ["n: " + ", ".join(f"{arm} {n}" for arm, n in result["n"].items()) + f" (control {result['control']})"]
    for key, h in result["horizons"].items():
        lines += ["", f"horizon {key}"]
        for arm, km in h["km"].items():
            lines.append(f"  arm {arm}: events {h['events'][arm]}, self-sufficient {_fmt(km['share_self_sufficient'])} "
                         f"{_ci(km['ci'])}, restricted mean {_fmt(h['rmst']['arms'][arm]['rmst'])}")
        lr = h["logrank"]
        lines.append(f"  log-rank{' (stratified)' if lr['stratified'] else ''}: chi2 {_fmt(lr['chi2'])}, "
                     f"p {_fmt(lr['p'])}")
        for c in as_list(h["cox"]):
            lines.append(f"  Cox HR {c['arm']} vs {c['control']}: {_fmt(c['hr'])} {_ci(c['ci'])}, p {_fmt(c['p'])}")
        for c in h["rmst"]["contrasts"]:
            lines.append(f"  RMST difference {c['arm']} vs {c['control']}: {_fmt(c['difference'])} {_ci(c['ci'])}")
        for c in as_list(h["status"]):
            lines.append(f"  status risk difference {c['arm']} vs {c['control']}: {_fmt(c['risk_difference'])} "
                         f"{_ci(c['ci'])}, odds ratio {_fmt(c['odds_ratio'])}")
        if h["ri"]["p"] is not None:
            lines.append(f"  randomization inference p {_fmt(h['ri']['p'])} ({h['ri']['replicates']} replicates)")
    for item in as_list(result.get("business_case")):
        lines += ["", f"business case {item['arm']} vs {item['control']}: net saving {_fmt(item['net_saving_dkk'])} "
                      f"DKK {_ci(item['ci']['net_saving_dkk'])}"]
    return lines
