"""Initial schema: trials, protocol versions, cases and their history, assignments,
enrollments and their events, outcome snapshots and derived outcomes, the audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("trial_id", sa.String(length=64), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_event")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_event_hash")),
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_event_trial_id"), ["trial_id"], unique=False)

    op.create_table(
        "cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_key", sa.String(length=128), nullable=False),
        sa.Column("id_kind", sa.String(length=64), nullable=False),
        sa.Column("primary_barrier", sa.String(length=64), nullable=False),
        sa.Column("barriers", sa.JSON(), nullable=False),
        sa.Column("months_unemployed", sa.Float(), nullable=False),
        sa.Column("benefit_type", sa.String(length=64), nullable=False),
        sa.Column("caseworker", sa.String(length=128), nullable=True),
        sa.Column("team", sa.String(length=128), nullable=True),
        sa.Column("as_of", sa.Date(), nullable=True),
        sa.Column("covariates", sa.JSON(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
        sa.UniqueConstraint("case_key", name=op.f("uq_cases_case_key")),
    )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cases_caseworker"), ["caseworker"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_team"), ["team"], unique=False)

    op.create_table(
        "trial",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=False),
        sa.Column("seed", sa.Text(), nullable=False),
        sa.Column("seed_commitment", sa.String(length=64), nullable=False),
        sa.Column("seed_source", sa.String(length=64), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trial")),
    )
    op.create_table(
        "assignment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.String(length=64), nullable=False),
        sa.Column("protocol_version", sa.Integer(), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=False),
        sa.Column("unit_key", sa.String(length=128), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("stratum", sa.Text(), nullable=False),
        sa.Column("stratum_label", sa.Text(), nullable=False),
        sa.Column("stratum_sequence", sa.Integer(), nullable=False),
        sa.Column("arm", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=64), nullable=False),
        sa.Column("algorithm", sa.String(length=64), nullable=False),
        sa.Column("block", sa.Integer(), nullable=True),
        sa.Column("block_size", sa.Integer(), nullable=True),
        sa.Column("probabilities", sa.JSON(), nullable=False),
        sa.Column("enrolled_on", sa.Date(), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("audit_seq", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_assignment_case_id_cases")
        ),
        sa.ForeignKeyConstraint(
            ["trial_id"], ["trial.id"], name=op.f("fk_assignment_trial_id_trial")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignment")),
        sa.UniqueConstraint("trial_id", "sequence", name=op.f("uq_assignment_trial_id_sequence")),
        sa.UniqueConstraint("trial_id", "unit_key", name=op.f("uq_assignment_trial_id_unit_key")),
    )
    with op.batch_alter_table("assignment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_assignment_trial_id"), ["trial_id"], unique=False)

    op.create_table(
        "case_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("primary_barrier", sa.String(length=64), nullable=False),
        sa.Column("barriers", sa.JSON(), nullable=False),
        sa.Column("months_unemployed", sa.Float(), nullable=False),
        sa.Column("benefit_type", sa.String(length=64), nullable=False),
        sa.Column("caseworker", sa.String(length=128), nullable=True),
        sa.Column("team", sa.String(length=128), nullable=True),
        sa.Column("as_of", sa.Date(), nullable=True),
        sa.Column("covariates", sa.JSON(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source_sha256", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_history_case_id_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_history")),
        sa.UniqueConstraint("case_id", "revision", name=op.f("uq_case_history_case_id_revision")),
    )
    with op.batch_alter_table("case_history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_history_case_id"), ["case_id"], unique=False)

    op.create_table(
        "outcome_snapshot",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("source_name", sa.Text(), nullable=False),
        sa.Column("source_sha256", sa.String(length=64), nullable=False),
        sa.Column("mapping_sha256", sa.String(length=64), nullable=True),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["trial_id"], ["trial.id"], name=op.f("fk_outcome_snapshot_trial_id_trial")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outcome_snapshot")),
    )
    with op.batch_alter_table("outcome_snapshot", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outcome_snapshot_trial_id"), ["trial_id"], unique=False
        )

    op.create_table(
        "protocol_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["trial_id"], ["trial.id"], name=op.f("fk_protocol_version_trial_id_trial")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_protocol_version")),
        sa.UniqueConstraint(
            "trial_id", "version", name=op.f("uq_protocol_version_trial_id_version")
        ),
    )
    with op.batch_alter_table("protocol_version", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_protocol_version_trial_id"), ["trial_id"], unique=False
        )

    op.create_table(
        "enrollment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.String(length=64), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("assignment_id", sa.Integer(), nullable=False),
        sa.Column("arm", sa.String(length=64), nullable=False),
        sa.Column("cluster", sa.String(length=128), nullable=True),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("case_revision", sa.Integer(), nullable=False),
        sa.Column("frozen", sa.JSON(), nullable=False),
        sa.Column("enrolled_on", sa.Date(), nullable=False),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assignment_id"],
            ["assignment.id"],
            name=op.f("fk_enrollment_assignment_id_assignment"),
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_enrollment_case_id_cases")
        ),
        sa.ForeignKeyConstraint(
            ["trial_id"], ["trial.id"], name=op.f("fk_enrollment_trial_id_trial")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrollment")),
        sa.UniqueConstraint("trial_id", "case_id", name=op.f("uq_enrollment_trial_id_case_id")),
        sa.UniqueConstraint("trial_id", "sequence", name=op.f("uq_enrollment_trial_id_sequence")),
    )
    with op.batch_alter_table("enrollment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_enrollment_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_enrollment_trial_id"), ["trial_id"], unique=False)

    op.create_table(
        "outcome",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("time_weeks", sa.Float(), nullable=False),
        sa.Column("event", sa.Integer(), nullable=False),
        sa.Column("exit_kind", sa.String(length=64), nullable=True),
        sa.Column("weeks_on_support_52", sa.Integer(), nullable=True),
        sa.Column("weeks_on_support_104", sa.Integer(), nullable=True),
        sa.Column("status_52", sa.String(length=32), nullable=True),
        sa.Column("status_104", sa.String(length=32), nullable=True),
        sa.Column("relapses", sa.Integer(), nullable=False),
        sa.Column("weeks_observed", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_outcome_case_id_cases")),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["outcome_snapshot.id"],
            name=op.f("fk_outcome_snapshot_id_outcome_snapshot"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outcome")),
        sa.UniqueConstraint("snapshot_id", "case_id", name=op.f("uq_outcome_snapshot_id_case_id")),
    )
    with op.batch_alter_table("outcome", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outcome_snapshot_id"), ["snapshot_id"], unique=False)

    op.create_table(
        "outcome_exit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("exit_date", sa.Date(), nullable=False),
        sa.Column("exit_kind", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_outcome_exit_case_id_cases")
        ),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["outcome_snapshot.id"],
            name=op.f("fk_outcome_exit_snapshot_id_outcome_snapshot"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outcome_exit")),
    )
    with op.batch_alter_table("outcome_exit", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outcome_exit_snapshot_id"), ["snapshot_id"], unique=False
        )

    op.create_table(
        "enrollment_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("enrollment_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("effective_on", sa.Date(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["enrollment_id"],
            ["enrollment.id"],
            name=op.f("fk_enrollment_event_enrollment_id_enrollment"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrollment_event")),
    )
    with op.batch_alter_table("enrollment_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_enrollment_event_enrollment_id"), ["enrollment_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("enrollment_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_enrollment_event_enrollment_id"))

    op.drop_table("enrollment_event")
    with op.batch_alter_table("outcome_exit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outcome_exit_snapshot_id"))

    op.drop_table("outcome_exit")
    with op.batch_alter_table("outcome", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outcome_snapshot_id"))

    op.drop_table("outcome")
    with op.batch_alter_table("enrollment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_enrollment_trial_id"))
        batch_op.drop_index(batch_op.f("ix_enrollment_case_id"))

    op.drop_table("enrollment")
    with op.batch_alter_table("protocol_version", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_protocol_version_trial_id"))

    op.drop_table("protocol_version")
    with op.batch_alter_table("outcome_snapshot", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outcome_snapshot_trial_id"))

    op.drop_table("outcome_snapshot")
    with op.batch_alter_table("case_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_history_case_id"))

    op.drop_table("case_history")
    with op.batch_alter_table("assignment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assignment_trial_id"))

    op.drop_table("assignment")
    op.drop_table("trial")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cases_team"))
        batch_op.drop_index(batch_op.f("ix_cases_caseworker"))

    op.drop_table("cases")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_event_trial_id"))

    op.drop_table("audit_event")
