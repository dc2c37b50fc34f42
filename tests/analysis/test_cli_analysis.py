"""`trials analyze` and `trials power` through click's CliRunner; `trials --help` stays light."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pandas as pd
from click.testing import CliRunner

from cli import main
from trials.analysis.engine import contract_schema


def _write(frame: pd.DataFrame, tmp_path: Path) -> Path:
    path = tmp_path / "trial.csv"
    frame.to_csv(path, index=False)
    return path


def test_analyze_json_matches_contract(trial: pd.DataFrame, tmp_path: Path) -> None:
    path = _write(trial, tmp_path)
    result = CliRunner().invoke(main, ["analyze", str(path), "--time", "weeks", "--event", "event", "--arm", "arm",
                                       "--strata", "stratum", "--adjust", "x", "--competing", "exit",
                                       "--horizon", "52", "--horizon", "104", "--replicates", "50",
                                       "--weekly-cost", "3000", "--intervention-cost", "2000", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    jsonschema.validate(out, contract_schema())
    assert list(out["horizons"]) == ["52", "104"]
    assert out["provenance"]["source"] == str(path) and out["business_case"]["weekly_cost_dkk"] == 3000


def test_analyze_text_summary(trial: pd.DataFrame, tmp_path: Path) -> None:
    path = _write(trial, tmp_path)
    result = CliRunner().invoke(main, ["analyze", str(path), "--time", "weeks", "--event", "event", "--arm", "arm",
                                       "--control", "0", "--horizon", "52", "--replicates", "0"])
    assert result.exit_code == 0, result.output
    assert "horizon 52" in result.stdout and "Cox HR 1 vs 0" in result.stdout


def test_analyze_bad_file_exits_2_one_line_per_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("weeks,event,arm\nx,1,0\n5,7,1\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["analyze", str(path), "--time", "weeks", "--event", "event", "--arm", "arm"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [f"error: {path}, row 2, column weeks: 'x' is not a time >= 0 (time to event or censoring)",
                     f"error: {path}, row 3, column event: '7' is not 1 (event) or 0 (censored)"]


def test_power_solves_and_simulates(tmp_path: Path) -> None:
    pool = tmp_path / "pool.csv"
    pool.write_text("primary_barrier,months_band\nphysical,0-6\nsocial,6-12\nsocial,0-6\n", encoding="utf-8")
    runner = CliRunner()
    r = runner.invoke(main, ["power", "--n", "400", "--hr", "1.5", "--baseline-median-weeks", "60",
                             "--follow-up-weeks", "104", "--strata-from", str(pool), "--sims", "40", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert 0 < out["power"] < 1 and out["simulation"]["strata"] == 3
    r = runner.invoke(main, ["power", "--solve", "n", "--hr", "1.3", "--baseline-median-weeks", "60",
                             "--follow-up-weeks", "104", "--ratio", "1:2", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["n"] > 0
    r = runner.invoke(main, ["power", "--solve", "hr", "--n", "2000", "--baseline-median-weeks", "60",
                             "--follow-up-weeks", "104"])
    assert r.exit_code == 0 and "hazard ratio 1.1" in r.stdout


def test_power_usage_errors_exit_2() -> None:
    runner = CliRunner()
    r = runner.invoke(main, ["power", "--hr", "1.3", "--baseline-median-weeks", "60", "--follow-up-weeks", "104"])
    assert r.exit_code == 2 and "--solve power needs --n" in r.output
    r = runner.invoke(main, ["power", "--n", "10", "--hr", "1", "--baseline-median-weeks", "60",
                             "--follow-up-weeks", "104"])
    assert r.exit_code == 2 and "no effect" in r.output
    r = runner.invoke(main, ["power", "--n", "10", "--hr", "1.2", "--ratio", "x", "--baseline-median-weeks", "60",
                             "--follow-up-weeks", "104"])
    assert r.exit_code == 2


def test_help_imports_nothing_heavy() -> None:
    """`trials analyze --help` must not import the statistics stack."""
    code = ("import sys; from click.testing import CliRunner; from cli import main; "
            "CliRunner().invoke(main, ['analyze', '--help']); CliRunner().invoke(main, ['power', '--help']); "
            "heavy = [m for m in ('pandas', 'numpy', 'scipy', 'lifelines', 'statsmodels', 'sklearn', 'matplotlib') "
            "if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == ""


def test_power_with_protocol_uses_registered_procedure(tmp_path: Path) -> None:
    pool = tmp_path / "pool.csv"
    pool.write_text("primary_barrier,months_unemployed,benefit_type\nphysical,3,cash_assistance\n"
                    "social,14,sickness_benefit\n", encoding="utf-8")
    protocols = Path(__file__).resolve().parents[2] / "protocols"
    runner = CliRunner()
    r = runner.invoke(main, ["power", "--n", "200", "--hr", "1.5", "--baseline-median-weeks", "60",
                             "--follow-up-weeks", "104", "--protocol", str(protocols / "one-caseworker.toml"),
                             "--strata-from", str(pool), "--sims", "10", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["simulation"]["allocation"] == "registered procedure of one-caseworker (minimization)"
    r = runner.invoke(main, ["power", "--n", "200", "--hr", "1.5", "--baseline-median-weeks", "60",
                             "--follow-up-weeks", "104", "--protocol", str(protocols / "conversation-training.toml"),
                             "--sims", "10"])
    assert r.exit_code == 2 and "clusters" in r.stderr
