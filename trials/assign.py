"""The assignment engine: stratified, cluster and rolling randomization an auditor can re-derive.

Every allocation is a pure function of (registered seed, protocol version, algorithm version,
the ordered list of randomized units with their stratum values frozen at randomization). The
randomness is a named generator, `hmac-sha256-v1`: an HMAC-SHA256 counter stream keyed by the
trial's seed and split by a label per stratum and block (see `Stream` and docs/assignment.md,
which describes it precisely enough to re-implement).

The module has two layers:
- pure allocation functions (`Stream`, `permuted_block`, `permuted_blocks_allocation`,
  `complete_counts`, `complete_allocation`, `minimization_choice`), used by the database
  layer, by `trials audit verify` to re-derive every allocation, and by the property tests;
- the database layer (`assign_all`, `enroll`, `enroll_many`, `close`, `record_enrollment_event`,
  `export_assignments`), which writes every change through `trials.audit.record_event`.

Re-running the registered procedure with fresh randomness (randomization inference) is
`trials.design`. Nothing here imports numpy: `trials enroll` stays light.
"""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import hmac
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import islice
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, bindparam, func, insert, select
from sqlalchemy import case as sql_case
from sqlalchemy.orm import Session

from trials.audit import ChainHead, canonical_json, chain_head_columns, record_event, sha256_hex
from trials.cases.pool import ineligibility_reason
from trials.errors import InputError, NotFound, Problem, Refused
from trials.models import (
    Assignment,
    Case,
    Enrollment,
    EnrollmentEvent,
    ProtocolVersion,
    Trial,
    utcnow,
)
from trials.protocol import Protocol, parse_protocol
from trials.strata import case_stratum, cluster_stratum, stratum_key, stratum_label, stratum_values

ALGORITHM = "hmac-sha256-v1"
"""The version of the generator and of every allocation rule below; stored on each assignment."""

ENROLLMENT_EVENT_KINDS = ("withdrawn", "crossed_over", "not_treated")
CLUSTER_UNITS = ("caseworker", "team")

_TWO_64 = 1 << 64


# --- the generator ---------------------------------------------------------------------------


class Stream:
    """`hmac-sha256-v1`: the random stream of one label under one seed.

    Block c (c = 0, 1, 2, ...) is HMAC-SHA256(key = UTF-8 seed, message = UTF-8 label, a 0x00
    byte, c as 8-byte big-endian). The blocks are concatenated and read as successive 64-bit
    big-endian unsigned integers (four per block).
    """

    def __init__(self, seed: str, label: str):
        self._key = seed.encode("utf-8")
        self._label = label.encode("utf-8") + b"\x00"
        self._counter = 0
        self._buffer: list[int] = []

    def next_u64(self) -> int:
        if not self._buffer:
            block = hmac.new(self._key, self._label + self._counter.to_bytes(8, "big"), hashlib.sha256).digest()
            self._counter += 1
            self._buffer = [int.from_bytes(block[i:i + 8], "big") for i in (24, 16, 8, 0)]
        return self._buffer.pop()

    def uniform_int(self, n: int) -> int:
        """A uniform integer in [0, n), by rejection: no modulo bias."""
        if n < 1:
            raise ValueError("n must be positive")
        limit = _TWO_64 - (_TWO_64 % n)
        while True:
            value = self.next_u64()
            if value < limit:
                return value % n

    def uniform01(self) -> float:
        """A uniform real in [0, 1): the top 53 bits of one integer, divided by 2**53."""
        return (self.next_u64() >> 11) / float(1 << 53)

    def bernoulli(self, p: Fraction) -> bool:
        """True with probability exactly p (a fraction in [0, 1])."""
        if p <= 0:
            return False
        if p >= 1:
            return True
        return self.uniform_int(p.denominator) < p.numerator

    def shuffle(self, items: list[Any]) -> list[Any]:
        """Fisher-Yates from the end: for i = len-1 down to 1 swap items[i] and items[uniform_int(i+1)]."""
        for i in range(len(items) - 1, 0, -1):
            j = self.uniform_int(i + 1)
            items[i], items[j] = items[j], items[i]
        return items


def order_key(seed: str, unit_key: str) -> str:
    """The keyed hash that orders a batch of units (so input row order never matters)."""
    return order_digest(seed.encode("utf-8"), unit_key).hex()


def order_digest(seed: bytes, unit_key: str) -> bytes:
    """`order_key` as raw bytes, which sort exactly as their hex does (one-shot HMAC: a cohort
    orders a million units)."""
    return hmac.digest(seed, b"order\n" + unit_key.encode("utf-8"), "sha256")


def weight_probabilities(arms: Mapping[str, int]) -> dict[str, float]:
    total = sum(arms.values())
    return {arm: weight / total for arm, weight in arms.items()}


@dataclass(frozen=True)
class Allocation:
    """The arm one unit drew, with its block and its exact probability of every arm."""

    arm: str
    block: int | None
    block_size: int | None
    probabilities: dict[str, float]


# --- permuted blocks -------------------------------------------------------------------------


