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
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, func, insert, select, text
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
    """The chain hash of one event (documented in docs/assignment.md for re-implementation).

    The body is the canonical JSON of {seq, occurred_at, actor, action, trial_id, payload};
    `payload` is already canonical JSON, so it is spliced in rather than parsed and written
    again (a whole-cohort event can carry a million allocations). Keys in sorted order.
    """
    body = (
        f'{{"action":{canonical_json(action)},"actor":{canonical_json(actor)},'
        f'"occurred_at":{canonical_json(format_timestamp(occurred_at))},"payload":{payload},'
        f'"seq":{canonical_json(seq)},"trial_id":{canonical_json(trial_id)}}}'
    )
    return sha256_hex(prev_hash + "\n" + body)


def current_actor(session: Session) -> str:
    """The database user on a server database, else the operating-system user."""
    if session.get_bind().dialect.name == "postgresql":
        info = session.connection().info  # lives as long as the pooled connection
        if "trials_actor" not in info:
            info["trials_actor"] = session.execute(text("SELECT current_user")).scalar()
        if info["trials_actor"]:
            return str(info["trials_actor"])
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def head(session: Session) -> AuditEvent | None:
    """The last event of the chain, or None for an empty log."""
    return session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)).first()


@dataclass(frozen=True)
class ChainHead:
    """Where the next event links on: the last seq (0 for an empty log) and its hash."""

    seq: int
    hash: str


_LAST_EVENT = select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)


def chain_head_columns() -> tuple[Any, Any]:
    """The head's seq and hash as scalar subqueries, for a writer that reads them within a query
    of its own (one round trip less under the write lock) and passes `ChainHead` to `record_event`."""
    return (func.coalesce(_LAST_EVENT.with_only_columns(AuditEvent.seq).scalar_subquery(), 0),
            func.coalesce(_LAST_EVENT.with_only_columns(AuditEvent.hash).scalar_subquery(), GENESIS_HASH))


def record_event(
    session: Session, action: str, *, trial_id: str | None = None, payload: dict[str, Any] | None = None,
    head: ChainHead | None = None,
) -> AuditEvent:
    """Append one event to the chain. Call inside `trials.db.write_session` (writers are serialised);
    `head`, if given, must have been read in this transaction."""
    if head is None:
        last = session.execute(_LAST_EVENT).first()
        head = ChainHead(0, GENESIS_HASH) if last is None else ChainHead(last.seq, last.hash)
    occurred_at = utcnow()
    actor = current_actor(session)
    payload_json = canonical_json(payload or {})
    fields: dict[str, Any] = {"seq": head.seq + 1, "occurred_at": occurred_at, "actor": actor, "action": action,
                              "trial_id": trial_id, "payload": payload_json, "prev_hash": head.hash}
    audit_event = AuditEvent(**fields, hash=event_hash(**fields))
    # A Core INSERT, not session.add + flush: the event is never changed after, so the unit of
    # work would only add CPU to every rolling enrollment. Pending objects still go first.
    session.flush()
    session.execute(_INSERT_EVENT, {**fields, "hash": audit_event.hash})
    return audit_event


_INSERT_EVENT = insert(cast(Table, AuditEvent.__table__))


# --- reading and verifying the log ------------------------------------------------------------
#
# Verification works on a `Record`: the events, protocol texts, trials, assignments and
# enrollments, read either from the database (`record_from_db`) or from an exported bundle
# (`record_from_bundle`), so an external auditor runs exactly the same checks without a database.

BUNDLE_FORMAT = "trials-audit-bundle/1"
ALLOCATION_ACTIONS = ("trial_assigned", "case_enrolled")
PROTOCOL_ACTIONS = ("protocol_registered", "protocol_amended")


def event_dict(event: AuditEvent) -> dict[str, Any]:
    """An event as plain JSON-ready data (its payload parsed)."""
    return {
        "seq": event.seq, "occurred_at": format_timestamp(event.occurred_at), "actor": event.actor,
        "action": event.action, "trial_id": event.trial_id, "payload": json.loads(event.payload),
        "prev_hash": event.prev_hash, "hash": event.hash,
    }


@dataclass
class Record:
    """Everything verification looks at, independent of where it was read from."""

    events: list[dict[str, Any]]
    protocol_versions: list[dict[str, Any]]
    trials: dict[str, dict[str, Any]]
    assignments: list[dict[str, Any]]
    enrollments: list[dict[str, Any]]
    source: str = "database"
    problems: list[str] = field(default_factory=list)


