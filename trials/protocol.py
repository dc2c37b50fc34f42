"""Pre-registered trial protocols: TOML text -> validated `Protocol`, and the registry of versions.

A protocol is registered once, as its exact text and SHA-256; changes are amendments with a
reason, and anything that would change how cases are randomized is refused once a case has
been assigned. Every key is documented in docs/protocol.md.
"""

from __future__ import annotations

import re
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from trials.audit import record_event, sha256_hex
from trials.errors import InputError, NotFound, Problem, Refused
from trials.models import Assignment, ProtocolVersion, Trial, utcnow
from trials.vocab import BARRIERS, BENEFIT_TYPES, EXIT_KINDS, METHODS, UNITS

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$")
DEFAULT_HORIZONS = (52, 104)
MAX_PROTOCOL_BYTES = 1 << 20  # a protocol is a page of TOML; anything this large is the wrong file
DEFAULT_MINIMIZATION_PROBABILITY = 0.8
# Keys whose change would alter the randomization: frozen once any unit is assigned.
FROZEN_AFTER_ASSIGNMENT = ("unit", "arms", "control_arm", "stratification", "seed")
CASE_FACTORS = ("primary_barrier", "months_band", "benefit_type", "team", "caseworker")
CLUSTER_FACTORS = ("size_band", "team")
# Pre-registered "what works for whom" subgroups; anything else is exploratory.
SUBGROUPS = ("primary_barrier", "months_band", "benefit_type", "team")


@dataclass(frozen=True)
class Eligibility:
    benefit_types: tuple[str, ...] = ()
    barriers: tuple[str, ...] = ()
    months_min: float | None = None
    months_max: float | None = None
    teams: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stratification:
    method: str
    factors: tuple[str, ...]
    months_bands: tuple[float, ...]
    block_sizes: tuple[int, ...]
    minimization_probability: float = DEFAULT_MINIMIZATION_PROBABILITY
    cluster_size_bands: tuple[int, ...] = (0,)


@dataclass(frozen=True)
class OutcomeDefinition:
    event_exits: tuple[str, ...]
    competing_exits: tuple[str, ...]
    consecutive_weeks: int
    horizons_weeks: tuple[int, ...] = DEFAULT_HORIZONS


@dataclass(frozen=True)
class Protocol:
    """A validated protocol; `raw` is the parsed TOML, `text` the exact registered text."""

    id: str
    title: str
    hypothesis: str
    unit: str
    arms: dict[str, int]
    control_arm: str
    stratification: Stratification
    outcome: OutcomeDefinition
    eligibility: Eligibility
    seed: str | None
    target_n: int | None
    minimum_detectable_hr: float | None
    allow_overlap: bool
    subgroups: tuple[str, ...]
    business_case: dict[str, Any]
    text: str
    raw: dict[str, Any] = field(repr=False)

    @property
    def sha256(self) -> str:
        return sha256_hex(self.text)

    @property
    def treatment_arms(self) -> list[str]:
        return [arm for arm in self.arms if arm != self.control_arm]


# --- parsing and validation ------------------------------------------------------------