def arm_pattern(arms: Mapping[str, int], size: int) -> list[str]:
    """The unshuffled content of a block: arms in protocol order, each size*w/W times."""
    total = sum(arms.values())
    if size % total:
        raise ValueError(f"block size {size} is not a multiple of the sum of the weights ({total})")
    return [arm for arm, weight in arms.items() for _ in range(size * weight // total)]


def _block_label(stratum: str, block: int) -> str:
    return f"permuted_blocks\n{stratum}\n{block}"


def block_size(seed: str, stratum: str, block: int, block_sizes: Sequence[int]) -> int:
    """The size of block `block` (1-based) of a stratum: the first draw of its stream."""
    return block_sizes[Stream(seed, _block_label(stratum, block)).uniform_int(len(block_sizes))]


def permuted_block(seed: str, stratum: str, block: int, arms: Mapping[str, int],
                   block_sizes: Sequence[int]) -> list[str]:
    """The arms of block `block` of a stratum, in order: size drawn, then the pattern shuffled."""
    stream = Stream(seed, _block_label(stratum, block))
    size = block_sizes[stream.uniform_int(len(block_sizes))]
    return stream.shuffle(arm_pattern(arms, size))


def permuted_blocks_allocation(seed: str, stratum: str, index: int, arms: Mapping[str, int],
                               block_sizes: Sequence[int]) -> Allocation:
    """The allocation of the `index`-th (1-based) unit randomized in a stratum."""
    if index < 1:
        raise ValueError("index is 1-based")
    start, block = 0, 1
    while True:
        size = block_size(seed, stratum, block, block_sizes)
        if index <= start + size:
            arms_in_block = permuted_block(seed, stratum, block, arms, block_sizes)
            return Allocation(arms_in_block[index - start - 1], block, size, weight_probabilities(arms))
        start += size
        block += 1


def permuted_blocks_range(seed: str, stratum: str, first: int, count: int, arms: Mapping[str, int],
                          block_sizes: Sequence[int]) -> list[Allocation]:
    """Allocations `first` .. `first + count - 1` (1-based) of a stratum in one walk over its blocks
    (the same as `permuted_blocks_allocation` for each index, without starting over each time)."""
    probabilities = weight_probabilities(arms)
    start, block = 0, 1
    while first > start + (size := block_size(seed, stratum, block, block_sizes)):
        start += size
        block += 1
    out: list[Allocation] = []
    index = first
    while len(out) < count:
        arms_in_block = permuted_block(seed, stratum, block, arms, block_sizes)
        end = start + len(arms_in_block)
        while index <= end and len(out) < count:
            out.append(Allocation(arms_in_block[index - start - 1], block, len(arms_in_block), probabilities))
            index += 1
        start, block = end, block + 1
    return out


def permuted_blocks_sequence(seed: str, stratum: str, n: int, arms: Mapping[str, int],
                             block_sizes: Sequence[int]) -> list[Allocation]:
    """The first n allocations of a stratum (the same as `permuted_blocks_allocation` for 1..n)."""
    out: list[Allocation] = []
    probabilities = weight_probabilities(arms)
    block = 1
    while len(out) < n:
        arms_in_block = permuted_block(seed, stratum, block, arms, block_sizes)
        out.extend(Allocation(arm, block, len(arms_in_block), probabilities) for arm in arms_in_block)
        block += 1
    return out[:n]


# --- complete randomization of a whole cohort --------------------------------------------------


def _complete_label(batch: int, part: str) -> str:
    return f"complete\n{batch}\n{part}"


def complete_counts(strata_sizes: Mapping[str, int], arms: Mapping[str, int],
                    stream: Stream | None = None, *, draw: Any = None) -> dict[str, dict[str, int]]:
    """How many units of each stratum go to each arm, misfits balanced across strata.

    Each stratum s of n_s units gets floor(n_s*w_a/W) units of arm a; the fractional parts
    f[s][a] (they sum to the stratum's whole number of misfits) are rounded to 0/1 by
    bipartite dependent rounding (Gandhi, Khuller, Parthasarathy, Srinivasan, J. ACM 2006)
    over the strata x arms graph. Hence the stated bound: every arm gets floor or ceil of
    n_s*w_a/W in every stratum AND floor or ceil of N*w_a/W overall, and every unit's
    probability of arm a is exactly w_a/W. Strata are processed in sorted key order, arms in
    protocol order; `draw(p)` (default `stream.bernoulli`) decides each rounding step.
    """
    if draw is None:
        if stream is None:
            raise ValueError("give a stream or a draw function")
        draw = stream.bernoulli
    total = sum(arms.values())
    arm_names = list(arms)
    strata = sorted(strata_sizes)
    counts = {s: {a: strata_sizes[s] * arms[a] // total for a in arm_names} for s in strata}
    x: dict[tuple[str, str], Fraction] = {}
    for s in strata:
        for a in arm_names:
            frac = Fraction(strata_sizes[s] * arms[a], total) - counts[s][a]
            if frac:
                x[(s, a)] = frac
    vertices: list[tuple[str, str]] = [("s", s) for s in strata] + [("a", a) for a in arm_names]

    def edges_at(vertex: tuple[str, str]) -> list[tuple[str, str]]:
        kind, name = vertex
        if kind == "s":
            return [(name, a) for a in arm_names if (name, a) in x]
        return [(s, name) for s in strata if (s, name) in x]

    def other(edge: tuple[str, str], vertex: tuple[str, str]) -> tuple[str, str]:
        return ("a", edge[1]) if vertex[0] == "s" else ("s", edge[0])

    while x:
        degrees = {v: len(edges_at(v)) for v in vertices}
        start = next((v for v in vertices if degrees[v] == 1), None) or next(v for v in vertices if degrees[v])
        path = [start]
        walk: list[tuple[str, str]] = []
        while True:
            here = path[-1]
            candidates = [e for e in edges_at(here) if not walk or e != walk[-1]]
            if not candidates:
                break
            edge = candidates[0]
            there = other(edge, here)
            walk.append(edge)
            if there in path:
                walk = walk[path.index(there):]
                break
            path.append(there)
        odd, even = walk[0::2], walk[1::2]
        alpha = min([1 - x[e] for e in odd] + [x[e] for e in even])
        beta = min([x[e] for e in odd] + [1 - x[e] for e in even])
        if draw(beta / (alpha + beta)):
            step_odd, step_even = alpha, -alpha
        else:
            step_odd, step_even = -beta, beta
        for edges, step in ((odd, step_odd), (even, step_even)):
            for e in edges:
                value = x[e] + step
                if value == 1:
                    counts[e[0]][e[1]] += 1
                    del x[e]
                elif value == 0:
                    del x[e]
                else:
                    x[e] = value
    return counts


def complete_allocation(seed: str, batch: int, units: Sequence[tuple[str, str]],
                        arms: Mapping[str, int]) -> dict[str, tuple[str, int]]:
    """Stratified complete randomization of one batch of (unit_key, stratum) pairs.

    Returns unit_key -> (arm, stratum size in the batch). Units are ordered within their
    stratum by `order_key`, so the mapping does not depend on the order of `units`.
    """
    by_stratum: dict[str, list[str]] = defaultdict(list)
    for unit_key, stratum in units:
        by_stratum[stratum].append(unit_key)
    sizes = {s: len(keys) for s, keys in by_stratum.items()}
    counts = complete_counts(sizes, arms, Stream(seed, _complete_label(batch, "misfits")))
    out: dict[str, tuple[str, int]] = {}
    for stratum in sorted(by_stratum):
        pool = [arm for arm in arms for _ in range(counts[stratum][arm])]
        Stream(seed, _complete_label(batch, stratum)).shuffle(pool)
        ordered = sorted(by_stratum[stratum], key=lambda k: order_key(seed, k))
        for unit_key, arm in zip(ordered, pool, strict=True):
            out[unit_key] = (arm, sizes[stratum])
    return out


# --- minimization ------------------------------------------------------------------------------


MinimizationState = dict[str, dict[str, Counter[str]]]
"""factor -> factor value -> arm -> number of units already allocated."""


def minimization_probabilities(state: MinimizationState, values: Mapping[str, str], arms: Mapping[str, int],
                               probability: float) -> dict[str, float]:
    """Pocock-Simon with weights: the exact probability of each arm for the next unit.

    For each candidate arm, the unit is added hypothetically; for each factor the imbalance
    at the unit's level is the range of count/weight over the arms; G(arm) sums them. The
    arms with the least G share `probability` in proportion to their weights, the others
    share the rest; if every arm ties, the probabilities are the weights'.
    """
    scores: dict[str, float] = {}
    for candidate in arms:
        score = 0.0
        for factor, value in values.items():
            level = state.get(factor, {}).get(value, Counter())
            ratios = [(level[arm] + (1 if arm == candidate else 0)) / weight for arm, weight in arms.items()]
            score += max(ratios) - min(ratios)
        scores[candidate] = score
    best = min(scores.values())
    tied = [arm for arm in arms if scores[arm] <= best + 1e-12]
    if len(tied) == len(arms):
        return weight_probabilities(arms)
    tied_weight = sum(arms[a] for a in tied)
    rest_weight = sum(w for a, w in arms.items() if a not in tied)
    return {arm: (probability * weight / tied_weight if arm in tied else (1 - probability) * weight / rest_weight)
            for arm, weight in arms.items()}


def minimization_choice(seed: str, sequence: int, state: MinimizationState, values: Mapping[str, str],
                        arms: Mapping[str, int], probability: float) -> Allocation:
    """The arm of the unit with trial-wide `sequence`: one uniform draw of stream `minimization\\n<seq>`."""
    probabilities = minimization_probabilities(state, values, arms, probability)
    u = Stream(seed, f"minimization\n{sequence}").uniform01()
    return Allocation(_pick(probabilities, u), None, None, probabilities)


def _pick(probabilities: Mapping[str, float], u: float) -> str:
    cumulative = 0.0
    arm = ""
    for arm, p in probabilities.items():
        cumulative += p
        if u < cumulative:
            return arm
    return arm


def minimization_add(state: MinimizationState, values: Mapping[str, str], arm: str) -> None:
    for factor, value in values.items():
        state.setdefault(factor, {}).setdefault(value, Counter())[arm] += 1


# --- imbalance ------------------------------------------------------------------------------


def imbalance(counts: Mapping[str, int], arms: Mapping[str, int]) -> float:
    """max(n_a/w_a) - min(n_a/w_a): |n_treatment - n_control| for 1:1; at most L/W inside blocks of L."""
    ratios = [counts.get(arm, 0) / weight for arm, weight in arms.items()]
    return max(ratios) - min(ratios)


# --- the database layer ---------------------------------------------------------------------


@dataclass
class TrialContext:
    trial: Trial
    protocol: Protocol
    version: int


# The per-enrollment queries are built once, with bound parameters: building a statement costs
# more CPU than running it, and rolling enrollment runs them once per case.
_TRIAL_AND_LATEST_PROTOCOL = (
    select(Trial, ProtocolVersion.version, ProtocolVersion.sha256, ProtocolVersion.text)
    .join(ProtocolVersion, ProtocolVersion.trial_id == Trial.id).where(Trial.id == bindparam("trial_id"))
    .order_by(ProtocolVersion.version.desc()).limit(1)
)


def trial_context(session: Session, trial_id: str, *, for_writing: bool = True) -> TrialContext:
    """The trial with its latest protocol version, in one query (rolling enrollment runs it per case)."""
    found = session.execute(_TRIAL_AND_LATEST_PROTOCOL, {"trial_id": trial_id}).first()
    if found is None:
        raise NotFound(f"no trial {trial_id!r} is registered (see `trials protocol list`)")
    trial, version, sha256, text = found
    if for_writing and trial.closed_at is not None:
        raise Refused(f"trial {trial_id!r} was closed on {trial.closed_at:%Y-%m-%d}; enrollment is over")
    protocol = _PARSED.get(sha256)
    if protocol is None or protocol.text != text:
        protocol = parse_protocol(text, f"{trial_id} v{version}")
        _PARSED[sha256] = protocol
    return TrialContext(trial, protocol, version)


_PARSED: dict[str, Protocol] = {}
"""Parsed protocol texts by SHA-256 (rolling enrollment parses each text once per process)."""


def frozen_case(case: Any) -> dict[str, Any]:
    """The categorisation and covariates of a case as they are now (frozen at enrollment)."""
    return {
        "primary_barrier": case.primary_barrier,
        "barriers": list(case.barriers or []),
        "months_unemployed": case.months_unemployed,
        "benefit_type": case.benefit_type,
        "caseworker": case.caseworker,
        "team": case.team,
        "as_of": case.as_of.isoformat() if case.as_of else None,
        "covariates": dict(case.covariates or {}),
    }


def ineligibility(protocol: Protocol, case: Any) -> str | None:
    """Why the protocol's filters exclude a case, or None if it is eligible."""
    reason = ineligibility_reason(protocol.eligibility, case)
    if reason is not None:
        return reason
    if protocol.unit in CLUSTER_UNITS and not getattr(case, protocol.unit):
        return f"the case has no {protocol.unit} (the unit of randomization)"
    return None


def _other_active_trials(session: Session, trial_id: str) -> dict[int, str]:
    """case id -> the (first) other open trial it is enrolled in."""
    rows = session.execute(
        select(Enrollment.case_id, Enrollment.trial_id)
        .join(Trial, Trial.id == Enrollment.trial_id)
        .where(Enrollment.trial_id != trial_id, Trial.closed_at.is_(None))
        .order_by(Enrollment.trial_id)
    ).all()
    out: dict[int, str] = {}
    for case_id, other in rows:
        out.setdefault(case_id, other)
    return out


def _next_sequence(session: Session, column: Any, trial_id: str) -> int:
    table = column.class_
    return int(session.scalar(select(func.coalesce(func.max(column), 0)).where(table.trial_id == trial_id)) or 0) + 1


def _stratum_counts(session: Session, trial_id: str, only: str | None = None) -> Counter[str]:
    query = select(Assignment.stratum, func.count()).where(Assignment.trial_id == trial_id)
    if only is not None:
        query = query.where(Assignment.stratum == only)
    rows = session.execute(query.group_by(Assignment.stratum)).all()
    return Counter({stratum: int(n) for stratum, n in rows})


def _minimization_state(session: Session, trial_id: str) -> MinimizationState:
    state: MinimizationState = {}
    for stratum, arm in session.execute(
        select(Assignment.stratum, Assignment.arm).where(Assignment.trial_id == trial_id).order_by(Assignment.sequence)
    ):
        minimization_add(state, stratum_values(stratum), arm)
    return state


def _allocation_payload(a: NewAssignment) -> dict[str, Any]:
    return {
        "sequence": a.sequence, "unit": a.unit, "unit_key": a.unit_key, "stratum": a.stratum,
        "stratum_sequence": a.stratum_sequence, "block": a.block, "arm": a.arm,
        "probabilities": a.probabilities, "method": a.method, "algorithm": a.algorithm,
        "protocol_version": a.protocol_version, "enrolled_on": a.enrolled_on.isoformat(),
    }


def _enrollment_payload(e: NewEnrollment, case_key: str, assignment_sequence: int) -> dict[str, Any]:
    return {
        "sequence": e.sequence, "case_key": case_key, "arm": e.arm, "cluster": e.cluster,
        "assignment_sequence": assignment_sequence, "case_revision": e.case_revision,
        "enrolled_on": e.enrolled_on.isoformat(), "frozen_sha256": e.frozen_sha256,
    }


EVENT_PART = 20_000


@dataclass(slots=True)
class NewAssignment:
    """An assignment about to be inserted: a plain record, because a whole cohort can be a
    million of them and ORM objects would cost minutes (`_store` bulk-inserts `row()`)."""

    trial_id: str
    protocol_version: int
    unit: str
    unit_key: str
    case_id: int | None
    sequence: int
    stratum: str
    stratum_label: str
    stratum_sequence: int
    arm: str
    method: str
    algorithm: str
    block: int | None
    block_size: int | None
    probabilities: dict[str, float]
    enrolled_on: dt.date
    assigned_at: dt.datetime
    audit_seq: int | None = None
    id: int | None = None

    COLUMNS = ("trial_id", "protocol_version", "unit", "unit_key", "case_id", "sequence", "stratum", "stratum_label",
               "stratum_sequence", "arm", "method", "algorithm", "block", "block_size", "probabilities",
               "enrolled_on", "assigned_at", "audit_seq")

    def row(self) -> tuple[Any, ...]:
        return (self.trial_id, self.protocol_version, self.unit, self.unit_key, self.case_id, self.sequence,
                self.stratum, self.stratum_label, self.stratum_sequence, self.arm, self.method, self.algorithm,
                self.block, self.block_size, self.probabilities, self.enrolled_on, self.assigned_at, self.audit_seq)


@dataclass(slots=True)
class NewEnrollment:
    """An enrollment about to be inserted; `assignment` is its own or its cluster's assignment.
    `frozen` is the frozen case as its column binds it (see `_Candidate`)."""

    trial_id: str
    case_id: int
    arm: str
    cluster: str | None
    sequence: int
    case_revision: int
    frozen: Any
    frozen_sha256: str
    enrolled_on: dt.date
    enrolled_at: dt.datetime
    assignment: Any = None

    COLUMNS = ("trial_id", "case_id", "assignment_id", "arm", "cluster", "sequence", "case_revision", "frozen",
               "enrolled_on", "enrolled_at")

    def row(self) -> tuple[Any, ...]:
        return (self.trial_id, self.case_id, self.assignment.id, self.arm, self.cluster, self.sequence,
                self.case_revision, self.frozen, self.enrolled_on, self.enrolled_at)


class _Candidate(NamedTuple):
    """A case to enroll, reduced to what enrolling it needs: a plain tuple, because a whole
    cohort holds a million of them. `frozen` is `frozen_case` already converted by the
    enrollment column's own type (what an insert would send), `frozen_sha256` the hash the
    audit payload carries, `order` its `order_digest`, `values` and `stratum` its stratum (case
    trials; one shared dict and key per stratum)."""

    order: bytes
    id: int
    case_key: str
    revision: int
    caseworker: str | None
    team: str | None
    values: dict[str, str]
    stratum: str
    frozen: Any
    frozen_sha256: str


def _candidates(session: Session, ctx: TrialContext) -> Callable[[Any], _Candidate]:
    """A function from a case (ORM object or plain row) to its `_Candidate`; strata are shared."""
    protocol = ctx.protocol
    seed = ctx.trial.seed.encode("utf-8")
    dialect = session.get_bind().dialect
    bind = cast(Table, Enrollment.__table__).c.frozen.type.dialect_impl(dialect).bind_processor(dialect)
    strata: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], str]] = {}

    def candidate(case: Any) -> _Candidate:
        frozen = frozen_case(case)
        values = case_stratum(protocol, frozen) if protocol.unit == "case" else {}
        shared = strata.get(tuple(values.items()))
        if shared is None:
            shared = strata[tuple(values.items())] = (values, stratum_key(values))
        values, key = shared
        return _Candidate(order_digest(seed, case.case_key), case.id, case.case_key, case.revision, case.caseworker,
                          case.team, values, key, bind(frozen) if bind is not None else frozen,
                          sha256_hex(canonical_json(frozen)))

    return candidate


@dataclass(slots=True)
class _Unit:
    unit_key: str
    values: dict[str, str]
    case: Any = None
    stratum: str = ""

    def __post_init__(self) -> None:
        self.stratum = self.stratum or stratum_key(self.values)


@dataclass(frozen=True)
class _RollingPosition:
    """Where one rolling enrollment lands: the trial's last assignment and enrollment sequence
    numbers, how many units the stratum holds, and the audit chain's head."""

    last_assignment: int
    in_stratum: int
    last_enrollment: int
    audit_head: ChainHead


_ROLLING_POSITION = select(
    func.coalesce(func.max(Assignment.sequence), 0),
    func.coalesce(func.sum(sql_case((Assignment.stratum == bindparam("stratum"), 1), else_=0)), 0),
    select(func.coalesce(func.max(Enrollment.sequence), 0))
    .where(Enrollment.trial_id == bindparam("trial_id")).scalar_subquery(),
    *chain_head_columns(),
).where(Assignment.trial_id == bindparam("trial_id"))


def _rolling_position(session: Session, trial_id: str, stratum: str) -> _RollingPosition:
    """One query for everything a rolling enrollment counts (read under the write lock)."""
    last, in_stratum, enrolled, head_seq, head_hash = session.execute(
        _ROLLING_POSITION, {"trial_id": trial_id, "stratum": stratum}).one()
    return _RollingPosition(int(last), int(in_stratum), int(enrolled), ChainHead(int(head_seq), head_hash))


def _allocate(session: Session, ctx: TrialContext, units: list[_Unit], enrolled_on: dt.date,
              assigned_at: dt.datetime, rolling: _RollingPosition | None = None) -> list[NewAssignment]:
    """Randomize units (already in their enrollment order) with the protocol's method."""
    return list(_allocations(session, ctx, units, enrolled_on, assigned_at, rolling))


def _allocations(session: Session, ctx: TrialContext, units: list[_Unit], enrolled_on: dt.date,
                 assigned_at: dt.datetime, rolling: _RollingPosition | None = None) -> Iterator[NewAssignment]:
    """`_allocate` one unit at a time, so a whole cohort is stored part by part; the state it
    continues (sequence, stratum counts, batch) is read before the first unit is yielded."""
    protocol, trial = ctx.protocol, ctx.trial
    method = protocol.stratification.method
    keys = {u.stratum for u in units}
    if rolling is not None:  # one unit of rolling enrollment: the caller has read where it lands
        seq, done = rolling.last_assignment + 1, Counter({next(iter(keys)): rolling.in_stratum})
    else:
        seq = _next_sequence(session, Assignment.sequence, trial.id)
        done = _stratum_counts(session, trial.id)
    complete: dict[str, tuple[str, int]] = {}
    batch = None
    state: MinimizationState = {}
    if method == "complete":
        batch = int(session.scalar(select(func.coalesce(func.max(Assignment.block), 0)).where(
            Assignment.trial_id == trial.id)) or 0) + 1
        complete = complete_allocation(trial.seed, batch, [(u.unit_key, u.stratum) for u in units],
                                       protocol.arms)
    elif method == "minimization":
        state = _minimization_state(session, trial.id)
    planned: dict[str, list[Allocation]] = {}
    if method == "permuted_blocks":
        wanted = Counter(u.stratum for u in units)
        for key, count in wanted.items():
            planned[key] = permuted_blocks_range(trial.seed, key, done[key] + 1, count, protocol.arms,
                                                 protocol.stratification.block_sizes)[::-1]
    # One string object per stratum, not one per unit (a million units share a few dozen strata).
    interned: dict[str, str] = {}
    labels: dict[str, str] = {}
    for unit in units:
        key = interned.setdefault(unit.stratum, unit.stratum)
        label = labels.get(key) or labels.setdefault(key, stratum_label(unit.values))
        done[key] += 1
        if method == "permuted_blocks":
            allocation = planned[key].pop()
        elif method == "complete":
            arm, size = complete[unit.unit_key]
            allocation = Allocation(arm, batch, size, weight_probabilities(protocol.arms))
        else:
            allocation = minimization_choice(trial.seed, seq, state, unit.values, protocol.arms,
                                             protocol.stratification.minimization_probability)
            minimization_add(state, unit.values, allocation.arm)
        yield NewAssignment(
            trial_id=trial.id, protocol_version=ctx.version, unit=protocol.unit, unit_key=unit.unit_key,
            case_id=unit.case.id if unit.case is not None and protocol.unit == "case" else None,
            sequence=seq, stratum=key, stratum_label=label, stratum_sequence=done[key],
            arm=allocation.arm, method=method, algorithm=ALGORITHM, block=allocation.block,
            block_size=allocation.block_size, probabilities=allocation.probabilities, enrolled_on=enrolled_on,
            assigned_at=assigned_at,
        )
        seq += 1


@dataclass
class AssignResult:
    """What `assign_all` did (or, with dry_run, would do: never which arm)."""

    trial_id: str
    dry_run: bool
    unit: str
    method: str
    randomized: int
    enrolled: int
    by_arm: dict[str, int]
    strata: dict[str, int]
    too_small: list[str]
    skipped: dict[str, int]
    overlapping: dict[str, int]
    audit_seq: int | None = None


CASE_COLUMNS = (Case.id, Case.case_key, Case.id_kind, Case.primary_barrier, Case.barriers, Case.months_unemployed,
                Case.benefit_type, Case.caseworker, Case.team, Case.as_of, Case.covariates, Case.revision)


def _eligible_cases(session: Session, ctx: TrialContext) -> tuple[list[_Candidate], dict[str, int], dict[str, int]]:
    """Cases not yet enrolled in this trial that the protocol admits, and why others are not."""
    enrolled = set(session.scalars(select(Enrollment.case_id).where(Enrollment.trial_id == ctx.trial.id)))
    elsewhere = {} if ctx.protocol.allow_overlap else _other_active_trials(session, ctx.trial.id)
    skipped: Counter[str] = Counter()
    overlapping: Counter[str] = Counter()
    eligible: list[_Candidate] = []
    candidate = _candidates(session, ctx)
    # Plain rows (a Core query, not the ORM's loading) read in batches and kept as candidates: a
    # whole cohort can be a million cases.
    rows = session.connection().execute(select(*CASE_COLUMNS).order_by(Case.case_key).execution_options(yield_per=5000))
    for case in rows:
        if case.id in enrolled:
            continue
        reason = ineligibility(ctx.protocol, case)
        if reason is not None:
            skipped[_reason_kind(reason)] += 1
        elif case.id in elsewhere:
            overlapping[elsewhere[case.id]] += 1
        else:
            eligible.append(candidate(case))
    return eligible, dict(skipped), dict(overlapping)


def _reason_kind(reason: str) -> str:
    for kind in ("benefit type", "primary barrier", "below the minimum", "above the maximum", "team", "the case has no"):
        if kind in reason:
            return {"below the minimum": "months below minimum", "above the maximum": "months above maximum",
                    "the case has no": "no cluster"}.get(kind, kind)
    return "other"


def _cluster_units(ctx: TrialContext, cases: list[_Candidate], already: set[str]) -> list[_Unit]:
    unit = ctx.protocol.unit
    members: dict[str, list[_Candidate]] = defaultdict(list)
    for case in cases:
        members[str(getattr(case, unit))].append(case)
    units = []
    for name, group in members.items():
        if name in already:
            continue
        teams = Counter(c.team for c in group if c.team)
        team = name if unit == "team" else (min(teams, key=lambda t: (-teams[t], t)) if teams else None)
        units.append(_Unit(name, cluster_stratum(ctx.protocol, len(group), team)))
    return units


def assign_all(session: Session, trial_id: str, enrolled_on: dt.date | None = None,
               dry_run: bool = False) -> AssignResult:
    """Randomize every eligible, not yet enrolled case (or cluster) of a trial in this transaction.

    Units are ordered by `order_key` (a keyed hash of their key), so the result does not depend
    on the order cases were imported. In a cluster trial the clusters not yet randomized are
    randomized first, then every eligible case is enrolled into its cluster's arm.
    """
    with _cycle_collection_paused(), _sqlite_page_cache(session):
        ctx = trial_context(session, trial_id)
        protocol, trial = ctx.protocol, ctx.trial
        enrolled_on = enrolled_on or dt.date.today()
        cases, skipped, overlapping = _eligible_cases(session, ctx)
        seed = trial.seed.encode("utf-8")
        if protocol.unit == "case":
            cases.sort(key=lambda c: c.order)
            units = [_Unit(c.case_key, c.values, c, c.stratum) for c in cases]
        else:
            already = set(session.scalars(select(Assignment.unit_key).where(Assignment.trial_id == trial_id)))
            units = _cluster_units(ctx, cases, already)
            units.sort(key=lambda u: order_digest(seed, u.unit_key))
        per_stratum = Counter(u.stratum for u in units)
        values_of = {u.stratum: u.values for u in units}
        strata = Counter({stratum_label(values_of[key]): n for key, n in per_stratum.items()})
        from trials.strata import stratum_sizes

        too_small = [s.label for s in stratum_sizes(protocol, [u.values for u in units]) if s.too_small]
        result = AssignResult(trial_id, dry_run, protocol.unit, protocol.stratification.method, len(units), len(cases),
                              {}, dict(strata), too_small, skipped, overlapping)
        if dry_run or not cases:
            return result
        # One `trial_assigned` event per part of at most EVENT_PART units, all in this transaction:
        # a million-case cohort would otherwise be one event of hundreds of megabytes. Case trials
        # keep enrollment i beside assignment i; a cluster trial's few clusters are all in part 1.
        # Each part is allocated, logged and stored before the next is made, so no more than one
        # part's rows and payload are held at once.
        by_arm: Counter[str] = Counter()
        parts = max(1, -(-len(cases) // EVENT_PART))
        for part, (assignments, enrollments) in enumerate(_parts(session, ctx, units, cases, enrolled_on)):
            by_arm.update(e.arm for e, _k, _s in enrollments)
            event = record_event(session, "trial_assigned", trial_id=trial_id, payload={
                "protocol_version": ctx.version, "algorithm": ALGORITHM, "method": protocol.stratification.method,
                "enrolled_on": enrolled_on.isoformat(), "part": part + 1, "parts": parts,
                "allocations": [_allocation_payload(a) for a in assignments],
                "enrollments": [_enrollment_payload(e, k, s) for e, k, s in enrollments],
            })
            _store(session, assignments, enrollments, event.seq)
            result.audit_seq = event.seq
        result.by_arm = dict(by_arm)
        return result


@contextmanager
def _cycle_collection_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: a cohort builds a million long-lived, acyclic tuples,
    which it would otherwise walk again and again (a quarter of the run); reference counting
    still frees everything."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def _sqlite_page_cache(session: Session) -> Iterator[None]:
    """On SQLite, a page cache of up to 256 MB for this transaction: a cohort's random-order index
    inserts would otherwise spill the default 2 MB cache to the WAL over and over."""
    if session.get_bind().dialect.name != "sqlite":
        yield
        return
    driver = session.connection().connection.dbapi_connection  # the setting is the connection's
    assert driver is not None
    before = int(driver.execute("PRAGMA cache_size").fetchone()[0])
    driver.execute("PRAGMA cache_size = -262144")
    try:
        yield
    finally:
        driver.execute(f"PRAGMA cache_size = {before}")


def _parts(session: Session, ctx: TrialContext, units: list[_Unit], cases: list[_Candidate], enrolled_on: dt.date
           ) -> Iterator[tuple[list[NewAssignment], list[tuple[NewEnrollment, str, int]]]]:
    """The assignments and enrollments of a whole cohort, EVENT_PART at a time (see `assign_all`)."""
    now = utcnow()
    if ctx.protocol.unit == "case":  # units are the cases, in the same order
        allocations = _allocations(session, ctx, units, enrolled_on, now)
        for start in range(0, len(cases), EVENT_PART):
            chunk = cases[start:start + EVENT_PART]
            assignments = list(islice(allocations, len(chunk)))
            yield assignments, _enrollments_for(session, ctx, chunk, assignments, enrolled_on, now)
        return
    clusters = _allocate(session, ctx, units, enrolled_on, now)
    enrollments = _enrollments_for(session, ctx, cases, clusters, enrolled_on, now)
    for start in range(0, len(enrollments), EVENT_PART):
        yield clusters[start:start + EVENT_PART], enrollments[start:start + EVENT_PART]


def _enrollments_for(session: Session, ctx: TrialContext, cases: Sequence[Case | _Candidate],
                     new: list[NewAssignment], enrolled_on: dt.date, now: dt.datetime,
                     first_sequence: int | None = None) -> list[tuple[NewEnrollment, str, int]]:
    """Enrollment rows (not yet added) for cases, pointing at their own or their cluster's assignment."""
    protocol = ctx.protocol
    seq = _next_sequence(session, Enrollment.sequence, ctx.trial.id) if first_sequence is None else first_sequence
    candidate = _candidates(session, ctx)
    candidates = [c if isinstance(c, _Candidate) else candidate(c) for c in cases]
    if protocol.unit == "case":
        by_key = {a.unit_key: a for a in new}
        ordered: list[tuple[_Candidate, Any]] = [
            (c, by_key[c.case_key]) for c in sorted(candidates, key=lambda c: by_key[c.case_key].sequence)
        ]
    else:
        clusters: dict[str, Any] = {a.unit_key: a for a in session.scalars(
            select(Assignment).where(Assignment.trial_id == ctx.trial.id))}
        clusters.update({a.unit_key: a for a in new})
        ordered = sorted(((c, clusters[str(getattr(c, protocol.unit))]) for c in candidates),
                         key=lambda pair: (pair[1].sequence, pair[0].order))
    out = []
    for case, assignment in ordered:
        enrollment = NewEnrollment(
            trial_id=ctx.trial.id, case_id=case.id, arm=assignment.arm,
            cluster=assignment.unit_key if protocol.unit != "case" else None, sequence=seq,
            case_revision=case.revision, frozen=case.frozen, frozen_sha256=case.frozen_sha256,
            enrolled_on=enrolled_on, enrolled_at=now,
        )
        enrollment.assignment = assignment
        out.append((enrollment, case.case_key, assignment.sequence))
        seq += 1
    return out


def _store(session: Session, assignments: list[NewAssignment], enrollments: list[tuple[NewEnrollment, str, int]],
           audit_seq: int) -> None:
    """Bulk INSERT (no ORM objects: a whole cohort can be a million rows), then the new ids."""
    if assignments:
        for a in assignments:
            a.audit_seq = audit_seq
        table = cast(Table, Assignment.__table__)
        if len(assignments) == 1:  # rolling enrollment: the id comes back with the insert, no second query
            row = dict(zip(NewAssignment.COLUMNS, assignments[0].row(), strict=True))
            assignments[0].id = session.execute(insert(table).returning(table.c.id), row).scalar_one()
        else:
            _bulk_insert(session, table, NewAssignment.COLUMNS, [a.row() for a in assignments])
            # The part's sequences are consecutive: read its ids through the (trial_id, sequence) index.
            ids = {key: id_ for key, id_ in session.execute(select(Assignment.unit_key, Assignment.id).where(
                Assignment.trial_id == assignments[0].trial_id,
                Assignment.sequence.between(assignments[0].sequence, assignments[-1].sequence)))}
            for a in assignments:
                a.id = ids[a.unit_key]
    if enrollments:
        _bulk_insert(session, cast(Table, Enrollment.__table__), NewEnrollment.COLUMNS,
                     [e.row() for e, _k, _s in enrollments], bound=("frozen",))


def _converted(process: Callable[[Any], Any], column: Sequence[Any]) -> list[Any]:
    """`process` of every value, done once per distinct object: a part's rows share their dates,
    timestamps and probabilities (each row holds its value alive, so ids are not reused)."""
    done: dict[int, Any] = {}
    out = []
    for value in column:
        key = id(value)
        if key not in done:
            done[key] = process(value)
        out.append(done[key])
    return out


def _bulk_insert(session: Session, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]],
                 bound: Collection[str] = ()) -> None:
    """One executemany on the driver, each value converted by its column's own type exactly as
    SQLAlchemy's insert would convert it, without its per-row work (a million rows take seconds,
    not a minute). Columns in `bound` hold values already converted."""
    connection = session.connection()
    dialect = connection.dialect
    compiled = insert(table).compile(dialect=dialect, column_keys=list(columns))
    processors = [None if name in bound else table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
                  for name in columns]
    values = [_converted(process, column) if process is not None else column
              for process, column in zip(processors, zip(*rows, strict=True), strict=True)]
    if compiled.positional:
        position = {name: i for i, name in enumerate(columns)}
        values = [values[position[name]] for name in compiled.positiontup or ()]
        connection.exec_driver_sql(compiled.string, list(zip(*values, strict=True)))
    else:
        connection.exec_driver_sql(compiled.string, [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)])