@dataclass
class Verification:
    events: int
    allocations: int
    findings: list[str]
    notes: list[str]
    head: str | None

    @property
    def ok(self) -> bool:
        return not self.findings

    def summary(self) -> str:
        return f"OK: {self.events} events, {self.allocations} allocations verified"

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "events": self.events, "allocations": self.allocations,
                "findings": self.findings, "notes": self.notes, "head": self.head}


def _assignment_dict(a: Any) -> dict[str, Any]:
    return {
        "trial_id": a.trial_id, "sequence": a.sequence, "unit": a.unit, "unit_key": a.unit_key,
        "stratum": a.stratum, "stratum_label": a.stratum_label, "stratum_sequence": a.stratum_sequence,
        "block": a.block, "block_size": a.block_size, "arm": a.arm, "probabilities": a.probabilities,
        "method": a.method, "algorithm": a.algorithm, "protocol_version": a.protocol_version,
        "enrolled_on": a.enrolled_on.isoformat(), "assigned_at": format_timestamp(a.assigned_at),
        "audit_seq": a.audit_seq,
    }


def record_from_db(session: Session, trial_id: str | None = None, *, redact_other_trials: bool = False,
                   include_seed: bool = True) -> Record:
    """The record as stored: the whole chain, and the protocol/assignment data of one or every trial."""
    from trials.models import Assignment, Case, Enrollment, EnrollmentEvent, ProtocolVersion, Trial

    events = []
    for event in session.scalars(select(AuditEvent).order_by(AuditEvent.seq)):
        if redact_other_trials and event.trial_id is not None and event.trial_id != trial_id:
            events.append({"seq": event.seq, "prev_hash": event.prev_hash, "hash": event.hash, "redacted": True})
        else:
            events.append(event_dict(event))

    def scoped(query: Any, column: Any) -> Any:
        return query if trial_id is None else query.where(column == trial_id)

    versions = [
        {"trial_id": v.trial_id, "version": v.version, "text": v.text, "sha256": v.sha256, "reason": v.reason,
         "registered_at": format_timestamp(v.registered_at)}
        for v in session.scalars(scoped(select(ProtocolVersion), ProtocolVersion.trial_id)
                                 .order_by(ProtocolVersion.trial_id, ProtocolVersion.version))
    ]
    trials = {
        t.id: {"seed": t.seed if include_seed else None, "seed_commitment": t.seed_commitment, "unit": t.unit,
               "closed_at": format_timestamp(t.closed_at) if t.closed_at else None}
        for t in session.scalars(scoped(select(Trial), Trial.id))
    }
    assignments = [_assignment_dict(a) for a in session.scalars(
        scoped(select(Assignment), Assignment.trial_id).order_by(Assignment.trial_id, Assignment.sequence))]
    sequence_of = {row[0]: row[1] for row in session.execute(
        scoped(select(Assignment.id, Assignment.sequence), Assignment.trial_id))}
    enrollments = []
    query = (select(Enrollment, Case.case_key).join(Case, Case.id == Enrollment.case_id))
    for e, case_key in session.execute(scoped(query, Enrollment.trial_id).order_by(Enrollment.trial_id,
                                                                                    Enrollment.sequence)):
        enrollments.append({
            "trial_id": e.trial_id, "sequence": e.sequence, "case_key": case_key, "arm": e.arm, "cluster": e.cluster,
            "assignment_sequence": sequence_of.get(e.assignment_id), "case_revision": e.case_revision,
            "enrolled_on": e.enrolled_on.isoformat(), "enrolled_at": format_timestamp(e.enrolled_at),
            "frozen": e.frozen, "frozen_sha256": sha256_hex(canonical_json(e.frozen)),
            "events": [
                {"kind": ev.kind, "reason": ev.reason, "effective_on": ev.effective_on.isoformat(),
                 "recorded_at": format_timestamp(ev.recorded_at)}
                for ev in session.scalars(select(EnrollmentEvent).where(EnrollmentEvent.enrollment_id == e.id)
                                          .order_by(EnrollmentEvent.id))
            ],
        })
    return Record(events, versions, trials, assignments, enrollments)


