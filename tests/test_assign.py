"""The assignment engine: pure allocation properties (hypothesis), the golden stream, and the
database layer (whole cohort, rolling, cluster, minimization, eligibility, close) on SQLite and
PostgreSQL, including 8 real processes enrolling at once.

The helpers at the top (`protocol_text`, `add_cases`, `setup_trial`) are shared with
tests/test_audit.py and tests/test_balance.py.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import multiprocessing
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select
from sqlalchemy.engine import Engine

from trials import assign, db
from trials.audit import verify
from trials.errors import InputError, Refused
from trials.models import Assignment, AuditEvent, Case, Enrollment, utcnow
from trials.protocol import parse_protocol, register
from trials.pseudonym import pseudonymise

GOLDEN = Path(__file__).resolve().parent / "golden" / "allocations.json"
TWO_ARMS = {"control": 1, "treatment": 1}
BARRIERS = ["physical", "mild_mental", "social", "substance_abuse"]


# --- helpers shared by the assignment, audit and balance tests ----------------------------------


def protocol_text(trial_id: str = "trial-a", *, method: str = "permuted_blocks", unit: str = "case",
                  factors: Sequence[str] = ("primary_barrier", "months_band"), arms: dict[str, int] | None = None,
                  block_sizes: Sequence[int] = (2, 4, 6), seed: str | None = "fixed-seed", extra: str = "",
                  eligibility: str = "", allow_overlap: bool = False) -> str:
    """A valid protocol TOML for tests."""
    arms = arms or TWO_ARMS
    arm_lines = "\n".join(f"{name} = {weight}" for name, weight in arms.items())
    seed_line = f'seed = "{seed}"\n' if seed is not None else ""
    blocks = f"block_sizes = {list(block_sizes)}\n" if method == "permuted_blocks" else ""
    return (
        f'id = "{trial_id}"\ntitle = "Test trial {trial_id}"\nhypothesis = "It works."\nunit = "{unit}"\n'
        f"allow_overlap = {'true' if allow_overlap else 'false'}\n{seed_line}"
        f"[arms]\n{arm_lines}\n"
        f'[stratification]\nmethod = "{method}"\nfactors = {json.dumps(list(factors))}\n'
        f"months_bands = [0, 6, 12]\n{blocks}{extra}"
        f"[eligibility]\n{eligibility}\n"
        '[outcome]\nevent_exits = ["ordinary_job"]\nconsecutive_weeks = 4\n'
    )


def add_cases(session: Any, n: int, *, prefix: str = "C", seed: int = 1, start: int = 0,
              caseworkers: Sequence[str] = ("anna", "bo", "carl", "dorte", "erik", "frida"),
              **fixed: Any) -> list[Case]:
    """n cases with reproducible categorisation and covariates, added through the ORM."""
    rng = random.Random(seed)
    cases = []
    for i in range(start, start + n):
        now = utcnow()
        caseworker = fixed.get("caseworker", caseworkers[i % len(caseworkers)])
        case = Case(
            case_key=f"{prefix}{i:05d}", id_kind="case_id",
            primary_barrier=fixed.get("primary_barrier", rng.choice(BARRIERS)),
            barriers=[], months_unemployed=fixed.get("months_unemployed", round(rng.uniform(0, 24), 1)),
            benefit_type=fixed.get("benefit_type", "social_assistance"), caseworker=caseworker,
            team=fixed.get("team", "north" if caseworker in ("anna", "bo", "carl") else "south"), as_of=None,
            covariates={"age": rng.randint(18, 64), "sex": rng.choice(["f", "m"])}, revision=1,
            created_at=now, updated_at=now,
        )
        cases.append(case)
    session.add_all(cases)
    session.flush()
    return cases


def setup_trial(engine: Engine, text: str, n_cases: int = 0, **case_options: Any) -> str:
    protocol = parse_protocol(text)
    with db.write_session(engine) as session:
        register(session, protocol)
        if n_cases:
            add_cases(session, n_cases, **case_options)
    return protocol.id


def stored(engine: Engine, trial_id: str) -> list[Assignment]:
    with db.read_session(engine) as session:
        return list(session.scalars(select(Assignment).where(Assignment.trial_id == trial_id)
                                    .order_by(Assignment.sequence)))


# --- pure allocation properties ----------------------------------------------------------------

arm_weights = st.sampled_from([
    {"control": 1, "treatment": 1},
    {"control": 1, "treatment": 2},
    {"control": 1, "a": 1, "b": 1},
    {"control": 2, "a": 1, "b": 1},
])


@st.composite
def arms_and_blocks(draw: Any) -> tuple[dict[str, int], list[int]]:
    arms = draw(arm_weights)
    total = sum(arms.values())
    multiples = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3, unique=True))
    return arms, [m * total for m in multiples]


@settings(max_examples=60, deadline=None)
@given(arms_and_blocks(), st.text(min_size=1, max_size=12), st.integers(1, 80))
def test_permuted_blocks_prefix_imbalance_and_complete_blocks(design: Any, seed: str, n: int) -> None:
    arms, sizes = design
    sequence = assign.permuted_blocks_sequence(seed, '{"s":"1"}', n, arms, sizes)
    counts: Counter[str] = Counter()
    for allocation in sequence:
        counts[allocation.arm] += 1
        assert assign.imbalance(counts, arms) <= max(sizes) / 2
    by_block: dict[int, list[str]] = {}
    for allocation in sequence:
        by_block.setdefault(allocation.block or 0, []).append(allocation.arm)
        assert allocation.block_size in sizes
    total = sum(arms.values())
    for block, members in by_block.items():
        size = next(a.block_size for a in sequence if a.block == block)
        assert size is not None
        if len(members) == size:  # a completed block follows the weights exactly
            assert Counter(members) == {arm: size * w // total for arm, w in arms.items()}
    # the one-at-a-time function gives the same stream
    for index in (1, n):
        assert assign.permuted_blocks_allocation(seed, '{"s":"1"}', index, arms, sizes) == sequence[index - 1]


@settings(max_examples=80, deadline=None)
@given(arm_weights, st.lists(st.integers(1, 25), min_size=1, max_size=8), st.text(min_size=1, max_size=8))
def test_complete_meets_its_stated_bound(arms: dict[str, int], sizes: list[int], seed: str) -> None:
    """Stated bound: every arm gets floor or ceil of n*w/W in every stratum and overall."""
    strata = {f"s{i}": n for i, n in enumerate(sizes)}
    counts = assign.complete_counts(strata, arms, assign.Stream(seed, "test"))
    total = sum(arms.values())
    for stratum, n in strata.items():
        assert sum(counts[stratum].values()) == n
        for arm, weight in arms.items():
            assert abs(counts[stratum][arm] - n * weight / total) < 1
    big_n = sum(sizes)
    for arm, weight in arms.items():
        assert abs(sum(c[arm] for c in counts.values()) - big_n * weight / total) < 1


@settings(max_examples=40, deadline=None)
@given(arm_weights, st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=30), st.randoms())
def test_complete_mapping_ignores_input_order(arms: dict[str, int], strata: list[str], rnd: random.Random) -> None:
    units = [(f"unit{i}", stratum) for i, stratum in enumerate(strata)]
    shuffled = list(units)
    rnd.shuffle(shuffled)
    assert assign.complete_allocation("s", 1, units, arms) == assign.complete_allocation("s", 1, shuffled, arms)


def test_misfits_are_not_all_given_to_the_first_arm() -> None:
    """The classic bug: eight strata of 3 units each, 1:1 -> 8 misfits must split 4/4."""
    counts = assign.complete_counts({f"s{i}": 3 for i in range(8)}, TWO_ARMS, assign.Stream("k", "x"))
    assert sum(c["control"] for c in counts.values()) == sum(c["treatment"] for c in counts.values()) == 12
    assert {c["control"] for c in counts.values()} == {1, 2}


@settings(max_examples=30, deadline=None)
@given(st.text(min_size=1, max_size=10), st.text(min_size=1, max_size=10))
def test_same_seed_same_allocation_different_seed_different(seed: str, other: str) -> None:
    first = [a.arm for a in assign.permuted_blocks_sequence(seed, "{}", 60, TWO_ARMS, [2, 4])]
    assert first == [a.arm for a in assign.permuted_blocks_sequence(seed, "{}", 60, TWO_ARMS, [2, 4])]
    if other != seed:
        assert first != [a.arm for a in assign.permuted_blocks_sequence(other, "{}", 60, TWO_ARMS, [2, 4])]


def _chi_square_p(observed: Counter[str], expected: dict[str, float]) -> float:
    from scipy import stats

    total = sum(expected.values())
    f_exp = [expected[a] * sum(observed.values()) / total for a in expected]
    return float(stats.chisquare([observed.get(a, 0) for a in expected], f_exp).pvalue)


@pytest.mark.parametrize("method", ["permuted_blocks", "complete", "minimization"])
def test_each_unit_gets_each_arm_with_its_probability_over_2000_seeds(method: str) -> None:
    """Over 2000 seeds, units at several positions get each arm with its weight (permuted blocks,
    complete) or with the probability recorded for it (minimization): chi-square p > 0.001."""
    arms = {"control": 1, "treatment": 2}
    positions = (0, 1, 4)
    observed: dict[int, Counter[str]] = {p: Counter() for p in positions}
    expected: dict[int, Counter[str]] = {p: Counter() for p in positions}
    for i in range(2000):
        seed = f"seed-{i}"
        probabilities = [assign.weight_probabilities(arms)] * 5
        if method == "permuted_blocks":
            arms_drawn = [a.arm for a in assign.permuted_blocks_sequence(seed, "{}", 5, arms, [3, 6])]
        elif method == "complete":
            units = [(f"u{j}", f"s{j % 2}") for j in range(5)]
            mapping = assign.complete_allocation(seed, 1, units, arms)
            arms_drawn = [mapping[u][0] for u, _s in units]
        else:
            state: assign.MinimizationState = {}
            arms_drawn, probabilities = [], []
            for j in range(5):
                values = {"f": f"v{j % 2}"}
                allocation = assign.minimization_choice(seed, j + 1, state, values, arms, 0.8)
                assign.minimization_add(state, values, allocation.arm)
                arms_drawn.append(allocation.arm)
                probabilities.append(allocation.probabilities)
        for p in positions:
            observed[p][arms_drawn[p]] += 1
            expected[p].update(probabilities[p])
    for p in positions:
        assert _chi_square_p(observed[p], dict(expected[p])) > 0.001, (p, observed[p], expected[p])


def test_minimization_prefers_the_arm_that_reduces_imbalance() -> None:
    state: assign.MinimizationState = {}
    assign.minimization_add(state, {"f": "x"}, "control")
    probabilities = assign.minimization_probabilities(state, {"f": "x"}, TWO_ARMS, 0.8)
    assert probabilities == pytest.approx({"control": 0.2, "treatment": 0.8})
    assert assign.minimization_probabilities({}, {"f": "x"}, TWO_ARMS, 0.8) == {"control": 0.5, "treatment": 0.5}


def _golden_now() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for seed in ("golden-1", "golden-2", "4711"):
        stream = assign.Stream(seed, "permuted_blocks\n{}\n1")
        out[seed] = {
            "stream_u64": [str(stream.next_u64()) for _ in range(5)],
            "order_key": assign.order_key(seed, "C00001"),
            "permuted_blocks_1to1": [[a.arm, a.block, a.block_size] for a in assign.permuted_blocks_sequence(
                seed, '{"months_band":"0-6"}', 16, TWO_ARMS, [2, 4, 6])],
            "permuted_blocks_2to1": [[a.arm, a.block, a.block_size] for a in assign.permuted_blocks_sequence(
                seed, '{"months_band":"0-6"}', 12, {"control": 1, "treatment": 2}, [3, 6])],
            "complete": sorted([k, v[0]] for k, v in assign.complete_allocation(
                seed, 1, [(f"u{j}", f"s{j % 3}") for j in range(11)], {"control": 1, "a": 1, "b": 1}).items()),
            "minimization": _minimization_run(seed),
        }
    return out


def _minimization_run(seed: str) -> list[str]:
    state: assign.MinimizationState = {}
    arms = []
    for j in range(10):
        values = {"barrier": BARRIERS[j % 3], "band": "0-6" if j % 2 else "6-12"}
        allocation = assign.minimization_choice(seed, j + 1, state, values, TWO_ARMS, 0.8)
        assign.minimization_add(state, values, allocation.arm)
        arms.append(allocation.arm)
    return arms


def test_golden_allocations_pin_the_stream() -> None:
    """A later release must not silently change the generator: the first allocations of fixed seeds."""
    assert json.loads(GOLDEN.read_text()) == _golden_now()


def test_generator_matches_an_independent_hmac() -> None:
    """docs/assignment.md: block c = HMAC-SHA256(seed, label || 0x00 || c as 8-byte big-endian)."""
    import hashlib
    import hmac

    block = hmac.new(b"abc", b"lbl\x00" + (0).to_bytes(8, "big"), hashlib.sha256).digest()
    stream = assign.Stream("abc", "lbl")
    assert [stream.next_u64() for _ in range(4)] == [int.from_bytes(block[i:i + 8], "big") for i in (0, 8, 16, 24)]
    assert assign.Stream("abc", "lbl").uniform_int(6) == int.from_bytes(block[:8], "big") % 6


# --- the database layer ------------------------------------------------------------------------


def test_whole_cohort_then_rolling_continues_block_state(engine: Engine) -> None:
    trial = setup_trial(engine, protocol_text(), 60)
    with db.write_session(engine) as session:
        result = assign.assign_all(session, trial, dt.date(2026, 1, 5))
        assert result.randomized == result.enrolled == 60
    with db.write_session(engine) as session:
        add_cases(session, 25, prefix="R", seed=2)
    with db.write_session(engine) as session:
        for i in range(25):
            assign.enroll(session, trial, f"R{i:05d}", dt.date(2026, 2, 1))
    rows = stored(engine, trial)
    assert [a.sequence for a in rows] == list(range(1, 86))
    with db.read_session(engine) as session:
        backdated = assign.backdated_enrollments(session, trial)
    assert len(backdated) == 85 and {b["enrolled_on"] for b in backdated} == {dt.date(2026, 1, 5), dt.date(2026, 2, 1)}
    by_stratum: dict[str, list[Assignment]] = {}
    for a in rows:
        by_stratum.setdefault(a.stratum, []).append(a)
    for stratum, members in by_stratum.items():
        assert [a.stratum_sequence for a in members] == list(range(1, len(members) + 1))
        expected = assign.permuted_blocks_sequence("fixed-seed", stratum, len(members), TWO_ARMS, [2, 4, 6])
        assert [(a.arm, a.block, a.block_size) for a in members] == [(e.arm, e.block, e.block_size) for e in expected]
    with db.read_session(engine) as session:
        check = verify(session, trial)
    assert check.ok, check.findings
    assert check.allocations == 85


def test_assign_dry_run_writes_nothing_and_shows_no_arm(engine: Engine) -> None:
    trial = setup_trial(engine, protocol_text(), 20)
    with db.write_session(engine) as session:
        result = assign.assign_all(session, trial, dry_run=True)
    assert result.randomized == 20 and result.by_arm == {}
    assert stored(engine, trial) == []


def test_complete_assignment_does_not_depend_on_import_order(engine: Engine) -> None:
    text = protocol_text("cohort", method="complete", arms={"control": 1, "a": 1, "b": 1})
    trial = setup_trial(engine, text)
    with db.write_session(engine) as session:
        add_cases(session, 40, prefix="K")
        assign.assign_all(session, trial)
    rows = {a.unit_key: a.arm for a in stored(engine, trial)}
    protocol = parse_protocol(text)
    from trials.strata import case_stratum, stratum_key

    with db.read_session(engine) as session:
        units = [(c.case_key, stratum_key(case_stratum(protocol, assign.frozen_case(c))))
                 for c in session.scalars(select(Case))]
    expected = assign.complete_allocation("fixed-seed", 1, sorted(units, key=lambda u: u[0], reverse=True),
                                          protocol.arms)
    assert rows == {k: v[0] for k, v in expected.items()}
    assert set(Counter(rows.values()).values()) <= {13, 14}


def test_cluster_trial_randomizes_clusters_and_cases_inherit(engine: Engine) -> None:
    text = protocol_text("clusters", unit="caseworker", factors=["team"], block_sizes=[2])
    trial = setup_trial(engine, text, 36)
    with db.write_session(engine) as session:
        result = assign.assign_all(session, trial)
    assert result.randomized == 6 and result.enrolled == 36
    rows = stored(engine, trial)
    clusters = {a.unit_key: a.arm for a in rows}
    for team in ("north", "south"):  # three caseworkers per team, blocks of 2: 2:1 or 1:2
        assert sorted(Counter(a.arm for a in rows if a.stratum_label == f"team={team}").values()) == [1, 2]
    with db.read_session(engine) as session:
        for enrollment in session.scalars(select(Enrollment).where(Enrollment.trial_id == trial)):
            assert enrollment.arm == clusters[str(enrollment.cluster)]
    with db.write_session(engine) as session:
        add_cases(session, 1, prefix="L", caseworker="anna")
        add_cases(session, 1, prefix="M", caseworker="new-worker")
    with db.write_session(engine) as session:
        assert assign.enroll(session, trial, "L00000").arm == clusters["anna"]
    with pytest.raises(InputError, match="caseworker 'new-worker' is not randomized"), \
            db.write_session(engine) as session:
        assign.enroll(session, trial, "M00000")
    with db.read_session(engine) as session:
        assert verify(session, trial).ok


def test_minimization_trial_is_reproducible_and_verifiable(engine: Engine) -> None:
    text = protocol_text("mini", method="minimization",
                         factors=["primary_barrier", "months_band", "benefit_type"])
    trial = setup_trial(engine, text, 30)
    with db.write_session(engine) as session:
        assign.assign_all(session, trial)
        add_cases(session, 5, prefix="N", seed=3)
    with db.write_session(engine) as session:
        for i in range(5):
            assign.enroll(session, trial, f"N{i:05d}")
    rows = stored(engine, trial)
    assert all(a.method == "minimization" and a.block is None for a in rows)
    assert abs(Counter(a.arm for a in rows)["control"] - 17.5) <= 3
    with db.read_session(engine) as session:
        assert verify(session, trial).allocations == 35


def test_eligibility_and_overlap_refusal_names_the_other_trial(engine: Engine) -> None:
    setup_trial(engine, protocol_text("first", eligibility="months_max = 100"), 10, months_unemployed=3.0)
    setup_trial(engine, protocol_text("second"))
    setup_trial(engine, protocol_text("third", eligibility='benefit_types = ["sickness_benefit"]'))
    with db.write_session(engine) as session:
        assign.assign_all(session, "first")
    with pytest.raises(InputError, match="already enrolled in the active trial 'first'"), \
            db.write_session(engine) as session:
        assign.enroll(session, "second", "C00000")
    with pytest.raises(InputError, match="not eligible for third: benefit type social_assistance"), \
            db.write_session(engine) as session:
        assign.enroll(session, "third", "C00001")
    with db.write_session(engine) as session:
        result = assign.assign_all(session, "second")
    assert result.randomized == 0 and result.overlapping == {"first": 10}


def test_frozen_stratum_survives_a_later_correction(engine: Engine) -> None:
    trial = setup_trial(engine, protocol_text(), 4, months_unemployed=2.0)
    with db.write_session(engine) as session:
        assign.assign_all(session, trial)
    with db.write_session(engine) as session:
        case = session.scalars(select(Case).where(Case.case_key == "C00000")).one()
        case.months_unemployed = 20.0  # a correction (the importer writes case_history too)
        case.revision = 2
    with db.read_session(engine) as session:
        enrollment = session.scalars(select(Enrollment).order_by(Enrollment.sequence)).first()
        assert enrollment is not None and enrollment.frozen["months_unemployed"] == 2.0
        assert verify(session, trial).ok
    assert all('"months_band":"0-6"' in a.stratum for a in stored(engine, trial))


def test_close_reveals_seed_records_partial_blocks_and_stops_enrollment(engine: Engine) -> None:
    trial = setup_trial(engine, protocol_text(factors=[]), 5)
    with db.write_session(engine) as session:
        assign.assign_all(session, trial)
    with db.write_session(engine) as session:
        result = assign.close(session, trial)
    assert result.seed == "fixed-seed"
    filled = sum(b["filled"] for b in result.partial_blocks)
    assert len(result.partial_blocks) <= 1 and (filled == 0 or filled < result.partial_blocks[0]["block_size"])
    with db.write_session(engine) as session:
        add_cases(session, 1, prefix="Z")
    with pytest.raises(Refused, match="closed"), db.write_session(engine) as session:
        assign.enroll(session, trial, "Z00000")
    with db.read_session(engine) as session:
        assert verify(session, trial).ok


def test_enrollment_events_never_change_the_arm(engine: Engine) -> None:
    trial = setup_trial(engine, protocol_text(), 4)
    with db.write_session(engine) as session:
        assign.assign_all(session, trial, dt.date(2026, 1, 1))
    before = [(a.unit_key, a.arm) for a in stored(engine, trial)]
    with db.write_session(engine) as session:
        assign.record_enrollment_event(session, trial, "C00001", "crossed_over", "moved to the other team",
                                       dt.date(2026, 3, 1))
    with pytest.raises(InputError, match="--kind"), db.write_session(engine) as session:
        assign.record_enrollment_event(session, trial, "C00001", "vanished", "x")
    assert [(a.unit_key, a.arm) for a in stored(engine, trial)] == before
    with db.read_session(engine) as session:
        assert verify(session, trial).ok


# --- identical on both backends -----------------------------------------------------------------


def test_export_is_identical_on_every_backend(engine: Engine, tmp_path: Path) -> None:
    """Same inputs -> every export column but assigned_at equal to one golden file, on SQLite and PostgreSQL."""
    trial = setup_trial(engine, protocol_text(arms={"control": 1, "treatment": 2}, block_sizes=[3, 6]), 30)
    with db.write_session(engine) as session:
        assign.assign_all(session, trial, dt.date(2026, 1, 5))
        add_cases(session, 6, prefix="R", seed=5)
    with db.write_session(engine) as session:
        assign.enroll_many(session, trial, [f"R{i:05d}" for i in range(6)], dt.date(2026, 1, 6))
    path = tmp_path / "export.csv"
    with db.read_session(engine) as session:
        assign.write_assignments_csv(session, trial, path)
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["case_id", "arm", "stratum", "sequence", "block", "method", "assigned_at", "p_control",
                       "p_treatment"]
    without_time = [row[:6] + row[7:] for row in rows]
    golden = GOLDEN.parent / "export_2to1.json"
    assert without_time == json.loads(golden.read_text())


# --- concurrency: 8 real processes -----------------------------------------------------------------


def enroll_worker(url: str, trial: str, keys: list[str], skip_enrolled: bool = False) -> int:
    """Enroll `keys` one transaction each; with `skip_enrolled`, a case found already enrolled
    (by a concurrent `assign`) is passed over. Returns how many this process enrolled."""
    engine = db.make_engine(url)
    done = 0
    for key in keys:
        try:
            with db.write_session(engine) as session:
                assign.enroll(session, trial, key)
        except InputError as exc:
            if not (skip_enrolled and "already enrolled" in str(exc.lines())):
                raise
            continue
        done += 1
    engine.dispose()
    return done


def enroll_in_processes(url: str, trial: str, keys: list[str], processes: int, skip_enrolled: bool = False) -> list[int]:
    """Real OS processes ('spawn') enrolling interleaved shares of `keys` at once; each one's count."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        return pool.starmap(enroll_worker, [(url, trial, keys[i::processes], skip_enrolled)
                                             for i in range(processes)])


