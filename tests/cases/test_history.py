"""The categorisation a case had at any revision stays readable after later imports."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from tests.cases.helpers import csv_text
from trials import db
from trials.cases.history import case_history, categorisation_at
from trials.cases.importer import import_cases
from trials.errors import NotFound
from trials.models import Case

HEADER = ["case_id", "primary_barrier", "barriers", "months_unemployed", "benefit_type", "as_of", "alder"]


def test_every_revision_is_kept(engine: Engine, write: Callable[..., Path], key: bytes) -> None:
    files = [
        [["H1", "physical", "", "3", "sickness_benefit", "2025-01-31", "50"]],
        [["H1", "physical", "", "3", "sickness_benefit", "2025-01-31", "50"]],  # unchanged: no revision
        [["H1", "mild_mental", "physical", "5", "job_clarification", "2025-03-31", "50"]],
    ]
    for index, rows in enumerate(files):
        with db.write_session(engine) as session:
            import_cases(session, write(f"h{index}.csv", csv_text(HEADER, rows)), key)
    with db.read_session(engine) as session:
        history = case_history(session, "H1")
        case_id = session.scalar(select(Case.id).where(Case.case_key == "H1"))
        assert case_id is not None
        first = categorisation_at(session, case_id, 1)
        with pytest.raises(NotFound, match="no revision 3"):
            categorisation_at(session, case_id, 3)
        with pytest.raises(NotFound, match="no case 'nobody'"):
            case_history(session, "nobody")
    assert [h["revision"] for h in history] == [1, 2]
    assert first == history[0]
    assert (first["primary_barrier"], first["benefit_type"], first["months_unemployed"], first["as_of"]) == (
        "physical", "sickness_benefit", 3.0, dt.date(2025, 1, 31))
    assert history[1]["barriers"] == ["mild_mental", "physical"]
    assert history[1]["covariates"] == {"alder": 50}
    assert history[0]["source_sha256"] != history[1]["source_sha256"]