@dataclass
class EnrollResult:
    """One enrolled case: its arm (shown to the project lead) and where it sits in the trial."""

    case_key: str
    arm: str
    sequence: int
    stratum: str
    cluster: str | None
    audit_seq: int


# A case with the trials it is enrolled in (none: one row with NULLs), in one round trip.
_CASE_WITH_TRIALS = (select(Case, Enrollment.trial_id, Trial.closed_at)
                     .outerjoin(Enrollment, Enrollment.case_id == Case.id)
                     .outerjoin(Trial, Trial.id == Enrollment.trial_id)
                     .where(Case.case_key == bindparam("case_key")))


@dataclass(frozen=True)
class _FoundCase:
    case: Case
    enrolled_in: list[tuple[str, dt.datetime | None]]  # (trial id, closed at), by trial id


def _find_case(session: Session, ref: str, key: bytes | None, source: str) -> _FoundCase | str:
    """The case named by a case id or a CPR number with its trials, or a one-line problem
    (never echoing a CPR)."""
    from trials.pseudonym import case_key, looks_like_cpr, parse_cpr

    def lookup(stored_key: str) -> _FoundCase | None:
        rows = session.execute(_CASE_WITH_TRIALS, {"case_key": stored_key}).all()
        if not rows:
            return None
        trials = [(trial, closed) for _case, trial, closed in rows if trial is not None]
        return _FoundCase(rows[0][0], sorted(trials, key=lambda pair: pair[0]))

    if parse_cpr(ref) is not None:
        if key is None:
            return f"{source}: a CPR number needs the pseudonymisation key (--key-file)"
        # a case id that happens to look like a CPR number is tried second
        pseudonym = case_key(ref, "cpr", key)
        found = (lookup(pseudonym) if pseudonym else None) or lookup(ref.strip())
        return found if found is not None else f"{source}: no case with this CPR number is in the case pool"
    found = lookup(ref.strip())
    if found is None:
        if looks_like_cpr(ref):
            return f"{source}: looks like a CPR number but is not a valid one"
        return f"{source}: no case {ref.strip()!r} in the case pool (import it with `trials cases import`)"
    return found


