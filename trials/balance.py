"""Balance of a trial's randomization: per-stratum counts, imbalance, SMDs and the SRM test.

numpy and scipy are imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from trials.assign import imbalance, trial_context
from trials.models import Assignment, Enrollment

SRM_ALPHA = 0.001


class SampleRatioMismatch(UserWarning):
    """The arms' sizes are unlikely under the registered allocation weights (p < 0.001)."""


def srm_test(observed: Mapping[str, int], weights: Mapping[str, int]) -> dict[str, Any]:
    """Pearson chi-square goodness of fit of the arm counts to the weights (df = arms - 1)."""
    from scipy import stats

    arms = list(weights)
    n = sum(observed.get(a, 0) for a in arms)
    total = sum(weights.values())
    expected = {a: n * weights[a] / total for a in arms}
    if n == 0:
        return {"chi2": None, "df": len(arms) - 1, "p": None, "observed": dict(observed), "expected": expected,
                "warning": None}
    chi2 = sum((observed.get(a, 0) - expected[a]) ** 2 / expected[a] for a in arms)
    p = float(stats.chi2.sf(chi2, len(arms) - 1))
    warning = None
    if p < SRM_ALPHA:
        warning = (f"sample ratio mismatch: the arm sizes {dict(observed)} are unlikely under the weights "
                   f"{dict(weights)} (chi-square {chi2:.2f}, p = {p:.2g} < {SRM_ALPHA}); check enrollment")
    return {"chi2": chi2, "df": len(arms) - 1, "p": p, "observed": {a: observed.get(a, 0) for a in arms},
            "expected": expected, "warning": warning}


def smd(treated: Sequence[float], control: Sequence[float]) -> float | None:
    """Standardized mean difference (mean_t - mean_c) / sqrt((var_t + var_c) / 2), sample variances."""
    import numpy as np

    if len(treated) < 2 or len(control) < 2:
        return None
    t, c = np.asarray(treated, dtype=float), np.asarray(control, dtype=float)
    pooled = math.sqrt((t.var(ddof=1) + c.var(ddof=1)) / 2)
    if pooled == 0:
        return 0.0 if t.mean() == c.mean() else None
    return float((t.mean() - c.mean()) / pooled)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).replace(",", "."))
    except ValueError:
        return None


def covariate_smds(frozen: Sequence[Mapping[str, Any]], arms: Sequence[str], control: str) -> dict[str, Any]:
    """SMD of every frozen covariate (and months unemployed) of each treatment arm against control.

    Numeric covariates give one SMD; categorical ones one SMD per level (of the 0/1 indicator).
    """
    columns: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for row in frozen:
        arm = row["arm"]
        columns["months_unemployed"].append((arm, row.get("months_unemployed")))
        columns["primary_barrier"].append((arm, row.get("primary_barrier")))
        for name, value in (row.get("covariates") or {}).items():
            columns[name].append((arm, value))
    out: dict[str, Any] = {}
    for name, values in sorted(columns.items()):
        present = [(arm, v) for arm, v in values if v is not None and v != ""]
        numeric = [(arm, _number(v)) for arm, v in present]
        if present and all(v is not None for _a, v in numeric):
            out[name] = {arm: smd([v for a, v in numeric if a == arm and v is not None],
                                  [v for a, v in numeric if a == control and v is not None])
                         for arm in arms if arm != control}
        else:
            for level in sorted({str(v) for _a, v in present}):
                indicator = [(arm, 1.0 if str(v) == level else 0.0) for arm, v in present]
                out[f"{name}={level}"] = {arm: smd([v for a, v in indicator if a == arm],
                                                   [v for a, v in indicator if a == control])
                                          for arm in arms if arm != control}
    return out


def balance(session: Session, trial_id: str) -> dict[str, Any]:
    """The balance of a trial: per-stratum arm counts of randomized units, the largest
    within-stratum imbalance (max n_a/w_a - min n_a/w_a), SMDs of the enrolled cases'
    frozen covariates, and the SRM chi-square test on the randomized units."""
    ctx = trial_context(session, trial_id, for_writing=False)
    weights = ctx.protocol.arms
    arms = list(weights)
    per_stratum: dict[str, Counter[str]] = defaultdict(Counter)
    for label, arm in session.execute(select(Assignment.stratum_label, Assignment.arm)
                                      .where(Assignment.trial_id == trial_id)):
        per_stratum[label][arm] += 1
    strata = [{"stratum": label, "counts": {a: counts.get(a, 0) for a in arms}, "n": sum(counts.values()),
               "imbalance": imbalance(counts, weights)} for label, counts in sorted(per_stratum.items())]
    totals: Counter[str] = Counter()
    for counts in per_stratum.values():
        totals.update(counts)
    rows = [dict(e.frozen, arm=e.arm) for e in session.scalars(
        select(Enrollment).where(Enrollment.trial_id == trial_id).order_by(Enrollment.sequence))]
    srm = srm_test(totals, weights)
    warnings = [srm["warning"]] if srm["warning"] else []
    if srm["warning"]:
        import warnings as python_warnings

        python_warnings.warn(srm["warning"], SampleRatioMismatch, stacklevel=2)
    return {
        "trial_id": trial_id, "unit": ctx.protocol.unit, "method": ctx.protocol.stratification.method,
        "arms": arms, "weights": dict(weights), "units": {a: totals.get(a, 0) for a in arms},
        "cases": dict(Counter(r["arm"] for r in rows)), "strata": strata,
        "max_imbalance": max((imbalance(c, weights) for c in per_stratum.values()), default=0.0),
        "smd": covariate_smds(rows, arms, ctx.protocol.control_arm) if rows else {},
        "srm": srm, "warnings": warnings,
    }