def verify_record(record: Record, trial_id: str | None = None, expect_head: str | None = None) -> Verification:
    """Every check: the chain, the expected head, protocol texts, seeds, and every allocation re-derived."""
    findings: list[str] = list(record.problems)
    notes: list[str] = []
    events = sorted(record.events, key=lambda e: e["seq"])
    findings += _verify_chain(events)
    head_hash = events[-1]["hash"] if events else None
    if expect_head is not None:
        expect = expect_head.strip().lower()
        if not any(e["hash"] == expect for e in events):
            last = f"event #{events[-1]['seq']} (hash {head_hash})" if events else "no event at all"
            findings.append(f"expected head {expect} is not in the log, which ends at {last}: "
                            "events were removed from the tail (truncated log) or the head is wrong")
    trial_ids = sorted(record.trials) if trial_id is None else [trial_id]
    if trial_id is not None and trial_id not in record.trials:
        findings.append(f"trial {trial_id!r} is not in the record")
        trial_ids = []
    if trial_id is None:
        unknown = sorted({e["trial_id"] for e in events if not e.get("redacted") and e.get("trial_id")}
                         - set(record.trials))
        findings += [f"trial {tid!r} has events in the log but is not registered (its record was removed)"
                     for tid in unknown]
    allocations = 0
    for tid in trial_ids:
        trial_events = [e for e in events if not e.get("redacted") and e.get("trial_id") == tid]
        findings += _verify_protocols(record, tid, trial_events)
        seed, seed_findings = _verify_seed(record, tid, trial_events)
        findings += seed_findings
        if seed is None:
            if seed_findings:
                notes.append(f"allocations of {tid} not re-derived: its seed does not match the commitment")
            else:
                notes.append(f"allocations of {tid} not re-derived: the record carries no seed "
                             "(the trial is open; export the bundle with --include-seed)")
            n, found = _compare_stored(record, tid, trial_events)
            findings += found
            continue
        n, found = _verify_allocations(record, tid, trial_events, seed)
        allocations += n
        findings += found
    return Verification(len(events), allocations, findings, notes, head_hash)


def _verify_chain(events: list[dict[str, Any]]) -> list[str]:
    findings = []
    prev_hash, expected_seq = GENESIS_HASH, 1
    for event in events:
        seq = event["seq"]
        if seq != expected_seq:
            missing = f"#{expected_seq}" if seq == expected_seq + 1 else f"#{expected_seq} to #{seq - 1}"
            findings.append(f"event {missing} missing: the log jumps from #{expected_seq - 1} to #{seq} "
                            "(an event was deleted)")
        if event["prev_hash"] != prev_hash:
            findings.append(f"event #{seq}: its previous hash does not match the hash of the event before it "
                            "(events were deleted, inserted or reordered/swapped)")
        if not event.get("redacted"):
            recomputed = event_hash(
                seq=seq, occurred_at=dt.datetime.fromisoformat(event["occurred_at"]), actor=event["actor"],
                action=event["action"], trial_id=event["trial_id"], payload=canonical_json(event["payload"]),
                prev_hash=event["prev_hash"],
            )
            if recomputed != event["hash"]:
                findings.append(f"event #{seq} ({event['action']}): its hash does not match its content "
                                "(the event was altered, or moved/swapped)")
        prev_hash, expected_seq = event["hash"], seq + 1
    return findings


def _verify_protocols(record: Record, trial_id: str, events: list[dict[str, Any]]) -> list[str]:
    findings = []
    logged = {e["payload"].get("version"): e for e in events if e["action"] in PROTOCOL_ACTIONS}
    versions = [v for v in record.protocol_versions if v["trial_id"] == trial_id]
    if not versions:
        findings.append(f"trial {trial_id}: no protocol version is stored")
    for v in versions:
        actual = sha256_hex(v["text"])
        if actual != v["sha256"]:
            findings.append(f"protocol {trial_id} version {v['version']}: the stored text does not match its "
                            f"SHA-256 {v['sha256']} (the protocol text was edited)")
        event = logged.get(v["version"])
        if event is None:
            findings.append(f"protocol {trial_id} version {v['version']}: no registration event in the audit log")
        elif event["payload"].get("sha256") != actual:
            findings.append(f"event #{event['seq']}: protocol {trial_id} version {v['version']} was registered with "
                            f"SHA-256 {event['payload'].get('sha256')}, the stored text hashes to {actual} "
                            "(the protocol text was edited)")
    return findings


