"""CLI conventions that hold for every command."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cli import main
from trials.cli.docs import iter_commands, render

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("lifelines", "statsmodels", "sklearn", "pandas", "matplotlib", "scipy")


def test_every_command_has_help_text() -> None:
    missing = [" ".join(path) for path, command in iter_commands(main, ["trials"]) if not (command.help or "").strip()]
    assert missing == []


def test_help_imports_no_heavy_library() -> None:
    """`trials --help` must stay fast: run it in a fresh interpreter and inspect sys.modules."""
    code = (
        "import sys\n"
        "from cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_docs_cli_reference_is_current() -> None:
    """docs/cli.md is generated from --help (`make docs`); regenerate it when this fails."""
    assert (ROOT / "docs" / "cli.md").read_text() == render(main)


def test_init_creates_database_and_private_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(main, ["init"], env={"TRIALS_DATABASE_URL": "", "TRIALS_KEY_FILE": ""})
    assert result.exit_code == 0, result.output
    key = tmp_path / "trials.key"
    assert (tmp_path / "trials.db").exists()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    before = key.read_text()
    again = runner.invoke(main, ["init"], env={"TRIALS_DATABASE_URL": "", "TRIALS_KEY_FILE": ""})
    assert again.exit_code == 0 and key.read_text() == before  # a key is never overwritten


def test_key_is_never_stored_in_the_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    CliRunner().invoke(main, ["init"], env={"TRIALS_DATABASE_URL": "", "TRIALS_KEY_FILE": ""})
    key = (tmp_path / "trials.key").read_text().strip()
    assert key.encode() not in (tmp_path / "trials.db").read_bytes()


def test_commands_refuse_a_database_that_is_not_at_head(tmp_path: Path) -> None:
    runner = CliRunner()
    url = f"sqlite:///{tmp_path / 'missing.db'}"
    result = runner.invoke(main, ["--db", url, "protocol", "list"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [f"error: {url} is not a trials database: run `trials init` first"]


def test_db_option_works_on_the_command_and_environment(tmp_path: Path, empty_db_url: str) -> None:
    runner = CliRunner()
    key = tmp_path / "k.key"
    assert runner.invoke(main, ["init", "--db", empty_db_url, "--key-file", str(key)]).exit_code == 0
    via_option = runner.invoke(main, ["protocol", "list", "--json", "--db", empty_db_url])
    via_env = runner.invoke(main, ["protocol", "list", "--json"], env={"TRIALS_DATABASE_URL": empty_db_url})
    assert via_option.exit_code == via_env.exit_code == 0
    assert json.loads(via_option.stdout) == json.loads(via_env.stdout) == []
    current = runner.invoke(main, ["db", "current", "--db", empty_db_url])
    assert "up to date" in current.stdout


def test_usage_errors_exit_2_without_traceback() -> None:
    result = CliRunner().invoke(main, ["protocol", "validate"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


@pytest.mark.parametrize("path", [p for p, c in iter_commands(main, ["trials"]) if not isinstance(c, click.Group)])
def test_every_command_answers_help(path: list[str]) -> None:
    result = CliRunner().invoke(main, [*path[1:], "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.stdout