class _Checker:
    """Collects every problem in one pass instead of stopping at the first."""

    def __init__(self, source: str, data: Mapping[str, Any]):
        self.source = source
        self.data = data
        self.problems: list[Problem] = []

    def fail(self, key: str, message: str) -> None:
        self.problems.append(Problem(self.source, message, key=key))

    def get(self, key: str, kind: type | tuple[type, ...], *, required: bool, table: Mapping[str, Any] | None = None,
            prefix: str = "") -> Any:
        table = self.data if table is None else table
        name = prefix + key
        if key not in table:
            if required:
                self.fail(name, "is required")
            return None
        value = table[key]
        # TOML booleans are ints in Python; never accept one where a number is meant.
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            self.fail(name, f"must be {_kind_name(kind)}, not a boolean")
            return None
        if not isinstance(value, kind):
            self.fail(name, f"must be {_kind_name(kind)}")
            return None
        return value

    def ids(self, key: str, values: Any, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
        if values is None:
            return ()
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            self.fail(key, f"must be a list of {what} ids")
            return ()
        unknown = [v for v in values if v not in allowed]
        if unknown:
            self.fail(key, f"unknown {what} {', '.join(map(repr, unknown))}; accepted: {', '.join(allowed)}")
        return tuple(values)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list",
             dict: "a table"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def parse_protocol(text: str, source: str = "<protocol>") -> Protocol:
    """Validate protocol TOML; raise InputError listing every problem with its key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError([Problem(source, f"not valid TOML: {exc}")]) from None
    check = _Checker(source, data)

    known = {"id", "title", "hypothesis", "unit", "arms", "control_arm", "stratification", "outcome", "eligibility",
             "seed", "target_n", "minimum_detectable_hr", "allow_overlap", "subgroups", "business_case",
             "description", "source"}
    for key in data:
        if key not in known:
            check.fail(key, f"unknown key; known keys: {', '.join(sorted(known))}")

    trial_id = check.get("id", str, required=True)
    if trial_id is not None and not SLUG.match(trial_id):
        check.fail("id", "must be a slug: 3-64 characters a-z, 0-9 and '-', not starting or ending with '-'")
    title = check.get("title", str, required=True)
    hypothesis = check.get("hypothesis", str, required=True)
    unit = check.get("unit", str, required=True)
    if unit is not None and unit not in UNITS:
        check.fail("unit", f"must be one of {', '.join(UNITS)}")

    arms = _parse_arms(check)
    control_arm = check.get("control_arm", str, required=False)
    if control_arm is None and arms:
        control_arm = "control" if "control" in arms else None
        if control_arm is None:
            check.fail("control_arm", "is required when no arm is named 'control'")
    elif control_arm is not None and arms and control_arm not in arms:
        check.fail("control_arm", f"{control_arm!r} is not one of the arms ({', '.join(arms)})")

    stratification = _parse_stratification(check, unit, arms)
    outcome = _parse_outcome(check)
    eligibility = _parse_eligibility(check)

    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, str)) or str(seed) == ""):
        check.fail("seed", "must be a non-empty string or an integer")
    target_n = check.get("target_n", int, required=False)
    if target_n is not None and target_n < 2:
        check.fail("target_n", "must be at least 2")
    mdhr = check.get("minimum_detectable_hr", (int, float), required=False)
    if mdhr is not None and (mdhr <= 0 or mdhr == 1):
        check.fail("minimum_detectable_hr", "must be a positive hazard ratio other than 1")
    allow_overlap = check.get("allow_overlap", bool, required=False) or False
    subgroups = check.get("subgroups", list, required=False) or []
    for subgroup in subgroups:
        if not isinstance(subgroup, str) or (subgroup not in SUBGROUPS and not subgroup.startswith("covariate:")):
            check.fail("subgroups", f"unknown subgroup {subgroup!r}; accepted: {', '.join(SUBGROUPS)}, "
                       "or covariate:<name>")
    business_case = check.get("business_case", dict, required=False) or {}
    _check_business_case(check, business_case)

    if check.problems:
        raise InputError(check.problems)
    assert stratification is not None and outcome is not None and control_arm is not None
    return Protocol(
        id=trial_id,
        title=title,
        hypothesis=hypothesis,
        unit=unit,
        arms=arms,
        control_arm=control_arm,
        stratification=stratification,
        outcome=outcome,
        eligibility=eligibility,
        seed=None if seed is None else str(seed),
        target_n=target_n,
        minimum_detectable_hr=None if mdhr is None else float(mdhr),
        allow_overlap=allow_overlap,
        subgroups=tuple(subgroups),
        business_case=business_case,
        text=text,
        raw=data,
    )


def _parse_arms(check: _Checker) -> dict[str, int]:
    arms = check.get("arms", dict, required=True)
    if arms is None:
        return {}
    if len(arms) < 2:
        check.fail("arms", "needs at least two arms")
    parsed: dict[str, int] = {}
    for name, weight in arms.items():
        if not re.match(r"^[a-z][a-z0-9_]{0,31}$", name):
            check.fail(f"arms.{name}", "arm names are lower-case letters, digits and '_' (at most 32)")
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
            check.fail(f"arms.{name}", "the allocation weight must be a whole number >= 1")
            continue
        parsed[name] = weight
    return parsed


def _parse_stratification(check: _Checker, unit: str | None, arms: dict[str, int]) -> Stratification | None:
    table = check.get("stratification", dict, required=True)
    if table is None:
        return None
    p = "stratification."
    method = check.get("method", str, required=True, table=table, prefix=p)
    if method is not None and method not in METHODS:
        check.fail(p + "method", f"must be one of {', '.join(METHODS)}")
    factors = check.get("factors", list, required=False, table=table, prefix=p) or []
    allowed = CLUSTER_FACTORS if unit in ("caseworker", "team") else CASE_FACTORS
    for factor in factors:
        if not isinstance(factor, str):
            check.fail(p + "factors", "must be a list of strings")
        elif factor not in allowed and not factor.startswith("covariate:"):
            check.fail(p + "factors", f"unknown factor {factor!r} for unit {unit}; accepted: "
                       f"{', '.join(allowed)}, or covariate:<name>")
    bands = check.get("months_bands", list, required="months_band" in factors, table=table, prefix=p) or [0]
    if not _ascending_from_zero(bands):
        check.fail(p + "months_bands", "must be ascending numbers starting at 0, e.g. [0, 6, 12, 24]")
    block_sizes = check.get("block_sizes", list, required=method == "permuted_blocks", table=table, prefix=p) or []
    weight_sum = sum(arms.values()) if arms else 0
    for size in block_sizes:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            check.fail(p + "block_sizes", "must be whole numbers >= 1")
        elif weight_sum and size % weight_sum:
            check.fail(p + "block_sizes", f"block size {size} is not a multiple of the sum of the arm weights "
                       f"({weight_sum})")
    probability = check.get("minimization_probability", (int, float), required=False, table=table, prefix=p)
    if probability is not None and not 0.5 <= probability <= 1:
        check.fail(p + "minimization_probability", "must be between 0.5 and 1")
    size_bands = check.get("cluster_size_bands", list, required=False, table=table, prefix=p) or [0]
    if not _ascending_from_zero(size_bands):
        check.fail(p + "cluster_size_bands", "must be ascending whole numbers starting at 0")
    known = {"method", "factors", "months_bands", "block_sizes", "minimization_probability", "cluster_size_bands"}
    for key in table:
        if key not in known:
            check.fail(p + key, f"unknown key; known keys: {', '.join(sorted(known))}")
    return Stratification(
        method=method or "",
        factors=tuple(f for f in factors if isinstance(f, str)),
        months_bands=tuple(bands),
        block_sizes=tuple(s for s in block_sizes if isinstance(s, int)),
        minimization_probability=float(probability) if probability is not None else DEFAULT_MINIMIZATION_PROBABILITY,
        cluster_size_bands=tuple(size_bands),
    )


def _ascending_from_zero(values: list[Any]) -> bool:
    if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return False
    return values[0] == 0 and all(a < b for a, b in zip(values, values[1:], strict=False))


def _parse_outcome(check: _Checker) -> OutcomeDefinition | None:
    table = check.get("outcome", dict, required=True)
    if table is None:
        return None
    p = "outcome."
    event_exits = check.ids(p + "event_exits", table.get("event_exits"), EXIT_KINDS.ids, "exit kind")
    if "event_exits" not in table:
        check.fail(p + "event_exits", "is required")
    elif not event_exits:
        check.fail(p + "event_exits", "needs at least one exit kind")
    competing = check.ids(p + "competing_exits", table.get("competing_exits", []), EXIT_KINDS.ids, "exit kind")
    both = set(event_exits) & set(competing)
    if both:
        check.fail(p + "competing_exits", f"{', '.join(sorted(both))} cannot be both an event and a competing exit")
    weeks = check.get("consecutive_weeks", int, required=True, table=table, prefix=p)
    if weeks is not None and weeks < 1:
        check.fail(p + "consecutive_weeks", "must be at least 1")
    horizons = check.get("horizons_weeks", list, required=False, table=table, prefix=p) or list(DEFAULT_HORIZONS)
    if not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in horizons):
        check.fail(p + "horizons_weeks", "must be positive whole numbers of weeks")
    known = {"event_exits", "competing_exits", "consecutive_weeks", "horizons_weeks"}
    for key in table:
        if key not in known:
            check.fail(p + key, f"unknown key; known keys: {', '.join(sorted(known))}")
    return OutcomeDefinition(
        event_exits=event_exits,
        competing_exits=competing,
        consecutive_weeks=weeks or 1,
        horizons_weeks=tuple(sorted(h for h in horizons if isinstance(h, int))),
    )


def _parse_eligibility(check: _Checker) -> Eligibility:
    table = check.get("eligibility", dict, required=False) or {}
    p = "eligibility."
    known = {"benefit_types", "barriers", "months_min", "months_max", "teams"}
    for key in table:
        if key not in known:
            check.fail(p + key, f"unknown key; known keys: {', '.join(sorted(known))}")
    months_min = check.get("months_min", (int, float), required=False, table=table, prefix=p)
    months_max = check.get("months_max", (int, float), required=False, table=table, prefix=p)
    if months_min is not None and months_max is not None and months_min > months_max:
        check.fail(p + "months_max", "must not be below months_min")
    teams = table.get("teams", [])
    if not isinstance(teams, list) or not all(isinstance(t, str) for t in teams):
        check.fail(p + "teams", "must be a list of team names")
        teams = []
    return Eligibility(
        benefit_types=check.ids(p + "benefit_types", table.get("benefit_types"), BENEFIT_TYPES.ids, "benefit type"),
        barriers=check.ids(p + "barriers", table.get("barriers"), BARRIERS.ids, "barrier"),
        months_min=months_min,
        months_max=months_max,
        teams=tuple(teams),
    )


def _check_business_case(check: _Checker, table: dict[str, Any]) -> None:
    p = "business_case."
    weekly = table.get("weekly_cost_dkk", {})
    if not isinstance(weekly, dict):
        check.fail(p + "weekly_cost_dkk", "must be a table of benefit type = DKK per week")
    else:
        for benefit, cost in weekly.items():
            if benefit not in BENEFIT_TYPES.ids:
                check.fail(f"{p}weekly_cost_dkk.{benefit}", f"unknown benefit type; accepted: {BENEFIT_TYPES.accepted()}")
            elif isinstance(cost, bool) or not isinstance(cost, (int, float)) or cost < 0:
                check.fail(f"{p}weekly_cost_dkk.{benefit}", "must be a number of DKK >= 0")
    for key in ("intervention_cost_per_case_dkk", "fixed_cost_dkk"):
        if key in table and (isinstance(table[key], bool) or not isinstance(table[key], (int, float)) or table[key] < 0):
            check.fail(p + key, "must be a number of DKK >= 0")


def read_protocol_file(path: Path) -> Protocol:
    """Read and validate a protocol file; decoding problems are input errors too."""
    try:
        if path.stat().st_size > MAX_PROTOCOL_BYTES:
            raise InputError([Problem(str(path), f"is larger than {MAX_PROTOCOL_BYTES // 1024} KiB: not a protocol "
                                      "file (is this the right file?)")])
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise InputError([Problem(str(path), "file not found")]) from None
    except UnicodeDecodeError:
        raise InputError([Problem(str(path), "not UTF-8 text (protocols are UTF-8 TOML)")]) from None
    except IsADirectoryError:
        raise InputError([Problem(str(path), "is a folder, not a protocol file")]) from None
    return parse_protocol(text, str(path))


# --- the registry ----------------------------------------------------------------------


@dataclass(frozen=True)
class RegistrationResult:
    trial_id: str
    version: int
    sha256: str
    seed_commitment: str
    created: bool


def register(session: Session, protocol: Protocol) -> RegistrationResult:
    """Register a new trial; identical content again is a no-op, different content is refused."""
    trial = session.get(Trial, protocol.id)
    if trial is not None:
        latest = latest_version(session, protocol.id)
        if latest.sha256 == protocol.sha256:
            return RegistrationResult(trial.id, latest.version, latest.sha256, trial.seed_commitment, created=False)
        raise Refused(
            f"trial {protocol.id!r} is registered with different content (version {latest.version}); "
            "use `trials protocol amend FILE --reason TEXT` to register a new version"
        )
    seed = protocol.seed if protocol.seed is not None else secrets.token_hex(32)
    now = utcnow()
    trial = Trial(
        id=protocol.id,
        title=protocol.title,
        unit=protocol.unit,
        seed=seed,
        seed_commitment=sha256_hex(seed),
        seed_source="protocol" if protocol.seed is not None else "drawn",
        registered_at=now,
    )
    session.add(trial)
    session.flush()  # the trial row must exist before its first version refers to it
    session.add(ProtocolVersion(trial_id=protocol.id, version=1, text=protocol.text, sha256=protocol.sha256,
                                reason=None, registered_at=now))
    session.flush()
    record_event(session, "protocol_registered", trial_id=protocol.id, payload={
        "version": 1, "sha256": protocol.sha256, "seed_commitment": trial.seed_commitment,
        "seed_source": trial.seed_source,
    })
    return RegistrationResult(trial.id, 1, protocol.sha256, trial.seed_commitment, created=True)


def amend(session: Session, protocol: Protocol, reason: str) -> RegistrationResult:
    """Register a new version of an existing trial's protocol, keeping the reason."""
    if not reason.strip():
        raise InputError(["--reason must say why the protocol is amended"])
    trial = _get_trial(session, protocol.id)
    latest = latest_version(session, protocol.id)
    if latest.sha256 == protocol.sha256:
        raise Refused(f"the file is identical to version {latest.version} of {protocol.id!r}; nothing to amend")
    previous = parse_protocol(latest.text, f"{protocol.id} v{latest.version}")
    changed = [key for key in FROZEN_AFTER_ASSIGNMENT if previous.raw.get(key) != protocol.raw.get(key)]
    if changed and has_assignments(session, protocol.id):
        raise Refused(
            f"cannot amend {', '.join(changed)} of {protocol.id!r}: units have already been assigned "
            "(register a new trial instead)"
        )
    if protocol.seed is not None and protocol.seed != trial.seed:
        if has_assignments(session, protocol.id):
            raise Refused(f"cannot change the seed of {protocol.id!r} after assignment")
        trial.seed = protocol.seed
        trial.seed_commitment = sha256_hex(protocol.seed)
        trial.seed_source = "protocol"
    trial.title = protocol.title
    trial.unit = protocol.unit
    version = latest.version + 1
    session.add(ProtocolVersion(trial_id=protocol.id, version=version, text=protocol.text, sha256=protocol.sha256,
                                reason=reason, registered_at=utcnow()))
    session.flush()
    record_event(session, "protocol_amended", trial_id=protocol.id, payload={
        "version": version, "sha256": protocol.sha256, "reason": reason, "changed_keys": _changed_keys(previous, protocol),
        "seed_commitment": trial.seed_commitment,
    })
    return RegistrationResult(trial.id, version, protocol.sha256, trial.seed_commitment, created=True)


def _changed_keys(old: Protocol, new: Protocol) -> list[str]:
    keys = set(old.raw) | set(new.raw)
    return sorted(k for k in keys if old.raw.get(k) != new.raw.get(k))


def has_assignments(session: Session, trial_id: str) -> bool:
    count = session.scalar(select(func.count()).select_from(Assignment).where(Assignment.trial_id == trial_id))
    return bool(count)


def _get_trial(session: Session, trial_id: str) -> Trial:
    trial = session.get(Trial, trial_id)
    if trial is None:
        raise NotFound(f"no trial {trial_id!r} is registered (see `trials protocol list`)")
    return trial


def latest_version(session: Session, trial_id: str) -> ProtocolVersion:
    version = session.scalars(
        select(ProtocolVersion).where(ProtocolVersion.trial_id == trial_id).order_by(ProtocolVersion.version.desc())
    ).first()
    if version is None:
        raise NotFound(f"no trial {trial_id!r} is registered (see `trials protocol list`)")
    return version


def load_protocol(session: Session, trial_id: str, version: int | None = None) -> Protocol:
    """The registered protocol of a trial (its latest version unless one is named)."""
    row = latest_version(session, trial_id) if version is None else session.scalars(
        select(ProtocolVersion).where(ProtocolVersion.trial_id == trial_id, ProtocolVersion.version == version)
    ).first()
    if row is None:
        raise NotFound(f"trial {trial_id!r} has no protocol version {version}")
    return parse_protocol(row.text, f"{trial_id} v{row.version}")


def list_trials(session: Session) -> list[dict[str, Any]]:
    """One summary dict per registered trial, for `protocol list`."""
    rows = []
    for trial in session.scalars(select(Trial).order_by(Trial.id)):
        latest = latest_version(session, trial.id)
        rows.append({
            "id": trial.id,
            "title": trial.title,
            "unit": trial.unit,
            "version": latest.version,
            "sha256": latest.sha256,
            "seed_commitment": trial.seed_commitment,
            "registered_at": trial.registered_at,
            "closed_at": trial.closed_at,
        })
    return rows


def show_trial(session: Session, trial_id: str) -> dict[str, Any]:
    """The trial with every protocol version (text, hash, reason); never the seed of an open trial."""
    trial = _get_trial(session, trial_id)
    versions = session.scalars(
        select(ProtocolVersion).where(ProtocolVersion.trial_id == trial_id).order_by(ProtocolVersion.version)
    ).all()
    return {
        "id": trial.id,
        "title": trial.title,
        "unit": trial.unit,
        "seed_commitment": trial.seed_commitment,
        "seed": trial.seed if trial.closed_at is not None else None,
        "registered_at": trial.registered_at,
        "closed_at": trial.closed_at,
        "versions": [
            {"version": v.version, "sha256": v.sha256, "reason": v.reason, "registered_at": v.registered_at,
             "text": v.text}
            for v in versions
        ],
    }


def shipped_protocols() -> list[Path]:
    """The protocol files that ship with the package (the checkout's `protocols/`)."""
    from importlib.resources import files

    folder = files("trials.protocols")
    return sorted(Path(str(entry)) for entry in folder.iterdir() if entry.name.endswith(".toml"))
