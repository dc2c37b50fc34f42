"""Synthetic case pools for demos, tests, training and power planning.

`synthesise(n, seed)` draws a pool that looks like a Danish jobcenter's: benefit types,
barriers (a dominant one plus co-occurring ones), months on benefits with a heavy right tail
that grows with the number of barriers, caseworkers in teams with unequal caseloads, age,
sex and a screening risk category. Every figure and the source it is calibrated to is in
docs/synthetic.md; the constants below carry the same names.

Fake CPR numbers (`with_cpr=True`) are real dates with serials 9000-9999 chosen to FAIL the
modulus-11 check (which every number issued before 2007 passes), so they are unlikely to be a
real person's and never equal a fixture CPR of this project's tests (which use serials below
9000 or pass modulus 11); `is_synthetic_cpr` recognises them.
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trials.errors import InputError, Problem
from trials.tabular import neutralise_formula

DEFAULT_AS_OF = dt.date(2026, 1, 1)

# Share of the pool on each benefit type (assumption; docs/synthetic.md, "Benefit types").
BENEFIT_SHARES: dict[str, float] = {
    "cash_assistance": 0.33,
    "sickness_benefit": 0.22,
    "education_assistance": 0.12,
    "resource_course": 0.11,
    "job_clarification": 0.10,
    "flexjob_waiting": 0.06,
    "rehabilitation": 0.02,
    "other": 0.04,
}

# Months on benefits: log-normal per benefit type, (median months, total log-sd).
# job_clarification is solved from Hedensted: P(>12 months) = 127/218 = 58.3 %, P(>24) = 1/3.
MONTHS_LOGNORMAL: dict[str, tuple[float, float]] = {
    "cash_assistance": (23.0, 1.2),
    "sickness_benefit": (4.0, 0.8),
    "education_assistance": (10.0, 1.0),
    "resource_course": (36.0, 0.9),
    "job_clarification": (14.8, 1.081),
    "flexjob_waiting": (10.0, 1.0),
    "rehabilitation": (14.0, 0.8),
    "other": (8.0, 1.0),
}
# Each barrier beyond the average for the benefit type multiplies the duration by e^0.3 = 1.35.
LOG_MONTHS_PER_BARRIER = 0.3
MIN_WORKING_AGE = 16

BARRIER_IDS = ("physical", "mild_mental", "mental_illness", "cognitive", "social", "substance", "lifestyle",
               "diffuse", "none")

# Dominant (primary) barrier by benefit type, weights in BARRIER_IDS order.
PRIMARY_BARRIER_WEIGHTS: dict[str, tuple[float, ...]] = {
    "cash_assistance": (0.14, 0.14, 0.10, 0.06, 0.18, 0.10, 0.06, 0.07, 0.15),
    "sickness_benefit": (0.50, 0.25, 0.06, 0.01, 0.02, 0.02, 0.04, 0.10, 0.0),
    "education_assistance": (0.06, 0.18, 0.08, 0.18, 0.18, 0.08, 0.04, 0.05, 0.15),
    "resource_course": (0.16, 0.14, 0.24, 0.10, 0.14, 0.12, 0.04, 0.06, 0.0),
    "job_clarification": (0.40, 0.25, 0.12, 0.02, 0.03, 0.03, 0.05, 0.10, 0.0),
    "flexjob_waiting": (0.50, 0.15, 0.10, 0.08, 0.02, 0.01, 0.04, 0.10, 0.0),
    "rehabilitation": (0.55, 0.15, 0.05, 0.10, 0.03, 0.02, 0.03, 0.07, 0.0),
    "other": (0.20, 0.15, 0.10, 0.05, 0.15, 0.05, 0.05, 0.10, 0.15),
}
# Mean number of barriers besides the primary one (Poisson, at most MAX_EXTRA_BARRIERS).
EXTRA_BARRIERS_MEAN: dict[str, float] = {
    "cash_assistance": 0.8,
    "sickness_benefit": 0.3,
    "education_assistance": 0.7,
    "resource_course": 1.4,
    "job_clarification": 0.6,
    "flexjob_waiting": 0.5,
    "rehabilitation": 0.4,
    "other": 0.5,
}
MAX_EXTRA_BARRIERS = 4
# Pairs of barriers that go together more often than chance (weight x3 when drawing extras).
BARRIER_AFFINITY = {
    frozenset(p) for p in (
        ("mental_illness", "substance"), ("social", "substance"), ("mild_mental", "physical"),
        ("lifestyle", "physical"), ("cognitive", "social"), ("diffuse", "mild_mental"),
        ("mental_illness", "social"),
    )
}
AFFINITY_WEIGHT = 3.0

# Age by benefit type: (mean, sd, min, max); uddannelseshjælp is for people under 30.
AGE: dict[str, tuple[float, float, int, int]] = {
    "cash_assistance": (41, 11, 25, 66),
    "sickness_benefit": (45, 11, 20, 67),
    "education_assistance": (23, 3, 18, 29),
    "resource_course": (42, 11, 20, 66),
    "job_clarification": (48, 9, 25, 67),
    "flexjob_waiting": (49, 9, 25, 67),
    "rehabilitation": (36, 10, 20, 60),
    "other": (40, 12, 18, 67),
}
FEMALE_SHARE: dict[str, float] = {
    "cash_assistance": 0.46,
    "sickness_benefit": 0.62,
    "education_assistance": 0.42,
    "resource_course": 0.52,
    "job_clarification": 0.64,
    "flexjob_waiting": 0.60,
    "rehabilitation": 0.45,
    "other": 0.50,
}

# Caseworkers: about 30 per 2000 cases (the issue: 20-40), in teams by benefit area.
CASES_PER_CASEWORKER = 2000 / 30
CASELOAD_SHAPE = 4.0  # gamma shape of caseworkers' relative caseloads: coefficient of variation 0.5
TEAMS: dict[str, str] = {
    "cash_assistance": "Kontanthjælp",
    "education_assistance": "Unge",
    "sickness_benefit": "Sygedagpenge",
    "job_clarification": "Jobafklaring",
    "resource_course": "Ressourceforløb",
    "flexjob_waiting": "Fleks og revalidering",
    "rehabilitation": "Fleks og revalidering",
    "other": "Kontanthjælp",
}

# Screening risk of long-term public support (Hjørring's early screening), from a score.
RISK_CUTS = (-0.5, 0.7)  # score below -> low, between -> moderate, above -> high

CPR_WEIGHTS = (4, 3, 2, 7, 6, 5, 4, 3, 2, 1)
SYNTHETIC_SERIALS = range(9000, 10000)

COLUMNS = ("primary_barrier", "barriers", "months_unemployed", "benefit_type", "caseworker", "team", "as_of",
           "age", "sex", "risk")


def _barrier_count_moments(benefit: str) -> tuple[float, float]:
    """Mean and variance of the number of barriers (0 for `none`) for a benefit type."""
    p_none = PRIMARY_BARRIER_WEIGHTS[benefit][-1] / sum(PRIMARY_BARRIER_WEIGHTS[benefit])
    lam = EXTRA_BARRIERS_MEAN[benefit]
    pmf = [math.exp(-lam) * lam**k / math.factorial(k) for k in range(MAX_EXTRA_BARRIERS)]
    pmf.append(1 - sum(pmf))
    mean = (1 - p_none) * sum((1 + k) * p for k, p in enumerate(pmf))
    second = (1 - p_none) * sum((1 + k) ** 2 * p for k, p in enumerate(pmf))
    return mean, second - mean**2


def mod11_ok(digits: str) -> bool:
    """The old CPR modulus-11 check (required of every number issued before October 2007)."""
    return sum(int(d) * w for d, w in zip(digits, CPR_WEIGHTS, strict=True)) % 11 == 0


def is_synthetic_cpr(value: str) -> bool:
    """True for a CPR number this module could have made: serial 9000-9999 failing modulus 11."""
    digits = value.replace("-", "").strip()
    return len(digits) == 10 and digits.isdigit() and digits[6] == "9" and not mod11_ok(digits)


def _fake_cpr(rng: random.Random, birth: dt.date, female: bool, used: set[str]) -> str:
    """DDMMYY-9SSS: a real birth date, 7th digit 9 (century rule: 2000s for YY <= 36, else 1900s),
    the last digit even for women and odd for men, and failing modulus 11."""
    if not 1937 <= birth.year <= 2036:
        raise ValueError("birth year outside what a 7th digit of 9 can encode")
    stem = birth.strftime("%d%m%y")
    while True:
        serial = rng.choice(SYNTHETIC_SERIALS)
        if (serial % 2 == 0) != female:
            serial = serial + 1 if serial < 9999 else serial - 1
        digits = f"{stem}{serial:04d}"
        if not mod11_ok(digits) and digits not in used:
            used.add(digits)
            return f"{digits[:6]}-{digits[6:]}"


def _caseworkers(rng: random.Random, n: int) -> dict[str, list[tuple[str, float]]]:
    """Caseworker ids with relative caseloads, by team (every team with cases gets one)."""
    team_share: dict[str, float] = {}
    for benefit, share in BENEFIT_SHARES.items():
        team_share[TEAMS[benefit]] = team_share.get(TEAMS[benefit], 0.0) + share
    total = max(len(team_share), round(n / CASES_PER_CASEWORKER))
    staff: dict[str, list[tuple[str, float]]] = {}
    number = 0
    for team, share in team_share.items():
        count = max(1, round(total * share))
        staff[team] = []
        for _ in range(count):
            number += 1
            staff[team].append((f"SB{number:02d}", rng.gammavariate(CASELOAD_SHAPE, 1 / CASELOAD_SHAPE)))
    return staff


def _age(rng: random.Random, benefit: str) -> int:
    mean, sd, low, high = AGE[benefit]
    while True:
        age = round(rng.gauss(mean, sd))
        if low <= age <= high:
            return age


def _barriers(rng: random.Random, benefit: str) -> list[str]:
    primary = rng.choices(BARRIER_IDS, weights=PRIMARY_BARRIER_WEIGHTS[benefit])[0]
    if primary == "none":
        return ["none"]
    lam = EXTRA_BARRIERS_MEAN[benefit]
    # Poisson by inversion, capped.
    extra, p, u = 0, math.exp(-lam), rng.random()
    cumulative = p
    while u > cumulative and extra < MAX_EXTRA_BARRIERS:
        extra += 1
        p *= lam / extra
        cumulative += p
    chosen = [primary]
    candidates = [b for b in BARRIER_IDS if b not in ("none", primary)]
    for _ in range(extra):
        weights = [max(AFFINITY_WEIGHT if frozenset((b, c)) in BARRIER_AFFINITY else 1.0 for c in chosen)
                   for b in candidates]
        pick = rng.choices(candidates, weights=weights)[0]
        candidates.remove(pick)
        chosen.append(pick)
    # The primary first, the others in vocabulary order: the order the importer stores.
    return [primary, *sorted(chosen[1:], key=BARRIER_IDS.index)]


def synthesise(n: int, seed: int | str, *, with_cpr: bool = False, as_of: dt.date = DEFAULT_AS_OF
               ) -> list[dict[str, Any]]:
    """A synthetic pool of `n` cases; the same (n, seed, with_cpr, as_of) give the same rows.

    Each row has `case_id` (or `cpr`), and primary_barrier, barriers (a list, primary first),
    months_unemployed, benefit_type, caseworker, team, as_of, age, sex ("F"/"M") and risk
    ("low"/"moderate"/"high").
    """
    if n < 0:
        raise InputError([Problem("--n", "must be 0 or more")])
    if not 2005 <= as_of.year <= 2050:
        raise InputError([Problem("--as-of", "synthetic pools are dated between 2005 and 2050")])
    rng = random.Random(f"trials-synth:{seed}")
    staff = _caseworkers(rng, n)
    pickers = {team: ([c for c, _ in people], list(itertools.accumulate(w for _, w in people)))
               for team, people in staff.items()}
    moments = {b: _barrier_count_moments(b) for b in BENEFIT_SHARES}
    benefits = list(BENEFIT_SHARES)
    shares = list(itertools.accumulate(BENEFIT_SHARES.values()))
    used: set[str] = set()
    rows: list[dict[str, Any]] = []
    for index in range(n):
        benefit = rng.choices(benefits, cum_weights=shares)[0]
        barriers = _barriers(rng, benefit)
        k = 0 if barriers == ["none"] else len(barriers)
        mean_k, var_k = moments[benefit]
        median, sigma = MONTHS_LOGNORMAL[benefit]
        within = math.sqrt(max(sigma**2 - (LOG_MONTHS_PER_BARRIER**2) * var_k, 0.01))
        age = _age(rng, benefit)
        log_months = math.log(median) + LOG_MONTHS_PER_BARRIER * (k - mean_k) + rng.gauss(0, within)
        months = min(math.exp(log_months), (age - MIN_WORKING_AGE) * 12.0)
        female = rng.random() < FEMALE_SHARE[benefit]
        team = TEAMS[benefit]
        caseworker = rng.choices(pickers[team][0], cum_weights=pickers[team][1])[0]
        score = 0.9 * (math.log(max(months, 0.1)) - math.log(median)) + 0.5 * (k - mean_k) + rng.gauss(0, 0.6)
        risk = "low" if score < RISK_CUTS[0] else "moderate" if score < RISK_CUTS[1] else "high"
        row: dict[str, Any] = {}
        if with_cpr:
            birth = as_of - dt.timedelta(days=int(365.25 * age) + rng.randrange(365))
            row["cpr"] = _fake_cpr(rng, birth, female, used)
        else:
            row["case_id"] = f"SAG-{index + 1:06d}"
        row.update({
            "primary_barrier": barriers[0],
            "barriers": barriers,
            "months_unemployed": round(months, 1),
            "benefit_type": benefit,
            "caseworker": caseworker,
            "team": team,
            "as_of": as_of,
            "age": age,
            "sex": "F" if female else "M",
            "risk": risk,
        })
        rows.append(row)
    return rows


def _cell(value: Any, decimal_comma: bool) -> Any:
    if isinstance(value, list):
        return neutralise_formula("|".join(value))
    if isinstance(value, float):
        text = f"{value:.1f}"
        return text.replace(".", ",") if decimal_comma else text
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        return neutralise_formula(value)
    return value


def write_cohort(rows: Sequence[dict[str, Any]], path: Path, *, plain: bool = False) -> None:
    """Write a synthetic pool as a case file `trials cases import` reads.

    `.xlsx` writes a workbook; anything else CSV the way Danish offices export it (UTF-8 with
    BOM, `;`, decimal comma) or, with `plain`, UTF-8 with `,` and decimal points.
    """
    id_column = "cpr" if rows and "cpr" in rows[0] else "case_id"
    header = [id_column, *COLUMNS]
    if path.suffix.lower() == ".xlsx":
        from openpyxl import Workbook

        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet("cases")
        sheet.append(header)
        for row in rows:
            sheet.append([_cell(row[name], False) if not isinstance(row[name], (int, float)) else row[name]
                          for name in header])
        workbook.save(path)
        return
    with path.open("w", encoding="utf-8-sig" if not plain else "utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="," if plain else ";", lineterminator="\r\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow([_cell(row[name], not plain) for name in header])
