"""Synthetic pools: reproducible, calibrated to the source figures (docs/synthetic.md),
correlated as assumed, and with fake CPR numbers that can never be a fixture's or a person's."""

from __future__ import annotations

import datetime as dt
import re
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from trials.cases.importer import read_case_file
from trials.errors import InputError
from trials.pseudonym import cpr_birth_date, parse_cpr
from trials.synth import (
    BENEFIT_SHARES,
    TEAMS,
    is_synthetic_cpr,
    mod11_ok,
    synthesise,
    write_cohort,
)

WEEKS_PER_MONTH = 52 / 12


@pytest.fixture(scope="module")
def big() -> list[dict[str, Any]]:
    return synthesise(20_000, "calibration")


def test_same_seed_same_pool_other_seed_other_pool() -> None:
    assert synthesise(300, 7) == synthesise(300, 7)
    assert synthesise(300, "7") == synthesise(300, 7)  # the seed is used as text
    assert synthesise(300, 7) != synthesise(300, 8)
    assert synthesise(0, 1) == []
    assert len(synthesise(17, 1)) == 17


def test_hedensted_job_clarification_durations(big: list[dict[str, Any]]) -> None:
    """Hedensted 2019: 127 of 218 job-clarification courses (58.3 %) over 52 weeks; a third over
    two years. Tolerance 5 points (about 2000 synthetic courses: standard error ~1.1 points)."""
    months = [r["months_unemployed"] for r in big if r["benefit_type"] == "job_clarification"]
    assert abs(sum(m > 12 for m in months) / len(months) - 127 / 218) < 0.05
    assert abs(sum(m > 24 for m in months) / len(months) - 1 / 3) < 0.05


def test_hjorring_mean_weeks_on_support(big: list[dict[str, Any]]) -> None:
    """Hjørring 2016: a (weighted) mean of 121 weeks on public support; within 8 %."""
    mean_weeks = statistics.mean(r["months_unemployed"] for r in big) * WEEKS_PER_MONTH
    assert abs(mean_weeks - 121) / 121 < 0.08


def test_heavy_right_tail(big: list[dict[str, Any]]) -> None:
    months = sorted(r["months_unemployed"] for r in big)
    median, mean = statistics.median(months), statistics.mean(months)
    assert mean > 1.5 * median  # long courses pull the mean far above the median
    assert months[int(0.99 * len(months))] > 8 * median


def test_benefit_shares(big: list[dict[str, Any]]) -> None:
    counts = Counter(r["benefit_type"] for r in big)
    for benefit, share in BENEFIT_SHARES.items():
        assert abs(counts[benefit] / len(big) - share) < 0.015, benefit


def test_longer_courses_with_more_barriers(big: list[dict[str, Any]]) -> None:
    by_count: dict[int, list[float]] = {}
    for r in big:
        if r["barriers"] != ["none"]:
            by_count.setdefault(len(r["barriers"]), []).append(r["months_unemployed"])
    medians = [statistics.median(by_count[k]) for k in (1, 2, 3, 4)]
    assert medians == sorted(medians) and medians[3] > 2 * medians[0]


def test_barriers_are_well_formed(big: list[dict[str, Any]]) -> None:
    for r in big:
        barriers = r["barriers"]
        assert barriers[0] == r["primary_barrier"]
        assert len(set(barriers)) == len(barriers) <= 5
        assert barriers == ["none"] or "none" not in barriers
    assert {r["primary_barrier"] for r in big} == {"physical", "mild_mental", "mental_illness", "cognitive",
                                                   "social", "substance", "lifestyle", "diffuse", "none"}
    sick = Counter(r["primary_barrier"] for r in big if r["benefit_type"] == "sickness_benefit")
    assert sick.most_common(1)[0][0] == "physical" and sick["none"] == 0  # sick leave is always for a reason


def test_ages_months_and_risk_are_plausible(big: list[dict[str, Any]]) -> None:
    for r in big:
        assert 18 <= r["age"] <= 67
        assert 0 <= r["months_unemployed"] <= min(600, (r["age"] - 16) * 12)
        if r["benefit_type"] == "education_assistance":
            assert r["age"] < 30
        assert r["sex"] in ("F", "M") and r["risk"] in ("low", "moderate", "high")
    by_risk = {risk: statistics.median(r["months_unemployed"] for r in big if r["risk"] == risk)
               for risk in ("low", "moderate", "high")}
    assert by_risk["low"] < by_risk["moderate"] < by_risk["high"]
    sick_women = statistics.mean(r["sex"] == "F" for r in big if r["benefit_type"] == "sickness_benefit")
    assert 0.57 < sick_women < 0.67


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_caseworkers_and_teams(seed: int) -> None:
    rows = synthesise(2000, seed)
    caseworkers = {r["caseworker"] for r in rows}
    assert 20 <= len(caseworkers) <= 40
    team_of: dict[str, set[str]] = {}
    for r in rows:
        assert r["team"] == TEAMS[r["benefit_type"]]
        team_of.setdefault(r["caseworker"], set()).add(r["team"])
    assert all(len(teams) == 1 for teams in team_of.values())
    loads = Counter(r["caseworker"] for r in rows)
    assert max(loads.values()) > 2 * min(loads.values())  # caseloads differ


