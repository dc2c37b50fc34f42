"""Protocols: validation lists every problem by key; the registry keeps exact texts."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from sqlalchemy import select

from trials import db
from trials.audit import sha256_hex
from trials.errors import InputError, Refused
from trials.models import Assignment, AuditEvent, ProtocolVersion, Trial, utcnow
from trials.protocol import parse_protocol, register, shipped_protocols

MINIMAL = """
id = "minimal-trial"
title = "A minimal trial"
hypothesis = "Something works."
unit = "case"

[arms]
control = 1
treatment = 1

[stratification]
method = "permuted_blocks"
factors = ["primary_barrier"]
block_sizes = [2, 4]

[outcome]
event_exits = ["ordinary_job"]
consecutive_weeks = 4
"""


def test_minimal_protocol_gets_documented_defaults() -> None:
    protocol = parse_protocol(MINIMAL)
    assert protocol.control_arm == "control"
    assert protocol.treatment_arms == ["treatment"]
    assert protocol.outcome.horizons_weeks == (52, 104)
    assert protocol.stratification.minimization_probability == 0.8
    assert protocol.sha256 == sha256_hex(MINIMAL)


@pytest.mark.parametrize(
    ("edit", "key", "message"),
    [
        (("id = \"minimal-trial\"", "id = \"Bad Id\""), "id", "slug"),
        (("unit = \"case\"", "unit = \"office\""), "unit", "one of case, caseworker, team"),
        (("method = \"permuted_blocks\"", "method = \"coin\""), "stratification.method", "one of"),
        (("block_sizes = [2, 4]", "block_sizes = [3]"), "stratification.block_sizes", "not a multiple"),
        (("event_exits = [\"ordinary_job\"]", "event_exits = [\"lottery\"]"), "outcome.event_exits", "unknown exit kind"),
        (("consecutive_weeks = 4", "consecutive_weeks = 0"), "outcome.consecutive_weeks", "at least 1"),
        (("treatment = 1", "treatment = 0"), "arms.treatment", "weight"),
        (("factors = [\"primary_barrier\"]", "factors = [\"shoe_size\"]"), "stratification.factors", "unknown factor"),
        (("unit = \"case\"", "unit = \"case\"\ncolour = \"blue\""), "colour", "unknown key"),
    ],
)
def test_each_problem_is_named_by_its_key(edit: tuple[str, str], key: str, message: str) -> None:
    with pytest.raises(InputError) as raised:
        parse_protocol(MINIMAL.replace(*edit), "p.toml")
    lines = raised.value.lines()
    assert any(f"key {key}:" in line and message in line for line in lines), lines
    assert all(line.startswith("p.toml") for line in lines)


def test_all_problems_are_reported_at_once() -> None:
    broken = MINIMAL.replace('unit = "case"', 'unit = "office"').replace("consecutive_weeks = 4", "")
    with pytest.raises(InputError) as raised:
        parse_protocol(broken, "p.toml")
    assert len(raised.value.problems) == 2


def test_invalid_toml_is_an_input_error() -> None:
    with pytest.raises(InputError, match="not valid TOML"):
        parse_protocol("id = ", "p.toml")


def test_every_shipped_protocol_is_valid_and_documented() -> None:
    docs = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()
    files = shipped_protocols()
    assert len(files) >= 6
    units = set()
    for path in files:
        protocol = parse_protocol(path.read_text(), path.name)
        units.add(protocol.unit)
        assert protocol.hypothesis.strip()
        for key in tomllib.loads(path.read_text()):
            assert f"`{key}`" in docs, f"{key} of {path.name} is not documented in docs/protocol.md"
    assert units == {"case", "caseworker", "team"}


def test_register_is_idempotent_and_refuses_changed_content(engine) -> None:  # type: ignore[no-untyped-def]
    protocol = parse_protocol(MINIMAL)
    with db.write_session(engine) as session:
        first = register(session, protocol)
        again = register(session, protocol)
    assert first.created and not again.created
    changed = parse_protocol(MINIMAL.replace("Something works.", "Something else works."))
    with db.write_session(engine) as session, pytest.raises(Refused, match="amend"):
        register(session, changed)
    with db.read_session(engine) as session:
        trial = session.get(Trial, "minimal-trial")
        assert trial is not None and trial.seed_source == "drawn" and len(trial.seed) == 64
        assert trial.seed_commitment == sha256_hex(trial.seed)
        events = session.scalars(select(AuditEvent.action)).all()
        assert events == ["protocol_registered"]
        event = session.scalars(select(AuditEvent)).one()
        assert trial.seed not in event.payload


def test_cli_register_list_show_amend(trials_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "minimal.toml"
    path.write_text(MINIMAL)
    registered = trials_cli.ok("protocol", "register", path)
    assert "seed commitment" in registered.stdout
    listed = json.loads(trials_cli.ok("protocol", "list", "--json").stdout)
    assert [row["id"] for row in listed] == ["minimal-trial"]
    assert "seed" not in listed[0]

    path.write_text(MINIMAL.replace("Something works.", "Something clearer works."))
    assert trials_cli("protocol", "register", path).exit_code == 2
    trials_cli.ok("protocol", "amend", path, "--reason", "clarified the hypothesis")
    shown = json.loads(trials_cli.ok("protocol", "show", "minimal-trial", "--json").stdout)
    assert [v["version"] for v in shown["versions"]] == [1, 2]
    assert shown["versions"][1]["reason"] == "clarified the hypothesis"
    assert shown["seed"] is None  # concealed while the trial is open


def test_amend_refuses_randomization_changes_after_assignment(engine) -> None:  # type: ignore[no-untyped-def]
    from trials.protocol import amend

    with db.write_session(engine) as session:
        register(session, parse_protocol(MINIMAL))
        session.add(Assignment(
            trial_id="minimal-trial", protocol_version=1, unit="caseworker", unit_key="cw-1", sequence=1,
            stratum="{}", stratum_label="(all)", stratum_sequence=1, arm="control", method="permuted_blocks",
            algorithm="test", probabilities={"control": 0.5, "treatment": 0.5}, enrolled_on=utcnow().date(),
            assigned_at=utcnow(),
        ))
    with db.write_session(engine) as session, pytest.raises(Refused, match="arms"):
        amend(session, parse_protocol(MINIMAL.replace("treatment = 1", "treatment = 1\nother = 2").replace("[2, 4]", "[4, 8]")), "arm")
    with db.write_session(engine) as session:
        result = amend(session, parse_protocol(MINIMAL.replace("Something works.", "It works.")), "wording")
    assert result.version == 2
    with db.read_session(engine) as session:
        assert session.scalars(select(ProtocolVersion.version).order_by(ProtocolVersion.version)).all() == [1, 2]


def test_protocol_validate_exit_codes(trials_cli, tmp_path: Path, protocols_dir: Path) -> None:  # type: ignore[no-untyped-def]
    trials_cli.ok("protocol", "validate", protocols_dir / "street-walker.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text(MINIMAL.replace('unit = "case"', 'unit = "office"'))
    result = trials_cli("protocol", "validate", bad)
    assert result.exit_code == 2
    assert "key unit" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