def _verify_seed(record: Record, trial_id: str, events: list[dict[str, Any]]) -> tuple[str | None, list[str]]:
    findings = []
    trial = record.trials[trial_id]
    commitments = [(e["seq"], e["payload"]["seed_commitment"]) for e in events
                   if e["action"] in PROTOCOL_ACTIONS and "seed_commitment" in e["payload"]]
    commitment_seq, commitment = commitments[-1] if commitments else (None, trial["seed_commitment"])
    if commitment_seq is None:
        findings.append(f"trial {trial_id}: no seed commitment in the audit log")
    elif trial["seed_commitment"] != commitment:
        findings.append(f"trial {trial_id}: the stored seed commitment differs from the one logged in event "
                        f"#{commitment_seq} (the seed was changed)")
    seed = trial.get("seed")
    closing = [e for e in events if e["action"] == "trial_closed"]
    for event in closing:
        revealed = event["payload"].get("seed")
        if revealed is None or sha256_hex(revealed) != commitment:
            findings.append(f"event #{event['seq']}: the revealed seed does not match its commitment "
                            f"{commitment} (the seed was changed)")
        elif seed is not None and seed != revealed:
            findings.append(f"trial {trial_id}: the stored seed differs from the seed revealed in event "
                            f"#{event['seq']} (the seed was changed)")
        if seed is None:
            seed = revealed
    if seed is not None and sha256_hex(seed) != commitment:
        findings.append(f"trial {trial_id}: the seed does not match its commitment {commitment} "
                        f"logged in event #{commitment_seq} (the seed was changed)")
        return None, findings
    return seed, findings


def _logged_units(events: list[dict[str, Any]]) -> tuple[list[tuple[int, dict[str, Any]]],
                                                         list[tuple[int, dict[str, Any]]]]:
    allocations, enrollments = [], []
    for event in events:
        if event["action"] in ALLOCATION_ACTIONS:
            allocations += [(event["seq"], a) for a in event["payload"].get("allocations", [])]
            enrollments += [(event["seq"], e) for e in event["payload"].get("enrollments", [])]
    return allocations, enrollments


_COMPARED = ("unit", "unit_key", "stratum", "stratum_sequence", "block", "arm", "probabilities",
             "method", "algorithm", "protocol_version", "enrolled_on")


def _compare_stored(record: Record, trial_id: str, events: list[dict[str, Any]]) -> tuple[int, list[str]]:
    """Stored assignments and enrollments against the logged ones, field by field."""
    findings = []
    logged, logged_enrollments = _logged_units(events)
    by_sequence = {a["sequence"]: (seq, a) for seq, a in logged}
    stored = {a["sequence"]: a for a in record.assignments if a["trial_id"] == trial_id}
    for sequence, row in sorted(stored.items()):
        if sequence not in by_sequence:
            findings.append(f"assignment {trial_id} #{sequence} ({row['unit']} {row['unit_key']}): no audit event "
                            "records it (inserted outside the audit trail)")
            continue
        event_seq, entry = by_sequence[sequence]
        for column in _COMPARED:
            if row.get(column) != entry.get(column):
                findings.append(f"assignment {trial_id} #{sequence} ({row['unit']} {row['unit_key']}): stored "
                                f"{column} {row.get(column)!r}, audit event #{event_seq} says {entry.get(column)!r}")
        if row.get("audit_seq") != event_seq:
            findings.append(f"assignment {trial_id} #{sequence}: points to audit event #{row.get('audit_seq')}, "
                            f"recorded in #{event_seq}")
    for sequence, (event_seq, entry) in sorted(by_sequence.items()):
        if sequence not in stored:
            findings.append(f"event #{event_seq}: allocation {trial_id} #{sequence} ({entry.get('unit_key')}) is "
                            "not in the assignment table (a forged or orphan event)")
    stored_enrollments = {e["sequence"]: e for e in record.enrollments if e["trial_id"] == trial_id}
    logged_by_seq = {e["sequence"]: (seq, e) for seq, e in logged_enrollments}
    for sequence, row in sorted(stored_enrollments.items()):
        if sequence not in logged_by_seq:
            findings.append(f"enrollment {trial_id} #{sequence} ({row['case_key']}): no audit event records it")
            continue
        event_seq, entry = logged_by_seq[sequence]
        for column in ("case_key", "arm", "cluster", "assignment_sequence", "case_revision", "enrolled_on",
                       "frozen_sha256"):
            if row.get(column) != entry.get(column):
                findings.append(f"enrollment {trial_id} #{sequence} ({row['case_key']}): stored {column} "
                                f"{row.get(column)!r}, audit event #{event_seq} says {entry.get(column)!r}")
    for sequence, (event_seq, entry) in sorted(logged_by_seq.items()):
        if sequence not in stored_enrollments:
            findings.append(f"event #{event_seq}: enrollment {trial_id} #{sequence} ({entry.get('case_key')}) is "
                            "not in the enrollment table (a forged or orphan event)")
        parent = by_sequence.get(entry.get("assignment_sequence"))
        if parent is None:
            findings.append(f"event #{event_seq}: enrollment {trial_id} #{sequence} points to allocation "
                            f"#{entry.get('assignment_sequence')}, which no event records")
        elif parent[1]["arm"] != entry.get("arm"):
            findings.append(f"event #{event_seq}: enrollment {trial_id} #{sequence} has arm {entry.get('arm')!r} "
                            f"but its allocation #{entry.get('assignment_sequence')} drew {parent[1]['arm']!r}")
    findings += _compare_enrollment_events(trial_id, events, stored_enrollments)
    return len(by_sequence), findings


