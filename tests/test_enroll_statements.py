"""Rolling enrollment sends few statements while it holds the write lock.

Writers are serialised, so every round trip an enrollment makes inside `write_session` is
time no other enroller can use. This counts statements (not time, which is noisy): a change
that adds a query to the enrollment path shows up here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from tests.test_assign import protocol_text, setup_trial
from trials import assign, db
from trials.audit import verify

# The write lock (advisory lock or BEGIN IMMEDIATE), the trial with its protocol, the case, its
# other enrollments, the rolling position with the audit head, and three inserts.
STATEMENTS_PER_ENROLLMENT = 8


def test_one_rolling_enrollment_sends_at_most_eight_statements(engine: Engine) -> None:
    trial = setup_trial(engine, protocol_text(), 3)
    with db.write_session(engine) as session:  # the first one also looks up the connection's actor
        assign.enroll(session, trial, "C00000")
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        for case in ("C00001", "C00002"):
            with db.write_session(engine) as session:
                assign.enroll(session, trial, case)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(statements) <= 2 * STATEMENTS_PER_ENROLLMENT, "\n".join(statements)
    with db.read_session(engine) as session:
        check = verify(session, trial)
    assert check.ok and check.allocations == 3, check.findings