def check_enrolled_once(engine: Engine, trial: str, total: int) -> list[Assignment]:
    """No duplicate, no loss: sequences 1..total, each unit and case once, the audit chain intact."""
    rows = stored(engine, trial)
    assert sorted(a.sequence for a in rows) == list(range(1, total + 1))
    assert len({a.unit_key for a in rows}) == total
    with db.read_session(engine) as session:
        enrollments = session.scalars(select(Enrollment).where(Enrollment.trial_id == trial)).all()
        assert sorted(e.sequence for e in enrollments) == list(range(1, total + 1))
        assert len({e.case_id for e in enrollments}) == total
        check = verify(session, trial)
    assert check.ok, check.findings[:5]
    assert check.allocations == total
    return rows


@pytest.mark.slow
def test_concurrent_processes_enroll_without_duplicates_or_losses(engine: Engine, db_url: str, backend: str) -> None:
    """PostgreSQL: 8 real processes enroll 200 cases each into the same strata (advisory lock).
    SQLite: 4 processes x 25 (BEGIN IMMEDIATE serialises the writers the same way)."""
    processes, each = (8, 200) if backend == "postgresql" else (4, 25)
    total = processes * each
    trial = setup_trial(engine, protocol_text(factors=["primary_barrier"], block_sizes=[2, 4, 6]), total)
    keys = [f"C{i:05d}" for i in range(total)]
    assert enroll_in_processes(db_url, trial, keys, processes) == [each] * processes
    rows = check_enrolled_once(engine, trial, total)
    counts: dict[str, Counter[str]] = {}
    for a in rows:  # in enrollment order: every prefix within half the largest block
        counts.setdefault(a.stratum, Counter())[a.arm] += 1
        assert assign.imbalance(counts[a.stratum], TWO_ARMS) <= 3