def resolve_case(session: Session, ref: str, key: bytes | None, source: str = "argument") -> Case | str:
    """The case named by a case id or a CPR number, or a one-line problem (never echoing a CPR)."""
    found = _find_case(session, ref, key, source)
    return found if isinstance(found, str) else found.case


def _enrollment_refusal(session: Session, ctx: TrialContext, found: _FoundCase) -> str | None:
    case, enrolled_in = found.case, found.enrolled_in
    if any(trial_id == ctx.trial.id for trial_id, _closed in enrolled_in):
        return f"case {case.case_key if case.id_kind != 'cpr' else '(CPR given)'} is already enrolled in {ctx.trial.id}"
    reason = ineligibility(ctx.protocol, case)
    if reason is not None:
        return f"case is not eligible for {ctx.trial.id}: {reason}"
    if not ctx.protocol.allow_overlap:
        other = next((trial_id for trial_id, closed in enrolled_in if closed is None), None)
        if other is not None:
            return (f"case is already enrolled in the active trial {other!r} and {ctx.trial.id!r} does not allow "
                    "overlap (allow_overlap = true in its protocol)")
    if ctx.protocol.unit in CLUSTER_UNITS:
        cluster = str(getattr(case, ctx.protocol.unit))
        randomized = session.scalars(select(Assignment.id).where(Assignment.trial_id == ctx.trial.id,
                                                                 Assignment.unit_key == cluster)).first()
        if randomized is None:
            return (f"the case's {ctx.protocol.unit} {cluster!r} is not randomized in {ctx.trial.id} "
                    f"(run `trials assign {ctx.trial.id}` to randomize new clusters)")
    return None


