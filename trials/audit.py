"""The audit log: an append-only hash chain of every change of state.

`record_event` is the only writer. Each event's hash is SHA-256 over the previous hash and
the canonical JSON of the event, so altering, removing or reordering any event breaks every
hash after it; `trials audit head` lets the head be recorded outside the system to catch a
truncated tail.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from trials.models import AuditEvent, utcnow

GENESIS_HASH = "0" * 64


def canonical_json(value: Any) -> str:
    """Sorted keys, no insignificant white space, UTF-8 text: the same bytes on every machine."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return format_timestamp(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def format_timestamp(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def sha256_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def event_hash(
    *, seq: int, occurred_at: dt.datetime, actor: str, action: str, trial_id: str | None, payload: str, prev_hash: str
) -> str:
    """The chain hash of one event (documented in docs/assignment.md for re-implementation)."""
    body = canonical_json(
        {
            "seq": seq,
            "occurred_at": format_timestamp(occurred_at),
            "actor": actor,
            "action": action,
            "trial_id": trial_id,
            "payload": json.loads(payload),
        }
    )
    return sha256_hex(prev_hash + "\n" + body)


def current_actor(session: Session) -> str:
    """The database user on a server database, else the operating-system user."""
    if session.get_bind().dialect.name == "postgresql":
        user = session.execute(text("SELECT current_user")).scalar()
        if user:
            return str(user)
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def head(session: Session) -> AuditEvent | None:
    """The last event of the chain, or None for an empty log."""
    return session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)).first()


def record_event(
    session: Session, action: str, *, trial_id: str | None = None, payload: dict[str, Any] | None = None
) -> AuditEvent:
    """Append one event to the chain. Call inside `trials.db.write_session` (writers are serialised)."""
    last = head(session)
    seq = 1 if last is None else last.seq + 1
    prev_hash = GENESIS_HASH if last is None else last.hash
    occurred_at = utcnow()
    actor = current_actor(session)
    payload_json = canonical_json(payload or {})
    audit_event = AuditEvent(
        seq=seq,
        occurred_at=occurred_at,
        actor=actor,
        action=action,
        trial_id=trial_id,
        payload=payload_json,
        prev_hash=prev_hash,
        hash=event_hash(
            seq=seq,
            occurred_at=occurred_at,
            actor=actor,
            action=action,
            trial_id=trial_id,
            payload=payload_json,
            prev_hash=prev_hash,
        ),
    )
    session.add(audit_event)
    session.flush()
    return audit_event