def _compare_enrollment_events(trial_id: str, events: list[dict[str, Any]],
                               stored: dict[int, dict[str, Any]]) -> list[str]:
    """Withdrawals, crossovers and non-treatment as stored against the logged `enrollment_event`s."""
    findings = []
    logged: dict[int, list[tuple[str, str, str]]] = {}
    where: dict[int, list[int]] = {}
    for event in events:
        if event["action"] == "enrollment_event":
            p = event["payload"]
            sequence = int(p.get("enrollment_sequence") or 0)
            logged.setdefault(sequence, []).append((str(p.get("kind")), str(p.get("reason")), str(p.get("effective_on"))))
            where.setdefault(sequence, []).append(event["seq"])
    for sequence in sorted(set(logged) | {s for s, e in stored.items() if e.get("events")}):
        row = stored.get(sequence, {})
        kept = [(e["kind"], e["reason"], e["effective_on"]) for e in row.get("events", [])]
        if sorted(kept) != sorted(logged.get(sequence, [])):
            seqs = ", ".join(f"#{n}" for n in where.get(sequence, [])) or "none"
            findings.append(f"enrollment {trial_id} #{sequence}: its stored withdrawal/crossover/not-treated events "
                            f"{kept} differ from those logged (events {seqs}): {logged.get(sequence, [])}")
    return findings