def enroll(session: Session, trial_id: str, case_ref: str, enrolled_on: dt.date | None = None,
           key: bytes | None = None) -> EnrollResult:
    """Rolling enrollment of one case; continues the per-stratum block state. Call in write_session."""
    return enroll_many(session, trial_id, [case_ref], enrolled_on, key)[0]


def enroll_many(session: Session, trial_id: str, case_refs: Sequence[str], enrolled_on: dt.date | None = None,
                key: bytes | None = None) -> list[EnrollResult]:
    """Enroll cases one after another; every case is checked first and nothing is written if any fails."""
    ctx = trial_context(session, trial_id)
    enrolled_on = enrolled_on or dt.date.today()
    problems: list[Problem] = []
    cases: list[Case] = []
    seen: set[int] = set()
    for position, ref in enumerate(case_refs, start=1):
        source = f"case {position}"
        found = _find_case(session, ref, key, source)
        if isinstance(found, str):
            problems.append(Problem("enroll", found))
            continue
        refusal = _enrollment_refusal(session, ctx, found)
        if refusal is None and found.case.id in seen:
            refusal = "the same case is named twice"
        if refusal is not None:
            problems.append(Problem("enroll", f"{source}: {refusal}"))
        seen.add(found.case.id)
        cases.append(found.case)
    if problems:
        raise InputError(problems)
    results = []
    for case in cases:
        now = utcnow()
        if ctx.protocol.unit == "case":
            unit = _Unit(case.case_key, case_stratum(ctx.protocol, frozen_case(case)), case)
            lands = _rolling_position(session, trial_id, stratum_key(unit.values))
            new = _allocate(session, ctx, [unit], enrolled_on, now, lands)
            first_sequence: int | None = lands.last_enrollment + 1
            head: ChainHead | None = lands.audit_head
        else:
            new, first_sequence, head = [], None, None
        enrollments = _enrollments_for(session, ctx, [case], new, enrolled_on, now, first_sequence)
        event = record_event(session, "case_enrolled", trial_id=trial_id, payload={
            "protocol_version": ctx.version, "algorithm": ALGORITHM, "method": ctx.protocol.stratification.method,
            "enrolled_on": enrolled_on.isoformat(), "allocations": [_allocation_payload(a) for a in new],
            "enrollments": [_enrollment_payload(e, k, s) for e, k, s in enrollments],
        }, head=head)
        _store(session, new, enrollments, event.seq)
        enrollment, _k, _s = enrollments[0]
        assignment = enrollment.assignment
        results.append(EnrollResult(case.case_key, enrollment.arm, enrollment.sequence, assignment.stratum_label,
                                    enrollment.cluster, event.seq))
    return results


