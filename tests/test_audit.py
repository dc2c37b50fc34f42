"""The audit trail: `trials audit verify` on an intact log, and on logs tampered with by hand
(triggers dropped) - each tampering is detected with exit 1 and a message that names it - plus
head, log and bundles verified with no database.

Each tamper test works on a fresh database (`empty_db_url` migrated here), because on
PostgreSQL the shared test schema would keep the dropped triggers.
"""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DatabaseError
from test_assign import add_cases, protocol_text, setup_trial

from trials import assign, db
from trials.audit import head, record_event
from trials.models import APPEND_ONLY_TABLES
from trials.strata import case_stratum

TRIAL = "trial-a"


def run(url: str, *args: Any) -> Result:
    from cli import main

    return CliRunner().invoke(main, ["--db", url, *map(str, args)], catch_exceptions=False)


@pytest.fixture
def fresh(empty_db_url: str) -> Iterator[tuple[str, Engine]]:
    """A migrated database of its own, with a trial: 1 registration, 1 whole-cohort event, 3 enrollments."""
    engine = db.make_engine(empty_db_url)
    db.upgrade(engine)
    setup_trial(engine, protocol_text(TRIAL, seed=None), 20)  # a drawn seed, secret until closed
    with db.write_session(engine) as session:
        assign.assign_all(session, TRIAL, dt.date(2026, 1, 5))
        add_cases(session, 3, prefix="R", seed=9)
    for i in range(3):
        with db.write_session(engine) as session:
            assign.enroll(session, TRIAL, f"R{i:05d}", dt.date(2026, 1, 6 + i))
    yield empty_db_url, engine
    engine.dispose()


def drop_triggers(engine: Engine) -> None:
    with engine.begin() as connection:
        for table in APPEND_ONLY_TABLES:
            if connection.dialect.name == "postgresql":
                connection.execute(text(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}"))
            else:
                connection.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_update"))
                connection.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_delete"))


def tamper(engine: Engine, *statements: str) -> None:
    drop_triggers(engine)
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))


def assert_detected(url: str, *needles: str, expect_head: str | None = None) -> str:
    args = ["audit", "verify"] + (["--expect-head", expect_head] if expect_head else [])
    result = run(url, *args)
    assert result.exit_code == 1, result.stdout
    for needle in needles:
        assert needle in result.stdout, result.stdout
    return result.stdout


def test_intact_log_verifies(fresh: tuple[str, Engine]) -> None:
    url, _engine = fresh
    result = run(url, "audit", "verify")
    assert result.exit_code == 0, result.stdout
    assert result.stdout.strip().splitlines()[-1] == "OK: 5 events, 23 allocations verified"
    as_json = json.loads(run(url, "audit", "verify", TRIAL, "--json").stdout)
    assert as_json["ok"] and as_json["allocations"] == 23 and as_json["findings"] == []


def test_verify_of_an_unknown_trial_is_a_usage_error(fresh: tuple[str, Engine]) -> None:
    url, _engine = fresh
    result = run(url, "audit", "verify", "no-such-trial")
    assert result.exit_code == 2 and "no trial 'no-such-trial'" in result.stderr


def test_database_refuses_raw_update_and_delete_of_assignments(fresh: tuple[str, Engine]) -> None:
    _url, engine = fresh
    for statement in ("UPDATE assignment SET arm = 'treatment'", "DELETE FROM assignment",
                      "UPDATE audit_event SET actor = 'x'", "DELETE FROM audit_event"):
        with pytest.raises(DatabaseError, match="append-only"), engine.begin() as connection:
            connection.execute(text(statement))


def test_a_changed_arm_is_detected(fresh: tuple[str, Engine]) -> None:
    url, engine = fresh
    tamper(engine, "UPDATE assignment SET arm = CASE WHEN arm = 'control' THEN 'treatment' ELSE 'control' END "
                   "WHERE sequence = 3")
    out = assert_detected(url, "assignment trial-a #3", "stored arm")
    assert "audit event #2 says" in out


def test_edited_frozen_covariates_are_detected(fresh: tuple[str, Engine]) -> None:
    url, engine = fresh
    tamper(engine, """UPDATE enrollment SET frozen = '{"months_unemployed": 1}' WHERE sequence = 2""")
    assert_detected(url, "enrollment trial-a #2", "frozen_sha256")


