"""Balance: SRM chi-square, standardized mean differences, per-stratum imbalance, `trials balance`."""

from __future__ import annotations

import json
import math
import statistics
import warnings

import pytest
from sqlalchemy.engine import Engine
from test_assign import protocol_text, setup_trial

from trials import assign, balance, db


def test_srm_matches_scipy_and_warns_below_0001() -> None:
    """Reference: scipy.stats.chisquare([100, 160], [130, 130]) gives chi2 = 13.846, p = 0.000199."""
    from scipy import stats

    result = balance.srm_test({"control": 100, "treatment": 160}, {"control": 1, "treatment": 1})
    reference = stats.chisquare([100, 160], [130, 130])
    assert result["chi2"] == pytest.approx(reference.statistic) == pytest.approx(13.846, abs=1e-3)
    assert result["p"] == pytest.approx(reference.pvalue)
    assert result["warning"] is not None and "sample ratio mismatch" in result["warning"]
    fine = balance.srm_test({"control": 98, "treatment": 202}, {"control": 1, "treatment": 2})
    assert fine["p"] > 0.5 and fine["warning"] is None
    assert fine["expected"] == {"control": 100.0, "treatment": 200.0}


def test_smd_against_the_textbook_formula() -> None:
    """(mean_t - mean_c) / sqrt((s_t^2 + s_c^2) / 2) with sample variances, computed with `statistics`."""
    treated, control = [1.0, 2.0, 3.0, 4.0], [2.0, 2.5, 5.0, 6.0, 7.5]
    expected = (statistics.mean(treated) - statistics.mean(control)) / math.sqrt(
        (statistics.variance(treated) + statistics.variance(control)) / 2)
    assert balance.smd(treated, control) == pytest.approx(expected)
    assert balance.smd([1.0], control) is None


def test_covariate_smds_cover_numeric_and_categorical() -> None:
    rows = [{"arm": "control", "months_unemployed": 3, "primary_barrier": "social", "covariates": {"age": 30, "sex": "f"}},
            {"arm": "control", "months_unemployed": 5, "primary_barrier": "social", "covariates": {"age": 40, "sex": "m"}},
            {"arm": "treatment", "months_unemployed": 4, "primary_barrier": "physical",
             "covariates": {"age": 50, "sex": "f"}},
            {"arm": "treatment", "months_unemployed": 6, "primary_barrier": "social", "covariates": {"age": 60, "sex": "f"}}]
    smds = balance.covariate_smds(rows, ["control", "treatment"], "control")
    assert smds["age"]["treatment"] == pytest.approx(20 / math.sqrt(50))
    assert set(smds) == {"age", "months_unemployed", "primary_barrier=physical", "primary_barrier=social",
                         "sex=f", "sex=m"}


def test_imbalance_is_weighted() -> None:
    assert assign.imbalance({"control": 3, "treatment": 5}, {"control": 1, "treatment": 1}) == 2
    assert assign.imbalance({"control": 3, "treatment": 6}, {"control": 1, "treatment": 2}) == 0


def test_balance_of_a_trial_and_the_command(engine: Engine, trials_cli: object, db_url: str) -> None:
    trial = setup_trial(engine, protocol_text(factors=["primary_barrier"], block_sizes=[2]), 41)
    with db.write_session(engine) as session:
        assign.assign_all(session, trial)
    with db.read_session(engine) as session, warnings.catch_warnings():
        warnings.simplefilter("error")
        result = balance.balance(session, trial)
    assert sum(result["units"].values()) == 41
    assert result["max_imbalance"] <= 1  # blocks of 2: at most one open block per stratum
    assert all(s["imbalance"] <= 1 for s in result["strata"])
    assert result["srm"]["p"] > 0.001 and result["warnings"] == []
    assert "age" in result["smd"]
    cli = trials_cli
    shown = json.loads(cli.ok("balance", trial, "--json").stdout)  # type: ignore[attr-defined]
    assert shown["strata"] == result["strata"]
    text_out = cli.ok("balance", trial).stdout  # type: ignore[attr-defined]
    assert "largest within-stratum imbalance" in text_out and "sample ratio" in text_out


def test_a_sample_ratio_mismatch_warns_by_name_and_in_the_result(engine: Engine, trials_cli: object) -> None:
    """40 units all in one arm (inserted by hand, as a broken import would) under 1:1 weights."""
    from trials.models import Assignment, utcnow

    trial = setup_trial(engine, protocol_text(factors=[]))
    with db.write_session(engine) as session:
        session.add_all([Assignment(
            trial_id=trial, protocol_version=1, unit="case", unit_key=f"U{i}", case_id=None, sequence=i + 1,
            stratum="{}", stratum_label="(all)", stratum_sequence=i + 1, arm="treatment", method="permuted_blocks",
            algorithm=assign.ALGORITHM, block=None, block_size=None, probabilities={"control": 0.5, "treatment": 0.5},
            enrolled_on=utcnow().date(), assigned_at=utcnow()) for i in range(40)])
    with db.read_session(engine) as session, pytest.warns(balance.SampleRatioMismatch, match="sample ratio"):
        result = balance.balance(session, trial)
    assert result["srm"]["p"] < 0.001 and result["warnings"] == [result["srm"]["warning"]]
    shown = trials_cli("balance", trial)  # type: ignore[operator]
    assert shown.exit_code == 0 and "WARNING: sample ratio mismatch" in shown.stderr