@dataclass
class CloseResult:
    trial_id: str
    closed_at: dt.datetime
    seed: str
    partial_blocks: list[dict[str, Any]] = field(default_factory=list)
    audit_seq: int = 0


def open_blocks(session: Session, trial_id: str) -> list[dict[str, Any]]:
    """Permuted blocks started but not filled, per stratum (the last block of each stratum)."""
    rows = session.execute(
        select(Assignment.stratum, Assignment.stratum_label, Assignment.block, Assignment.block_size, func.count())
        .where(Assignment.trial_id == trial_id, Assignment.method == "permuted_blocks")
        .group_by(Assignment.stratum, Assignment.stratum_label, Assignment.block, Assignment.block_size)
        .order_by(Assignment.stratum, Assignment.block)
    ).all()
    return [{"stratum": label, "block": block, "block_size": size, "filled": int(n)}
            for _s, label, block, size, n in rows if size is not None and n < size]


def close(session: Session, trial_id: str) -> CloseResult:
    """Close enrollment: reveal the seed into the audit log and record the open partial blocks."""
    ctx = trial_context(session, trial_id)
    partial = open_blocks(session, trial_id)
    now = utcnow()
    ctx.trial.closed_at = now
    session.flush()
    event = record_event(session, "trial_closed", trial_id=trial_id, payload={
        "seed": ctx.trial.seed, "seed_commitment": ctx.trial.seed_commitment, "partial_blocks": len(partial),
        "open_blocks": partial,
    })
    return CloseResult(trial_id, now, ctx.trial.seed, partial, event.seq)


