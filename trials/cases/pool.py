"""The part of the pool a trial can draw from, and the sizes of its strata.

`eligible_cases` applies a protocol's `[eligibility]` in SQL; `trial_stratum_sizes` puts the
eligible cases (or, for cluster trials, their caseworkers or teams) into the protocol's
strata with `trials.strata` and flags strata too small for the block sizes, so a project
lead sees before randomizing that e.g. `primary_barrier=substance|months_band=0-6` holds
three cases and blocks of four cannot complete there.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from trials.models import Case
from trials.protocol import Eligibility, Protocol, load_protocol
from trials.strata import StratumSize, case_stratum, cluster_stratum, stratum_sizes


def eligibility_conditions(eligibility: Eligibility) -> list[Any]:
    """SQL conditions on `Case` for a protocol's eligibility (docs/protocol.md, `[eligibility]`)."""
    conditions: list[Any] = []
    if eligibility.benefit_types:
        conditions.append(Case.benefit_type.in_(eligibility.benefit_types))
    if eligibility.barriers:
        conditions.append(Case.primary_barrier.in_(eligibility.barriers))
    if eligibility.months_min is not None:
        conditions.append(Case.months_unemployed >= eligibility.months_min)
    if eligibility.months_max is not None:
        conditions.append(Case.months_unemployed <= eligibility.months_max)
    if eligibility.teams:
        conditions.append(Case.team.in_(eligibility.teams))
    return conditions


def ineligibility_reason(eligibility: Eligibility, case: Any) -> str | None:
    """Why `eligibility_conditions` exclude one case (a `Case`, a row or a mapping), or None."""
    def get(name: str) -> Any:
        return case[name] if isinstance(case, dict) else getattr(case, name)

    months = float(get("months_unemployed"))
    if eligibility.benefit_types and get("benefit_type") not in eligibility.benefit_types:
        return f"benefit type {get('benefit_type')} is not one of {', '.join(eligibility.benefit_types)}"
    if eligibility.barriers and get("primary_barrier") not in eligibility.barriers:
        return f"primary barrier {get('primary_barrier')} is not one of {', '.join(eligibility.barriers)}"
    if eligibility.months_min is not None and months < eligibility.months_min:
        return f"{months:g} months unemployed is below the minimum {eligibility.months_min:g}"
    if eligibility.months_max is not None and months > eligibility.months_max:
        return f"{months:g} months unemployed is above the maximum {eligibility.months_max:g}"
    if eligibility.teams and get("team") not in eligibility.teams:
        return f"team {get('team') or '(none)'} is not one of {', '.join(eligibility.teams)}"
    return None


def is_eligible(eligibility: Eligibility, case: Any) -> bool:
    """The same rule as `eligibility_conditions` for one case (a `Case` or a mapping)."""
    return ineligibility_reason(eligibility, case) is None


def eligible_cases(eligibility: Eligibility) -> Select[Case]:
    """A query for the eligible cases, in import order."""
    return select(Case).where(*eligibility_conditions(eligibility)).order_by(Case.id)


@dataclass(frozen=True)
class StrataReport:
    """Stratum sizes of a trial over the current pool."""

    trial_id: str
    version: int | None
    unit: str
    method: str
    factors: tuple[str, ...]
    block_sizes: tuple[int, ...]
    eligible_cases: int
    units: int
    strata: list[StratumSize]
    without_cluster: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def too_small(self) -> list[StratumSize]:
        return [s for s in self.strata if s.too_small]

    def as_dict(self) -> dict[str, Any]:
        return {
            "trial": self.trial_id,
            "version": self.version,
            "unit": self.unit,
            "method": self.method,
            "factors": list(self.factors),
            "block_sizes": list(self.block_sizes),
            "eligible_cases": self.eligible_cases,
            "units": self.units,
            "without_cluster": self.without_cluster,
            "strata": [{"stratum": s.label, "n": s.n, "too_small": s.too_small} for s in self.strata],
            "too_small": len(self.too_small),
            "notes": list(self.notes),
        }


_STRATUM_COLUMNS = (Case.primary_barrier, Case.months_unemployed, Case.benefit_type, Case.team, Case.caseworker)


def _pool_rows(session: Session, protocol: Protocol) -> list[dict[str, Any]]:
    """The eligible cases' stratification values (covariates only when a factor needs them)."""
    columns: tuple[Any, ...] = _STRATUM_COLUMNS
    if any(f.startswith("covariate:") for f in protocol.stratification.factors):
        columns = (*columns, Case.covariates)
    query = select(*columns).where(*eligibility_conditions(protocol.eligibility)).order_by(Case.id)
    return [dict(row) for row in session.execute(query).mappings()]


def protocol_stratum_sizes(session: Session, protocol: Protocol, *, version: int | None = None) -> StrataReport:
    """Stratum sizes of `protocol` over the eligible part of the pool.

    Case trials count cases per stratum. Caseworker and team trials count clusters: the
    eligible cases grouped by caseworker (or team), each cluster placed by its size band and
    (for caseworkers) its team, the team most of its cases belong to.
    """
    strat = protocol.stratification
    cases = _pool_rows(session, protocol)
    notes: list[str] = []
    if protocol.unit == "case":
        strata = [case_stratum(protocol, c) for c in cases]
        eligible = units = len(strata)
        without = 0
    else:
        sizes: Counter[str] = Counter()
        teams: dict[str, Counter[str]] = defaultdict(Counter)
        eligible = without = 0
        for c in cases:
            eligible += 1
            cluster = c["caseworker"] if protocol.unit == "caseworker" else c["team"]
            if not cluster:
                without += 1
                continue
            sizes[cluster] += 1
            if c["team"]:
                teams[cluster][c["team"]] += 1
        strata = []
        for cluster, size in sorted(sizes.items()):
            team = cluster if protocol.unit == "team" else (
                teams[cluster].most_common(1)[0][0] if teams[cluster] else None)
            strata.append(cluster_stratum(protocol, size, team))
        units = len(strata)
        if without:
            notes.append(f"{without} eligible cases have no {protocol.unit} and cannot be randomized by cluster")
    if units == 0:
        notes.append("no eligible units in the pool (import cases with `trials cases import FILE`)")
    return StrataReport(
        trial_id=protocol.id,
        version=version,
        unit=protocol.unit,
        method=strat.method,
        factors=strat.factors,
        block_sizes=strat.block_sizes,
        eligible_cases=eligible,
        units=units,
        strata=stratum_sizes(protocol, strata),
        without_cluster=without,
        notes=notes,
    )


def trial_stratum_sizes(session: Session, trial_id: str) -> StrataReport:
    """Stratum sizes of a registered trial's latest protocol over the current pool."""
    from trials.protocol import latest_version

    version = latest_version(session, trial_id).version
    return protocol_stratum_sizes(session, load_protocol(session, trial_id), version=version)