def _verify_allocations(record: Record, trial_id: str, events: list[dict[str, Any]],
                        seed: str) -> tuple[int, list[str]]:
    """Re-derive every logged allocation from the registered procedure and the seed."""
    from trials import assign
    from trials.protocol import parse_protocol

    findings: list[str] = []
    n, found = _compare_stored(record, trial_id, events)
    findings += found
    texts = {v["version"]: v["text"] for v in record.protocol_versions if v["trial_id"] == trial_id}
    stored = {a["sequence"]: a for a in record.assignments if a["trial_id"] == trial_id}
    protocols: dict[int, Any] = {}
    logged, _enrollments = _logged_units(events)
    expected_sequence = 1
    stratum_counts: dict[str, int] = {}
    sequences: dict[str, list[Any]] = {}
    state: assign.MinimizationState = {}
    last_batch = 0
    batches: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    for event_seq, entry in logged:
        where = f"event #{event_seq}: allocation {trial_id} #{entry.get('sequence')} ({entry.get('unit_key')})"
        version = int(entry.get("protocol_version") or 0)
        if version not in protocols:
            if version not in texts:
                findings.append(f"{where}: protocol version {version} is not stored")
                continue
            try:
                protocols[version] = parse_protocol(texts[version], f"{trial_id} v{version}")
            except Exception as exc:  # an edited protocol text may no longer parse
                findings.append(f"{where}: protocol version {version} does not parse ({exc})")
                continue
        protocol = protocols[version]
        method = protocol.stratification.method
        if entry.get("sequence") != expected_sequence:
            findings.append(f"{where}: sequence {entry.get('sequence')} out of order, expected {expected_sequence}")
        expected_sequence = int(entry.get("sequence") or 0) + 1
        stratum = entry.get("stratum", "")
        stratum_counts[stratum] = stratum_counts.get(stratum, 0) + 1
        index = stratum_counts[stratum]
        if entry.get("stratum_sequence") != index:
            findings.append(f"{where}: stratum sequence {entry.get('stratum_sequence')}, expected {index}")
        try:
            values = dict(json.loads(stratum))
        except (ValueError, TypeError):
            findings.append(f"{where}: the stratum is not valid JSON")
            continue
        if entry.get("method") != method or entry.get("algorithm") != assign.ALGORITHM:
            findings.append(f"{where}: method/algorithm {entry.get('method')}/{entry.get('algorithm')} differ from "
                            f"the registered {method}/{assign.ALGORITHM}")
            continue
        if method == "permuted_blocks":
            cached = sequences.setdefault(stratum, [])
            if len(cached) < index:
                cached[:] = assign.permuted_blocks_sequence(seed, stratum, max(index, 2 * len(cached)),
                                                            protocol.arms, protocol.stratification.block_sizes)
            derived = cached[index - 1]
            _compare_allocation(findings, where, entry, derived, stored.get(entry.get("sequence")))
        elif method == "minimization":
            derived = assign.minimization_choice(seed, int(entry["sequence"]), state, values, protocol.arms,
                                                 protocol.stratification.minimization_probability)
            _compare_allocation(findings, where, entry, derived, stored.get(entry.get("sequence")))
            assign.minimization_add(state, values, str(entry.get("arm")))
        else:
            batch = entry.get("block")
            if not isinstance(batch, int) or batch < last_batch or batch > last_batch + 1:
                findings.append(f"{where}: batch {batch} out of order (the last batch was {last_batch})")
                continue
            last_batch = batch
            batches.setdefault(batch, []).append((event_seq, entry))
    for batch, members in batches.items():
        protocol = protocols[members[0][1]["protocol_version"]]
        derived_batch = assign.complete_allocation(seed, batch, [(e["unit_key"], e["stratum"]) for _s, e in members],
                                                   protocol.arms)
        probabilities = assign.weight_probabilities(protocol.arms)
        for event_seq, entry in members:
            where = f"event #{event_seq}: allocation {trial_id} #{entry.get('sequence')} ({entry.get('unit_key')})"
            arm, size = derived_batch[entry["unit_key"]]
            _compare_allocation(findings, where, entry, assign.Allocation(arm, batch, size, probabilities),
                                stored.get(entry.get("sequence")))
    return n, findings


def _compare_allocation(findings: list[str], where: str, entry: dict[str, Any], derived: Any,
                        row: dict[str, Any] | None) -> None:
    if entry.get("arm") != derived.arm:
        findings.append(f"{where}: logged arm {entry.get('arm')!r}, the registered procedure gives {derived.arm!r}")
    if entry.get("block") != derived.block:
        findings.append(f"{where}: logged block {entry.get('block')}, the registered procedure gives {derived.block}")
    # The block size is not in the log (it would let a reader of an open trial's log predict the
    # end of a block); the stored one is checked against the derived one.
    if row is not None and row.get("block_size") != derived.block_size:
        findings.append(f"{where}: stored block size {row.get('block_size')}, the registered procedure gives "
                        f"{derived.block_size}")
    logged = entry.get("probabilities") or {}
    if set(logged) != set(derived.probabilities) or any(
            abs(float(logged[a]) - derived.probabilities[a]) > 1e-12 for a in derived.probabilities):
        findings.append(f"{where}: logged probabilities {logged}, the registered procedure gives "
                        f"{derived.probabilities}")


def verify(session: Session, trial_id: str | None = None, expect_head: str | None = None) -> Verification:
    """`trials audit verify` against the database."""
    if trial_id is not None:
        from trials.errors import NotFound
        from trials.models import Trial

        if session.get(Trial, trial_id) is None:
            raise NotFound(f"no trial {trial_id!r} is registered (see `trials protocol list`)")
    return verify_record(record_from_db(session, trial_id), trial_id, expect_head)


def log(session: Session, trial_id: str | None = None) -> list[dict[str, Any]]:
    """The events of the log (of one trial, or all), oldest first. A closed trial's seed is in its close event."""
    query = select(AuditEvent).order_by(AuditEvent.seq)
    if trial_id is not None:
        query = query.where(AuditEvent.trial_id == trial_id)
    return [event_dict(e) for e in session.scalars(query)]