def test_fake_cprs_are_valid_looking_unique_and_synthetic() -> None:
    as_of = dt.date(2026, 1, 1)
    rows = synthesise(3000, "cpr", with_cpr=True, as_of=as_of)
    cprs = [r["cpr"] for r in rows]
    assert len(set(cprs)) == len(cprs)
    for row, cpr in zip(rows, cprs, strict=True):
        assert "case_id" not in row
        assert re.fullmatch(r"\d{6}-9\d{3}", cpr)
        digits = parse_cpr(cpr)
        assert digits is not None
        assert not mod11_ok(digits) and is_synthetic_cpr(cpr) and is_synthetic_cpr(digits)
        born = cpr_birth_date(digits)
        assert row["age"] in (as_of.year - born.year - 1, as_of.year - born.year, as_of.year - born.year + 1)
        assert int(digits[-1]) % 2 == (0 if row["sex"] == "F" else 1)


def test_no_fixture_cpr_in_the_test_suite_is_a_synthetic_one() -> None:
    """The guarantee in docs/synthetic.md: fixtures use serials below 9000 or pass modulus 11,
    so a synthetic number can never equal one a test expects."""
    found = []
    for path in Path(__file__).resolve().parent.rglob("*.py"):
        for match in re.finditer(r"(?<!\d)(\d{6})-?(\d{4})(?!\d)", path.read_text(encoding="utf-8")):
            digits = match.group(1) + match.group(2)
            if parse_cpr(digits) is not None:
                found.append(digits)
    assert found, "expected some fixture CPR numbers in the tests"
    assert [d for d in found if is_synthetic_cpr(d)] == []


def test_is_synthetic_cpr_rejects_real_looking_numbers() -> None:
    assert not is_synthetic_cpr("010190-1234")
    assert not is_synthetic_cpr("0101909999"[:9])
    assert not is_synthetic_cpr("abcdefghij")
    valid_mod11 = next(f"010190{s}" for s in range(9000, 10000) if mod11_ok(f"010190{s}"))
    assert not is_synthetic_cpr(valid_mod11)


def test_as_of_must_allow_the_century_digit() -> None:
    with pytest.raises(InputError, match="between 2005 and 2050"):
        synthesise(10, 1, as_of=dt.date(1990, 1, 1))
    with pytest.raises(InputError, match="must be 0 or more"):
        synthesise(-1, 1)


@pytest.mark.parametrize(("name", "plain"), [("pool.csv", False), ("pool.csv", True), ("pool.xlsx", False)])
@pytest.mark.parametrize("with_cpr", [False, True])
def test_written_files_import_to_the_generated_rows(tmp_path: Path, name: str, plain: bool, with_cpr: bool) -> None:
    rows = synthesise(120, "write", with_cpr=with_cpr)
    path = tmp_path / name
    write_cohort(rows, path, plain=plain)
    data = path.read_bytes()
    if name.endswith(".csv"):
        assert data.startswith(b"\xef\xbb\xbf") != plain
        assert (b";" in data.splitlines()[0]) != plain
    case_file = read_case_file(path, b"w" * 32)
    assert case_file.id_column == ("cpr" if with_cpr else "case_id")
    assert case_file.covariate_names == ("age", "sex", "risk")
    for row, record in zip(rows, case_file.records, strict=True):
        assert (record.primary_barrier, record.barriers, record.months_unemployed, record.benefit_type) == (
            row["primary_barrier"], row["barriers"], row["months_unemployed"], row["benefit_type"])
        assert (record.caseworker, record.team, record.as_of) == (row["caseworker"], row["team"], row["as_of"])
        assert record.covariates == {"age": row["age"], "sex": row["sex"], "risk": row["risk"]}


def test_synth_command(trials_cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "demo.csv"
    result = trials_cli.ok("cases", "synth", "--n", "50", "--seed", "S", "-o", path, "--with-cpr", "--plain",
                           "--as-of", "2025-06-30")
    assert result.stdout == f"wrote 50 synthetic cases to {path} (seed S)\n"
    text = path.read_text()
    assert text.startswith("cpr,primary_barrier,") and "2025-06-30" in text
    assert trials_cli("cases", "synth", "--seed", "S").exit_code == 2  # -o is required