def record_enrollment_event(session: Session, trial_id: str, case_ref: str, kind: str, reason: str,
                            effective_on: dt.date | None = None, key: bytes | None = None) -> EnrollmentEvent:
    """Withdrawal, crossover or non-compliance beside the assignment, never instead of it."""
    if kind not in ENROLLMENT_EVENT_KINDS:
        raise InputError([f"--kind must be one of {', '.join(ENROLLMENT_EVENT_KINDS)}"])
    if not reason.strip():
        raise InputError(["--reason must say why (it is kept in the audit log)"])
    if session.get(Trial, trial_id) is None:
        raise NotFound(f"no trial {trial_id!r} is registered (see `trials protocol list`)")
    found = resolve_case(session, case_ref, key, "CASE_ID")
    if isinstance(found, str):
        raise NotFound(found)
    enrollment = session.scalars(select(Enrollment).where(Enrollment.trial_id == trial_id,
                                                          Enrollment.case_id == found.id)).first()
    if enrollment is None:
        raise NotFound(f"the case is not enrolled in {trial_id}")
    effective_on = effective_on or dt.date.today()
    if effective_on < enrollment.enrolled_on:
        raise InputError([f"--effective-on {effective_on} is before the enrollment date {enrollment.enrolled_on}"])
    event = EnrollmentEvent(enrollment_id=enrollment.id, kind=kind, reason=reason, effective_on=effective_on,
                            recorded_at=utcnow())
    session.add(event)
    session.flush()
    record_event(session, "enrollment_event", trial_id=trial_id, payload={
        "case_key": found.case_key, "enrollment_sequence": enrollment.sequence, "kind": kind, "reason": reason,
        "effective_on": effective_on.isoformat(), "arm": enrollment.arm,
    })
    return event