def test_cpr_named_case_is_pseudonymised_and_never_printed(engine: Engine, key_file: Path) -> None:
    from trials.pseudonym import load_key

    key = load_key(key_file)
    cpr = "0101901234"
    trial = setup_trial(engine, protocol_text())
    with db.write_session(engine) as session:
        case = add_cases(session, 1, prefix="X")[0]
        case.case_key = pseudonymise(cpr, key)
        case.id_kind = "cpr"
    with db.write_session(engine) as session:
        result = assign.enroll(session, trial, "010190-1234", key=key)
    assert result.case_key == pseudonymise(cpr, key)
    with pytest.raises(InputError) as raised, db.write_session(engine) as session:
        assign.enroll(session, trial, "010190-1234", key=key)
    assert "1234" not in str(raised.value)


# --- the commands ---------------------------------------------------------------------------------


def test_commands_assign_enroll_export_event_close(engine: Engine, trials_cli: Any, key_file: Path,
                                                  tmp_path: Path) -> None:
    from trials.models import Trial
    from trials.pseudonym import load_key

    trial = setup_trial(engine, protocol_text(seed=None), 12)
    with db.write_session(engine) as session:
        seed = session.get(Trial, trial).seed  # type: ignore[union-attr]
        add_cases(session, 1, prefix="L", seed=4)[0].case_key = "=HYPERLINK(1)"
    outputs = []
    dry = trials_cli.ok("assign", trial, "--dry-run")
    assert "would randomize 13 cases" in dry.stdout and "treatment" not in dry.stdout
    assert stored(engine, trial) == []
    outputs.append(dry.stdout)
    outputs.append(trials_cli.ok("assign", trial, "--enrolled-on", "2026-01-05").stdout)
    with db.write_session(engine) as session:
        cpr_case = add_cases(session, 1, prefix="P", seed=5)[0]
        cpr_case.case_key = pseudonymise("0101901234", load_key(key_file))
        cpr_case.id_kind = "cpr"
    enrolled = trials_cli.ok("enroll", trial, "010190-1234", "--enrolled-on", "2026-01-07")
    assert enrolled.stdout.startswith("(CPR given): ") and "1234" not in enrolled.stdout
    outputs.append(enrolled.stdout)
    again = trials_cli("enroll", trial, "010190-1234")
    assert again.exit_code == 2 and "already enrolled" in again.stderr
    assert "010190" not in again.stderr and "1234" not in again.stderr
    bad = trials_cli("enroll", trial, "nobody", "--enrolled-on", "2026-13-01")
    assert bad.exit_code == 2
    outputs.append(trials_cli.ok("enrollment", "event", trial, "=HYPERLINK(1)", "--kind", "not_treated",
                                 "--reason", "declined").stdout)
    target = tmp_path / "assignments.csv"
    outputs.append(trials_cli.ok("assignments", "export", trial, "-o", target).stdout)
    with target.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["case_id", "arm", "stratum", "sequence", "block", "method", "assigned_at",
                             "p_control", "p_treatment"]
    assert len(rows) == 14 and "'=HYPERLINK(1)" in {r["case_id"] for r in rows}
    assert {r["p_treatment"] for r in rows} == {"0.5"}
    outputs.append(trials_cli.ok("audit", "verify").stdout)
    outputs.append(trials_cli.ok("audit", "log", "--json").stdout)
    assert all(seed not in out for out in outputs)  # concealment: never shown while open
    assert seed in trials_cli.ok("close", trial).stdout
    assert trials_cli.ok("audit", "verify", trial).stdout.startswith("OK: ")


