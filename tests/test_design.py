"""Tests of trials/design.py: re-running the registered randomization with fresh randomness.

The permuted-block redraw is checked against the exact distribution of the first units of a
stratum (enumerated here by brute force over block sizes and all orders of each block) and
against the registered HMAC generator of `trials.assign` drawn under many seeds.
"""

from __future__ import annotations

from collections import Counter
from fractions import Fraction
from itertools import permutations

import numpy as np
import pytest
from scipy import stats
from sqlalchemy.engine import Engine

from tests.test_assign import protocol_text, setup_trial
from trials import assign, db, design
from trials.design import load_design, permuted_blocks_draws


def exact_prefix_distribution(n: int, sizes: list[int], weights: list[int]) -> dict[tuple[int, ...], Fraction]:
    """P(first n arms = pattern) when blocks of uniformly drawn size are uniformly shuffled."""
    total = sum(weights)
    orders = {size: sorted(set(permutations([a for a, w in enumerate(weights) for _ in range(w * size // total)])))
              for size in sizes}
    out: Counter[tuple[int, ...]] = Counter()

    def extend(prefix: tuple[int, ...], p: Fraction) -> None:
        if len(prefix) >= n:
            out[prefix[:n]] += p
            return
        for size in sizes:
            for order in orders[size]:
                extend(prefix + order, p / len(sizes) / len(orders[size]))

    extend((), Fraction(1))
    return dict(out)


def goodness_of_fit(draws: np.ndarray, exact: dict[tuple[int, ...], Fraction]) -> float:
    observed = Counter(map(tuple, draws.tolist()))
    assert set(observed) <= set(exact), "a pattern the process cannot produce was drawn"
    patterns = sorted(exact)
    expected = np.array([float(exact[p]) for p in patterns]) * len(draws)
    return float(stats.chisquare([observed[p] for p in patterns], expected).pvalue)


DESIGNS = [([2, 4], [1, 1], 5), ([3, 6], [1, 2], 5), ([3], [1, 1, 1], 4), ([2, 4, 6], [1, 1], 7)]


@pytest.mark.parametrize(("sizes", "weights", "n"), DESIGNS)
def test_permuted_block_redraws_follow_the_exact_distribution(sizes: list[int], weights: list[int], n: int) -> None:
    draws = permuted_blocks_draws(20_000, n, sizes, weights, np.random.default_rng(11))
    assert draws.shape == (20_000, n)
    assert goodness_of_fit(draws, exact_prefix_distribution(n, sizes, weights)) > 1e-3


@pytest.mark.parametrize(("sizes", "weights", "n"), DESIGNS[:2])
def test_blocks_too_big_to_list_are_shuffled_by_sorting(monkeypatch: pytest.MonkeyPatch, sizes: list[int],
                                                        weights: list[int], n: int) -> None:
    monkeypatch.setattr(design, "MAX_ARRANGEMENTS", 1)
    design._block_table.cache_clear()
    try:
        draws = permuted_blocks_draws(20_000, n, sizes, weights, np.random.default_rng(12))
    finally:
        design._block_table.cache_clear()
    assert goodness_of_fit(draws, exact_prefix_distribution(n, sizes, weights)) > 1e-3


def test_redraws_match_the_registered_generator_under_many_seeds() -> None:
    """The HMAC stream of trials.assign, over 4,000 seeds, and the numpy redraw give the same distribution."""
    sizes, weights, n = [2, 4], {"control": 1, "treatment": 1}, 5
    registered = Counter(
        tuple(0 if a.arm == "control" else 1 for a in assign.permuted_blocks_sequence(f"seed-{i}", "s", n, weights, sizes))
        for i in range(4_000))
    redrawn = Counter(map(tuple, permuted_blocks_draws(4_000, n, sizes, [1, 1], np.random.default_rng(5)).tolist()))
    patterns = sorted(set(registered) | set(redrawn))
    table = np.array([[registered[p] for p in patterns], [redrawn[p] for p in patterns]])
    assert stats.chi2_contingency(table).pvalue > 1e-3


def test_long_strata_keep_every_block_balanced() -> None:
    draws = permuted_blocks_draws(50, 1_001, [2, 4, 6], [1, 1], np.random.default_rng(2))
    prefix_imbalance = np.abs(np.cumsum(2 * draws.astype(int) - 1, axis=1))
    assert prefix_imbalance.max() <= 3  # never more than half of the largest block
    assert draws.dtype == np.int8


def test_rerandomize_reruns_the_registered_procedure(engine: Engine) -> None:
    import numpy as np

    trial = setup_trial(engine, protocol_text(factors=["primary_barrier"], block_sizes=[2, 4]), 40)
    complete = setup_trial(engine, protocol_text("ccc", method="complete", factors=["primary_barrier"],
                                                 allow_overlap=True))
    with db.write_session(engine) as session:
        assign.assign_all(session, trial)
        assign.assign_all(session, complete)
    with db.read_session(engine) as session:
        design = load_design(session, trial)
        other = load_design(session, complete)
    draws = design.rerandomize(200, np.random.default_rng(3))
    assert draws.shape == (200, 40) and set(np.unique(draws)) <= {0, 1}
    strata = np.asarray(design.stratum_of_row)
    for stratum in set(design.stratum_of_row):
        members = draws[:, strata == stratum]
        assert np.all(np.abs(members.sum(axis=1) * 2 - members.shape[1]) <= 2)  # at most half of block 4
    assert draws.mean() == pytest.approx(0.5, abs=0.05)
    drawn = other.rerandomize(50, np.random.default_rng(4))
    strata = np.asarray(other.stratum_of_row)
    for stratum in set(other.stratum_of_row):
        n = int((strata == stratum).sum())
        assert set(drawn[:, strata == stratum].sum(axis=1)) <= {n // 2, (n + 1) // 2}