def test_an_edited_withdrawal_reason_is_detected(fresh: tuple[str, Engine]) -> None:
    url, engine = fresh
    with db.write_session(engine) as session:
        assign.record_enrollment_event(session, TRIAL, "R00001", "withdrawn", "moved away", dt.date(2026, 3, 1))
    assert run(url, "audit", "verify").exit_code == 0
    tamper(engine, "UPDATE enrollment_event SET reason = 'declined'")
    assert_detected(url, "enrollment trial-a #22", "differ from those logged (events #6)")


def test_a_changed_block_size_is_detected(fresh: tuple[str, Engine]) -> None:
    url, engine = fresh
    tamper(engine, "UPDATE assignment SET block_size = 8 WHERE sequence = 5")
    assert_detected(url, "allocation trial-a #5", "stored block size 8, the registered procedure gives")


def test_a_deleted_event_is_detected(fresh: tuple[str, Engine]) -> None:
    url, engine = fresh
    tamper(engine, "DELETE FROM audit_event WHERE seq = 3")
    assert_detected(url, "event #3 missing", "event #4: its previous hash does not match")


def test_two_swapped_events_are_detected(fresh: tuple[str, Engine]) -> None:
    url, engine = fresh
    tamper(engine, "UPDATE audit_event SET seq = -4 WHERE seq = 4", "UPDATE audit_event SET seq = 4 WHERE seq = 3",
           "UPDATE audit_event SET seq = 3 WHERE seq = -4")
    assert_detected(url, "event #3: its previous hash does not match", "swapped")


def test_a_changed_seed_is_detected(fresh: tuple[str, Engine]) -> None:
    url, engine = fresh
    tamper(engine, f"UPDATE trial SET seed = 'another-seed' WHERE id = '{TRIAL}'")
    assert_detected(url, "the seed does not match its commitment", "(the seed was changed)")


def test_a_changed_seed_and_commitment_are_detected(fresh: tuple[str, Engine]) -> None:
    from trials.audit import sha256_hex

    url, engine = fresh
    tamper(engine, f"UPDATE trial SET seed = 'x', seed_commitment = '{sha256_hex('x')}' WHERE id = '{TRIAL}'")
    assert_detected(url, "stored seed commitment differs from the one logged in event #1")


def test_an_edited_protocol_text_is_detected(fresh: tuple[str, Engine]) -> None:
    url, engine = fresh
    tamper(engine, "UPDATE protocol_version SET text = text || '# edited' WHERE version = 1")
    assert_detected(url, "protocol trial-a version 1", "the protocol text was edited")


def test_a_forged_event_with_a_recomputed_hash_is_caught_by_rederivation(fresh: tuple[str, Engine]) -> None:
    """The forger appends a consistent event + assignment + enrollment through the proper writer, the
    chain is intact, but the arm is not the one the registered procedure gives."""
    url, engine = fresh
    with db.write_session(engine) as session:
        ctx = assign.trial_context(session, TRIAL)
        case = add_cases(session, 1, prefix="F", seed=11)[0]
        now = assign.utcnow()
        unit = assign._Unit(case.case_key, case_stratum(ctx.protocol, assign.frozen_case(case)), case)
        new = assign._allocate(session, ctx, [unit], dt.date(2026, 2, 1), now)
        new[0].arm = "control" if new[0].arm == "treatment" else "treatment"
        enrollments = assign._enrollments_for(session, ctx, [case], new, dt.date(2026, 2, 1), now)
        event = record_event(session, "case_enrolled", trial_id=TRIAL, payload={
            "protocol_version": 1, "algorithm": assign.ALGORITHM, "method": "permuted_blocks",
            "enrolled_on": "2026-02-01", "allocations": [assign._allocation_payload(a) for a in new],
            "enrollments": [assign._enrollment_payload(e, k, s) for e, k, s in enrollments],
        })
        assign._store(session, new, enrollments, event.seq)
    out = assert_detected(url, "event #6: allocation trial-a #24 (F00000): logged arm",
                          "the registered procedure gives")
    assert "previous hash" not in out and "hash does not match" not in out


def test_a_truncated_tail_is_detected_with_expect_head(fresh: tuple[str, Engine]) -> None:
    url, engine = fresh
    with db.read_session(engine) as session:
        recorded = head(session)
        assert recorded is not None
        head_hash = recorded.hash
    assert run(url, "audit", "head").stdout.startswith(head_hash)
    assert run(url, "audit", "verify", "--expect-head", head_hash).exit_code == 0
    tamper(engine, "DELETE FROM audit_event WHERE seq >= 4", "DELETE FROM enrollment WHERE sequence >= 22",
           "DELETE FROM assignment WHERE sequence >= 22")
    assert run(url, "audit", "verify").exit_code == 0  # the chain alone cannot see a cut tail
    assert_detected(url, f"expected head {head_hash} is not in the log", "truncated", expect_head=head_hash)