# --- bundles ------------------------------------------------------------------------------------

BUNDLE_FILES = ("protocol_versions.json", "assignments.json", "enrollments.json", "audit_events.json",
                "trial.json")


def export_bundle(session: Session, trial_id: str, path: Any, include_seed: bool = False) -> dict[str, Any]:
    """Write a zip an auditor can verify with no database; returns its manifest.

    The bundle holds the trial's protocol versions, assignments, enrollments (with their
    withdrawal/crossover events) and the whole hash chain, other trials' events reduced to
    their hashes. An open trial's seed is included only with include_seed, and that export is
    itself recorded as an audit event first (so call this inside write_session then).
    """
    import zipfile

    from trials import __version__
    from trials.errors import NotFound
    from trials.models import Trial

    trial = session.get(Trial, trial_id)
    if trial is None:
        raise NotFound(f"no trial {trial_id!r} is registered (see `trials protocol list`)")
    with_seed = trial.closed_at is not None or include_seed
    if include_seed and trial.closed_at is None:
        record_event(session, "bundle_exported", trial_id=trial_id, payload={"include_seed": True})
    record = record_from_db(session, trial_id, redact_other_trials=True, include_seed=with_seed)
    if not with_seed:  # concealment: block sizes of an open trial would reveal the ends of blocks
        for row in record.assignments:
            row["block_size"] = None
    contents = {
        "protocol_versions.json": record.protocol_versions,
        "assignments.json": record.assignments,
        "enrollments.json": record.enrollments,
        "audit_events.json": record.events,
        "trial.json": {"id": trial_id, **record.trials[trial_id]},
    }
    encoded = {name: (json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
               for name, value in contents.items()}
    manifest = {
        "format": BUNDLE_FORMAT, "trial_id": trial_id, "software_version": __version__,
        "exported_at": format_timestamp(utcnow()), "seed_included": with_seed,
        "head": {"seq": record.events[-1]["seq"], "hash": record.events[-1]["hash"]} if record.events else None,
        "counts": {"events": len(record.events), "assignments": len(record.assignments),
                   "enrollments": len(record.enrollments), "protocol_versions": len(record.protocol_versions)},
        "files": {name: sha256_hex(data) for name, data in encoded.items()},
    }
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        for name, data in encoded.items():
            archive.writestr(name, data)
    return manifest


def record_from_bundle(path: Any) -> tuple[Record, str]:
    """Read a bundle back; file hashes are checked against the manifest (problems go to the record)."""
    import zipfile

    from trials.errors import InputError

    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise InputError([f"{path}: not a trials audit bundle ({exc})"]) from None
    with archive:
        names = set(archive.namelist())
        missing = [n for n in ("manifest.json", *BUNDLE_FILES) if n not in names]
        if missing:
            raise InputError([f"{path}: not a trials audit bundle (missing {', '.join(missing)})"])
        manifest = json.loads(archive.read("manifest.json"))
        if manifest.get("format") != BUNDLE_FORMAT:
            raise InputError([f"{path}: unknown bundle format {manifest.get('format')!r}"])
        problems = []
        data = {}
        for name in BUNDLE_FILES:
            raw = archive.read(name)
            if sha256_hex(raw) != manifest["files"].get(name):
                problems.append(f"bundle file {name}: does not match its SHA-256 in the manifest (edited)")
            data[name] = json.loads(raw)
    for enrollment in data["enrollments.json"]:  # never trust a stored hash: recompute it
        enrollment["frozen_sha256"] = sha256_hex(canonical_json(enrollment.get("frozen")))
    trial = data["trial.json"]
    trial_id = str(manifest["trial_id"])
    record = Record(
        events=data["audit_events.json"], protocol_versions=data["protocol_versions.json"],
        trials={trial_id: {k: v for k, v in trial.items() if k != "id"}}, assignments=data["assignments.json"],
        enrollments=data["enrollments.json"], source=str(path), problems=problems,
    )
    return record, trial_id


def verify_bundle(path: Any, expect_head: str | None = None) -> Verification:
    """`trials audit verify --bundle FILE`: the same checks, no database."""
    record, trial_id = record_from_bundle(path)
    return verify_record(record, trial_id, expect_head)
