"""Categorising the pool: barrier x months-band cross-table, benefit-type counts, filtered lists.

The cross-table is the categorisation the Slagelse note describes (about 2000 cases by
barriers and months of unemployment). Counting happens in the database, so the summary of a
pool of a million cases does not load the cases into Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, func, literal, select
from sqlalchemy.orm import Session

from trials.errors import InputError, Problem
from trials.models import Case
from trials.strata import band_labels
from trials.vocab import BARRIERS, BENEFIT_TYPES

DEFAULT_BANDS = (0.0, 6.0, 12.0, 24.0)


def parse_bands(text: str, source: str = "--bands") -> tuple[float, ...]:
    """`0,6,12,24` -> lower band edges; they start at 0 and increase."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    problems: list[Problem | str] = []
    values: list[float] = []
    for part in parts:
        try:
            values.append(float(part))
        except ValueError:
            problems.append(Problem(source, f"{part!r} is not a number"))
    if not problems:
        if not values:
            problems.append(Problem(source, "give at least one band edge, e.g. 0,6,12,24"))
        elif values[0] != 0:
            problems.append(Problem(source, "the first band edge must be 0 (months on benefits start at 0)"))
        elif any(b <= a for a, b in zip(values, values[1:], strict=False)):
            problems.append(Problem(source, "band edges must increase, e.g. 0,6,12,24"))
    if problems:
        raise InputError(problems)
    return tuple(values)


def band_expression(bands: Sequence[float]) -> Any:
    """SQL for `trials.strata.months_band` (lower edge included, upper excluded; months >= 0)."""
    labels = band_labels(bands)
    whens = [(Case.months_unemployed < upper, label) for upper, label in zip(bands[1:], labels, strict=False)]
    if not whens:  # one band, `0+`: every case is in it
        return literal(labels[-1])
    return case(*whens, else_=labels[-1])


def cross_table(session: Session, bands: Sequence[float] = DEFAULT_BANDS) -> dict[str, Any]:
    """Counts by primary barrier x months band with margins, and counts by benefit type.

    Every barrier of the vocabulary and every band appears (empty ones with 0), so tables
    have the same shape whatever the pool holds.
    """
    labels = band_labels(bands)
    inner = select(Case.primary_barrier.label("barrier"), band_expression(bands).label("band")).subquery()
    counted = session.execute(
        select(inner.c.barrier, inner.c.band, func.count()).group_by(inner.c.barrier, inner.c.band)
    ).all()
    counts = {(barrier, band): int(n) for barrier, band, n in counted}
    barriers = list(BARRIERS.ids) + sorted({b for b, _ in counts} - set(BARRIERS.ids))
    cells = [{"primary_barrier": b, "months_band": label, "n": counts.get((b, label), 0)}
             for b in barriers for label in labels]
    benefits = dict(session.execute(select(Case.benefit_type, func.count()).group_by(Case.benefit_type)).all())
    benefit_ids = list(BENEFIT_TYPES.ids) + sorted(set(benefits) - set(BENEFIT_TYPES.ids))
    total = sum(counts.values())
    return {
        "total": total,
        "bands": [int(b) if float(b).is_integer() else float(b) for b in bands],
        "band_labels": labels,
        "cells": cells,
        "barrier_totals": {b: sum(counts.get((b, label), 0) for label in labels) for b in barriers},
        "band_totals": {label: sum(counts.get((b, label), 0) for b in barriers) for label in labels},
        "benefit_types": {b: int(benefits.get(b, 0)) for b in benefit_ids},
    }


def _vocabulary_filter(value: str | None, vocabulary: Any, option: str) -> str | None:
    if value is None:
        return None
    term: str | None = vocabulary.lookup(value)
    if term is None:
        raise InputError([Problem(option, f"unknown {vocabulary.name} {value!r}; accepted: {vocabulary.accepted()}")])
    return term


def list_cases(session: Session, *, barrier: str | None = None, benefit: str | None = None,
               team: str | None = None, caseworker: str | None = None, limit: int | None = None
               ) -> list[dict[str, Any]]:
    """The current categorisation of the cases matching every filter given, in import order.

    `barrier` matches the primary barrier; ids and Danish names are accepted. `case_id` is
    the case id the jobcenter gave or, for cases imported by CPR number, the pseudonym.
    """
    barrier_id = _vocabulary_filter(barrier, BARRIERS, "--barrier")
    benefit_id = _vocabulary_filter(benefit, BENEFIT_TYPES, "--benefit")
    query = select(Case).order_by(Case.id)
    if barrier_id is not None:
        query = query.where(Case.primary_barrier == barrier_id)
    if benefit_id is not None:
        query = query.where(Case.benefit_type == benefit_id)
    if team is not None:
        query = query.where(Case.team == team)
    if caseworker is not None:
        query = query.where(Case.caseworker == caseworker)
    if limit is not None:
        query = query.limit(limit)
    return [case_dict(c) for c in session.scalars(query)]


def case_dict(c: Case) -> dict[str, Any]:
    """The JSON shape of one case (`cases list --json`)."""
    return {
        "case_id": c.case_key,
        "id_kind": c.id_kind,
        "primary_barrier": c.primary_barrier,
        "barriers": list(c.barriers),
        "months_unemployed": c.months_unemployed,
        "benefit_type": c.benefit_type,
        "caseworker": c.caseworker,
        "team": c.team,
        "as_of": c.as_of,
        "revision": c.revision,
        "covariates": dict(c.covariates or {}),
    }