def secret_seed(engine: Engine) -> str:
    with engine.connect() as connection:
        return str(connection.execute(text(f"SELECT seed FROM trial WHERE id = '{TRIAL}'")).scalar())


def test_log_lists_events_and_never_an_open_seed(fresh: tuple[str, Engine]) -> None:
    url, engine = fresh
    events = json.loads(run(url, "audit", "log", TRIAL, "--json").stdout)
    assert [e["action"] for e in events] == ["protocol_registered", "trial_assigned"] + ["case_enrolled"] * 3
    shown = run(url, "audit", "log", "--json").stdout
    assert secret_seed(engine) not in shown
    assert "block_size" not in shown  # the end of an open block cannot be predicted from the log
    assert "trial_assigned" in run(url, "audit", "log").stdout


def test_bundle_of_a_closed_trial_verifies_without_a_database(fresh: tuple[str, Engine], tmp_path: Path) -> None:
    url, _engine = fresh
    assert run(url, "close", TRIAL).exit_code == 0
    bundle = tmp_path / "bundle.zip"
    assert run(url, "audit", "export", TRIAL, "-o", bundle).exit_code == 0
    result = run("sqlite:////nonexistent/nothing.db", "audit", "verify", "--bundle", bundle)
    assert result.exit_code == 0, result.stdout
    assert result.stdout.strip() == "OK: 6 events, 23 allocations verified"
    # an auditor's copy edited afterwards is caught
    edited = tmp_path / "edited.zip"
    with zipfile.ZipFile(bundle) as source, zipfile.ZipFile(edited, "w") as target:
        for name in source.namelist():
            data = source.read(name)
            if name == "assignments.json":
                rows = json.loads(data)
                rows[0]["arm"] = "control" if rows[0]["arm"] == "treatment" else "treatment"
                data = json.dumps(rows).encode()
            target.writestr(name, data)
    result = run("sqlite:////nonexistent/nothing.db", "audit", "verify", "--bundle", edited)
    assert result.exit_code == 1
    assert "assignments.json: does not match its SHA-256" in result.stdout
    assert "assignment trial-a #1" in result.stdout


def test_bundle_of_an_open_trial_carries_the_seed_only_on_request(fresh: tuple[str, Engine], tmp_path: Path) -> None:
    url, engine = fresh
    plain, seeded = tmp_path / "plain.zip", tmp_path / "seeded.zip"
    assert run(url, "audit", "export", TRIAL, "-o", plain).exit_code == 0
    seed = secret_seed(engine).encode()
    with zipfile.ZipFile(plain) as archive:
        assert all(seed not in archive.read(n) for n in archive.namelist())
    result = run(url, "audit", "verify", "--bundle", plain)
    assert result.exit_code == 0 and "0 allocations verified" in result.stdout and "no seed" in result.stdout
    assert run(url, "audit", "export", TRIAL, "-o", seeded, "--include-seed").exit_code == 0
    events = json.loads(run(url, "audit", "log", TRIAL, "--json").stdout)
    assert events[-1]["action"] == "bundle_exported" and events[-1]["payload"] == {"include_seed": True}
    result = run(url, "audit", "verify", "--bundle", seeded)
    assert result.exit_code == 0 and "OK: 6 events, 23 allocations verified" in result.stdout


@given(payload=st.dictionaries(st.text(max_size=5), st.one_of(st.none(), st.integers(), st.text(max_size=5),
                                                               st.lists(st.floats(allow_nan=False), max_size=3))),
       actor=st.text(max_size=8), trial=st.one_of(st.none(), st.text(max_size=8)))
def test_event_hash_is_sha256_of_the_documented_canonical_body(payload, actor, trial) -> None:  # type: ignore[no-untyped-def]
    """Reference: docs/assignment.md — SHA-256 of prev_hash, a newline, and the canonical JSON of
    {seq, occurred_at, actor, action, trial_id, payload} (the payload spliced in must not change it)."""
    import hashlib

    from trials.audit import canonical_json, event_hash, format_timestamp

    when = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)
    body = canonical_json({"seq": 7, "occurred_at": format_timestamp(when), "actor": actor, "action": "x",
                           "trial_id": trial, "payload": payload})
    expected = hashlib.sha256(("f" * 64 + "\n" + body).encode()).hexdigest()
    assert event_hash(seq=7, occurred_at=when, actor=actor, action="x", trial_id=trial,
                      payload=canonical_json(payload), prev_hash="f" * 64) == expected