def backdated_enrollments(session: Session, trial_id: str) -> list[dict[str, Any]]:
    """Enrollments whose stated date is before the day they were entered (for the audit report)."""
    rows = session.execute(select(Enrollment, Case.case_key).join(Case, Case.id == Enrollment.case_id)
                           .where(Enrollment.trial_id == trial_id).order_by(Enrollment.sequence)).all()
    return [{"sequence": e.sequence, "case_key": key, "arm": e.arm, "enrolled_on": e.enrolled_on,
             "entered_at": e.enrolled_at, "days_back": (e.enrolled_at.astimezone(dt.UTC).date() - e.enrolled_on).days}
            for e, key in rows if e.enrolled_on < e.enrolled_at.astimezone(dt.UTC).date()]


# --- export -----------------------------------------------------------------------------------


EXPORT_COLUMNS = ["case_id", "arm", "stratum", "sequence", "block", "method", "assigned_at"]


def export_assignments(session: Session, trial_id: str) -> tuple[list[str], list[list[str]]]:
    """The rows of `trials assignments export`: one per enrolled case, in enrollment order."""
    ctx = trial_context(session, trial_id, for_writing=False)
    arms = list(ctx.protocol.arms)
    cluster_trial = ctx.protocol.unit in CLUSTER_UNITS
    header = EXPORT_COLUMNS + [f"p_{arm}" for arm in arms] + (["cluster"] if cluster_trial else [])
    rows = []
    query = (select(Enrollment, Assignment, Case.case_key)
             .join(Assignment, Assignment.id == Enrollment.assignment_id)
             .join(Case, Case.id == Enrollment.case_id)
             .where(Enrollment.trial_id == trial_id).order_by(Enrollment.sequence))
    for enrollment, assignment, case_key in session.execute(query):
        row = [case_key, enrollment.arm, assignment.stratum_label, str(enrollment.sequence),
               "" if assignment.block is None else str(assignment.block), assignment.method,
               assignment.assigned_at.astimezone(dt.UTC).isoformat(timespec="microseconds")]
        row += [repr(float(assignment.probabilities.get(arm, 0.0))) for arm in arms]
        if cluster_trial:
            row.append(enrollment.cluster or "")
        rows.append(row)
    return header, rows


def write_assignments_csv(session: Session, trial_id: str, path: Any) -> int:
    """Write the export as UTF-8 CSV with formula-like text neutralised; returns the row count."""
    import csv

    from trials.tabular import neutralise_formula

    header, rows = export_assignments(session, trial_id)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow([neutralise_formula(cell) for cell in row])
    return len(rows)
