"""Enrolled cases for the outcome tests, built directly through the ORM.

`enroll` stands in for the assignment engine (trials/assign.py): it registers a protocol and
writes Case, Assignment and Enrollment rows the way an enrollment would. When the engine is
ready this helper can call it instead; the tests only use `enroll(...)`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from trials import db
from trials.models import Assignment, Case, Enrollment, utcnow
from trials.protocol import parse_protocol, register
from trials.pseudonym import load_key, parse_cpr, pseudonymise

PROTOCOL = """
id = "outcome-test"
title = "Outcome test trial"
hypothesis = "Testing outcomes."
unit = "case"
seed = "fixed-seed"

[arms]
control = 1
treatment = 1

[stratification]
method = "permuted_blocks"
factors = ["months_band"]
months_bands = [0, 6]
block_sizes = [2]

[outcome]
event_exits = ["ordinary_job", "education"]
competing_exits = ["flexjob", "disability_pension"]
consecutive_weeks = 4
horizons_weeks = [52, 104]
"""
TRIAL = "outcome-test"


@dataclass(frozen=True)
class Person:
    """One case to enroll: `ident` is a case id, or a CPR number when `cpr` is true."""

    ident: str
    enrolled_on: dt.date
    arm: str = "control"
    benefit_type: str = "sickness_benefit"
    cpr: bool = False
    team: str | None = None


Enroll = Callable[..., list[int]]


def enroll_people(engine: Engine, people: Sequence[Person], key: bytes, protocol_text: str = PROTOCOL,
                  register_protocol: bool = True) -> list[int]:
    """Register the protocol (once) and enroll the people; returns their cases.id."""
    protocol = parse_protocol(protocol_text)
    ids = []
    with db.write_session(engine) as session:
        if register_protocol:
            register(session, protocol)
        now = utcnow()
        start = session.query(Enrollment).filter(Enrollment.trial_id == protocol.id).count()
        for offset, person in enumerate(people):
            sequence = start + offset + 1
            key_value = pseudonymise(parse_cpr(person.ident) or "", key) if person.cpr else person.ident
            months = 3.0 + offset % 5
            stratum = {"months_band": "0-6"}
            case = Case(
                case_key=key_value, id_kind="cpr" if person.cpr else "case_id", primary_barrier="physical",
                barriers=["physical"], months_unemployed=months, benefit_type=person.benefit_type,
                caseworker="cw1", team=person.team, as_of=person.enrolled_on, covariates={"age": 30 + offset},
                revision=1, created_at=now, updated_at=now,
            )
            session.add(case)
            session.flush()
            assignment = Assignment(
                trial_id=protocol.id, protocol_version=1, unit="case", unit_key=key_value, case_id=case.id,
                sequence=sequence, stratum='{"months_band":"0-6"}', stratum_label="months_band=0-6",
                stratum_sequence=sequence, arm=person.arm, method="permuted_blocks", algorithm="test",
                block=1, block_size=2, probabilities={"control": 0.5, "treatment": 0.5},
                enrolled_on=person.enrolled_on, assigned_at=now,
            )
            session.add(assignment)
            session.flush()
            session.add(Enrollment(
                trial_id=protocol.id, case_id=case.id, assignment_id=assignment.id, arm=person.arm,
                cluster=None, sequence=sequence, case_revision=1,
                frozen={"primary_barrier": "physical", "months_unemployed": months, "benefit_type": person.benefit_type,
                        "stratum": stratum, "covariates": {"age": 30 + offset}},
                enrolled_on=person.enrolled_on, enrolled_at=now,
            ))
            session.flush()
            ids.append(case.id)
    return ids


@pytest.fixture
def enroll(engine: Engine, key_file: Path) -> Enroll:
    """`enroll(people, protocol_text=PROTOCOL)` registers the protocol on first use and enrolls."""
    registered: set[str] = set()
    key = load_key(key_file)

    def run(people: Sequence[Person], protocol_text: str = PROTOCOL) -> list[int]:
        trial_id = parse_protocol(protocol_text).id
        ids = enroll_people(engine, people, key, protocol_text, register_protocol=trial_id not in registered)
        registered.add(trial_id)
        return ids

    return run


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]], delimiter: str = ",") -> Path:
    lines = [delimiter.join(header)] + [delimiter.join(str(c) for c in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