def test_cluster_export_has_the_cluster_column(engine: Engine) -> None:
    trial = setup_trial(engine, protocol_text("teams", unit="team", factors=[], block_sizes=[2]), 10)
    with db.write_session(engine) as session:
        assign.assign_all(session, trial)
    with db.read_session(engine) as session:
        header, rows = assign.export_assignments(session, trial)
    assert header[-1] == "cluster" and {r[-1] for r in rows} == {"north", "south"}


def test_enroll_imports_nothing_heavy(tmp_path: Path) -> None:
    """`trials enroll` stays light: a real enrollment in a fresh interpreter loads no numpy/scipy/pandas."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'light.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    trial = setup_trial(engine, protocol_text(), 1)
    engine.dispose()
    code = (
        "import sys\nfrom cli import main\n"
        f"try:\n    main(['--db', {url!r}, 'enroll', {trial!r}, 'C00000'])\nexcept SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'scipy', 'pandas', 'lifelines')))\n"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
    assert ": control" in out.stdout or ": treatment" in out.stdout


def test_amendment_and_rolling_complete_batches_still_verify(engine: Engine) -> None:
    from trials.protocol import amend

    text = protocol_text("batches", method="complete", factors=["primary_barrier"])
    trial = setup_trial(engine, text, 15)
    with db.write_session(engine) as session:
        assign.assign_all(session, trial)
        amended = text.replace('hypothesis = "It works."', 'hypothesis = "It works well."')
        amend(session, parse_protocol(amended), "clearer hypothesis")
        add_cases(session, 4, prefix="Q", seed=8)
    with db.write_session(engine) as session:
        assign.enroll_many(session, trial, [f"Q{i:05d}" for i in range(2)])
    with db.write_session(engine) as session:
        assign.assign_all(session, trial)
    rows = stored(engine, trial)
    assert [a.block for a in rows] == [1] * 15 + [2, 3] + [4] * 2
    assert [a.protocol_version for a in rows] == [1] * 15 + [2] * 4
    with db.read_session(engine) as session:
        check = verify(session, trial)
    assert check.ok, check.findings
    assert check.allocations == 19


def assign_cohort_in_parts_of_7(engine: Engine, monkeypatch: pytest.MonkeyPatch, method: str, unit: str) -> str:
    """A trial of 40 cases assigned as a whole cohort logged in parts of 7 units."""
    monkeypatch.setattr(assign, "EVENT_PART", 7)
    factors = ("size_band",) if unit != "case" else ("primary_barrier", "months_band")
    trial_id = setup_trial(engine, protocol_text(method=method, unit=unit, factors=factors), n_cases=40)
    with db.write_session(engine) as session:
        assign.assign_all(session, trial_id, dt.date(2024, 2, 5))
    return trial_id


@pytest.mark.parametrize(("method", "unit"), [("permuted_blocks", "case"), ("complete", "case"),
                                               ("complete", "caseworker")])
def test_a_large_cohort_is_logged_in_parts_that_verify(engine: Engine, monkeypatch: pytest.MonkeyPatch,
                                                        method: str, unit: str) -> None:
    """A whole cohort is logged as several `trial_assigned` events (parts) in one transaction;
    verification re-derives the allocations across the parts."""
    trial_id = assign_cohort_in_parts_of_7(engine, monkeypatch, method, unit)
    with db.read_session(engine) as session:
        parts = session.scalars(select(AuditEvent).where(AuditEvent.action == "trial_assigned")).all()
        assert len(parts) == 6  # 40 enrollments in parts of 7
        assert [json.loads(p.payload)["part"] for p in parts] == [1, 2, 3, 4, 5, 6]
        verification = verify(session, trial_id)
        assert verification.ok, verification.findings
        assert verification.allocations == (40 if unit == "case" else len(stored(engine, trial_id)))


# What a whole cohort of 40 cases logged in parts of 7 wrote before assignment was streamed part by
# part (every payload, every row but ids and clock times): the streamed path must write the same.
STREAMED_COHORT = {
    ("permuted_blocks", "case"): "d591e52a2399bfec5fd111cdcf012700c0ed086a2c46cffdb54be6180615cda3",
    ("complete", "case"): "308dfd883f97386eac581457d9c165b9ae3f707fcc758768dc970a536196ec8f",
    ("complete", "caseworker"): "7a66acdd31812291c142439600b90cc9244cc1402d13c60beeb9cb2ca9375d24",
    ("minimization", "case"): "062ab4a6afcf00008f43f7363ed6f65647cb55b8b3ff3ffdbbc8a4fa0a53a8f4",
}


@pytest.mark.parametrize(("method", "unit"), list(STREAMED_COHORT))
def test_a_cohort_logged_in_parts_writes_what_it_always_wrote(engine: Engine, monkeypatch: pytest.MonkeyPatch,
                                                               method: str, unit: str) -> None:
    from trials.audit import canonical_json, sha256_hex

    assign_cohort_in_parts_of_7(engine, monkeypatch, method, unit)
    with db.read_session(engine) as session:
        payloads = session.scalars(select(AuditEvent.payload).where(AuditEvent.action == "trial_assigned")
                                   .order_by(AuditEvent.seq)).all()
        sequence_of = {id_: sequence for id_, sequence in session.execute(select(Assignment.id, Assignment.sequence))}
        assignments = [{c: getattr(a, c) for c in ("sequence", "unit", "unit_key", "case_id", "stratum",
                                                  "stratum_label", "stratum_sequence", "arm", "method", "algorithm",
                                                  "block", "block_size", "probabilities", "enrolled_on",
                                                  "protocol_version", "audit_seq")}
                       for a in session.scalars(select(Assignment).order_by(Assignment.sequence))]
        enrollments = [{"sequence": e.sequence, "case_id": e.case_id, "assignment": sequence_of[e.assignment_id],
                        "arm": e.arm, "cluster": e.cluster, "case_revision": e.case_revision, "frozen": e.frozen,
                        "enrolled_on": e.enrolled_on}
                       for e in session.scalars(select(Enrollment).order_by(Enrollment.sequence))]
    written = sha256_hex(canonical_json({"payloads": payloads, "assignments": assignments,
                                         "enrollments": enrollments}))
    assert written == STREAMED_COHORT[(method, unit)]


# --- rolling enrollment inside the write lock ----------------------------------------------------
#
# Writers are serialised, so every round trip an enrollment makes inside `write_session` is time
# no other enroller can use. This counts statements (not time, which is noisy): a change that adds
# a query to the enrollment path shows up here.

# The write lock (advisory lock or BEGIN IMMEDIATE), the trial with its protocol, the case with
# its other enrollments, the rolling position with the audit head, and three inserts.
STATEMENTS_PER_ENROLLMENT = 7


def test_one_rolling_enrollment_sends_at_most_seven_statements(engine: Engine) -> None:
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
