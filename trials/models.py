"""The database schema as typed SQLAlchemy models.

The schema itself is created only by the alembic migrations in `migrations/`; a test checks
that these models and the migrations agree. Tables that hold the record of a trial
(protocol versions, assignments, enrollments, their events, outcome snapshots, the audit
log) are append-only: triggers in the migrations refuse UPDATE and DELETE on them.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp that is always stored and returned as an aware UTC datetime.

    SQLite keeps no time zone, so naive values coming back are read as UTC and aware values
    going in are converted to UTC first; a naive value going in is a programming error.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


Timestamp = Annotated[dt.datetime, mapped_column(UTCDateTime())]
Sha256 = Annotated[str, mapped_column(String(64))]
# A case key: the case id the jobcenter gave, or the HMAC-SHA256 pseudonym of a CPR number.
CaseKey = Annotated[str, mapped_column(String(128))]
Label = Annotated[str, mapped_column(String(64))]
JsonDict = Annotated[dict[str, Any], mapped_column(JSON)]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Trial(Base):
    """A registered prøvehandling. The seed is secret until the trial is closed."""

    __tablename__ = "trial"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    unit: Mapped[Label]
    seed: Mapped[str] = mapped_column(Text)
    seed_commitment: Mapped[Sha256]
    seed_source: Mapped[Label]
    registered_at: Mapped[Timestamp]
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ProtocolVersion(Base):
    """The exact text of one version of a trial's protocol, with its SHA-256."""

    __tablename__ = "protocol_version"
    __table_args__ = (UniqueConstraint("trial_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trial.id"), index=True)
    version: Mapped[int]
    text: Mapped[str] = mapped_column(Text)
    sha256: Mapped[Sha256]
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    registered_at: Mapped[Timestamp]


class Case(Base):
    """The current categorisation of one case in the pool; every version is in case_history."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_key: Mapped[CaseKey] = mapped_column(unique=True)
    id_kind: Mapped[Label]  # "case_id" or "cpr" (then case_key is the pseudonym)
    primary_barrier: Mapped[Label]
    barriers: Mapped[list[str]] = mapped_column(JSON)
    months_unemployed: Mapped[float] = mapped_column(Float)
    benefit_type: Mapped[Label]
    caseworker: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    team: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    as_of: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    covariates: Mapped[JsonDict]
    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp]


class CaseHistory(Base):
    """Every categorisation a case has had, so the one at randomization can always be shown."""

    __tablename__ = "case_history"
    __table_args__ = (UniqueConstraint("case_id", "revision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    revision: Mapped[int]
    primary_barrier: Mapped[Label]
    barriers: Mapped[list[str]] = mapped_column(JSON)
    months_unemployed: Mapped[float] = mapped_column(Float)
    benefit_type: Mapped[Label]
    caseworker: Mapped[str | None] = mapped_column(String(128), nullable=True)
    team: Mapped[str | None] = mapped_column(String(128), nullable=True)
    as_of: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    covariates: Mapped[JsonDict]
    recorded_at: Mapped[Timestamp]
    source_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Assignment(Base):
    """One randomized unit (a case, or a caseworker/team cluster) and the arm it drew.

    Never updated or deleted. `stratum` is the canonical JSON of the stratum values frozen
    at randomization; `probabilities` the exact probability of each arm for this unit.
    """

    __tablename__ = "assignment"
    __table_args__ = (
        UniqueConstraint("trial_id", "sequence"),
        UniqueConstraint("trial_id", "unit_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trial.id"), index=True)
    protocol_version: Mapped[int]
    unit: Mapped[Label]
    unit_key: Mapped[CaseKey]
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), nullable=True)
    sequence: Mapped[int]
    stratum: Mapped[str] = mapped_column(Text)
    stratum_label: Mapped[str] = mapped_column(Text)
    stratum_sequence: Mapped[int]
    arm: Mapped[Label]
    method: Mapped[Label]
    algorithm: Mapped[Label]
    block: Mapped[int | None] = mapped_column(Integer, nullable=True)
    block_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    probabilities: Mapped[dict[str, float]] = mapped_column(JSON)
    enrolled_on: Mapped[dt.date] = mapped_column(Date)
    assigned_at: Mapped[Timestamp]
    audit_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Enrollment(Base):
    """A case in a trial, with its categorisation and covariates frozen at enrollment.

    In a case-level trial it points to the case's own assignment; in a cluster trial to the
    assignment of the case's caseworker or team, whose arm it inherits.
    """

    __tablename__ = "enrollment"
    __table_args__ = (
        UniqueConstraint("trial_id", "case_id"),
        UniqueConstraint("trial_id", "sequence"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trial.id"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignment.id"))
    arm: Mapped[Label]
    cluster: Mapped[str | None] = mapped_column(String(128), nullable=True)
    sequence: Mapped[int]
    case_revision: Mapped[int]
    frozen: Mapped[JsonDict]
    enrolled_on: Mapped[dt.date] = mapped_column(Date)
    enrolled_at: Mapped[Timestamp]


class EnrollmentEvent(Base):
    """Withdrawal, crossover or non-compliance: recorded beside, never instead of, the arm."""

    __tablename__ = "enrollment_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollment.id"), index=True)
    kind: Mapped[Label]
    reason: Mapped[str] = mapped_column(Text)
    effective_on: Mapped[dt.date] = mapped_column(Date)
    recorded_at: Mapped[Timestamp]


class OutcomeSnapshot(Base):
    """One imported outcome extract; analyses name the snapshot they used."""

    __tablename__ = "outcome_snapshot"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trial.id"), index=True)
    kind: Mapped[Label]  # "exits" or "weekly"
    source_name: Mapped[str] = mapped_column(Text)
    source_sha256: Mapped[Sha256]
    mapping_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    as_of: Mapped[dt.date] = mapped_column(Date)
    options: Mapped[JsonDict]
    imported_at: Mapped[Timestamp]


class ExitRecord(Base):
    """One row of an imported exit file, kept as it came (after validation)."""

    __tablename__ = "outcome_exit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("outcome_snapshot.id"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    exit_date: Mapped[dt.date] = mapped_column(Date)
    exit_kind: Mapped[Label]


class Outcome(Base):
    """The derived analysis outcome of one enrolled case under one snapshot."""

    __tablename__ = "outcome"
    __table_args__ = (UniqueConstraint("snapshot_id", "case_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("outcome_snapshot.id"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    time_weeks: Mapped[float] = mapped_column(Float)
    event: Mapped[int]
    exit_kind: Mapped[str | None] = mapped_column(String(64), nullable=True)
    weeks_on_support_52: Mapped[int | None] = mapped_column(Integer, nullable=True)
    weeks_on_support_104: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status_52: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status_104: Mapped[str | None] = mapped_column(String(32), nullable=True)
    relapses: Mapped[int] = mapped_column(Integer, default=0)
    weeks_observed: Mapped[int | None] = mapped_column(Integer, nullable=True)


class AuditEvent(Base):
    """One link of the hash chain: hash = SHA-256 over the canonical event and prev_hash."""

    __tablename__ = "audit_event"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    occurred_at: Mapped[Timestamp]
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[Label]
    trial_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    payload: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[Sha256]
    hash: Mapped[Sha256] = mapped_column(unique=True)


APPEND_ONLY_TABLES = (
    "protocol_version",
    "case_history",
    "assignment",
    "enrollment",
    "enrollment_event",
    "outcome_snapshot",
    "outcome_exit",
    "outcome",
    "audit_event",
)
