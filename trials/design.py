"""A trial's registered randomization, re-run with fresh randomness (randomization inference).

`load_design` reads what the procedure needs from the database (units in assignment order with
their frozen strata and batches, and which unit each enrolled case belongs to); `rerandomize`
re-runs the procedure R times with a numpy Generator instead of the trial's seed, vectorised
over the replicates: this is what the report's randomization inference does 10,000 times, so
a trial of 100,000 cases means a billion unit draws and the permuted-block path avoids sorting.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from trials.assign import complete_counts, trial_context
from trials.models import Assignment, Case, Enrollment
from trials.strata import stratum_values

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

ARM_DTYPE = "int8"
"""Arm codes are drawn as int8: a batch of 500 replicates of 100,000 units is 50 MB, not 400."""

MAX_ARRANGEMENTS = 1 << 16
"""Block tables with more entries than this are replaced by shuffling with sorted random keys."""


@dataclass
class Design:
    """A trial's randomization as registered, for re-running it with fresh randomness.

    Rows are the trial's enrollments in enrollment order (`case_ids` are cases.id, `case_keys`
    the stored keys); `arm_index` codes the observed arm as its position in `arms` (protocol
    order). `rerandomize(R, rng)` returns an (R, n) integer array of arm indices drawn by
    re-running the registered procedure (method, strata frozen at randomization, block sizes,
    weights, clusters) with the numpy Generator `rng` instead of the seed.
    """

    trial_id: str
    method: str
    arms: list[str]
    weights: list[int]
    block_sizes: list[int]
    minimization_probability: float
    case_ids: list[int]
    case_keys: list[str]
    arm_index: list[int]
    unit_strata: list[str]
    unit_blocks: list[int | None]
    unit_of_row: list[int]
    stratum_of_row: list[str]

    def rerandomize(self, n_rep: int, rng: np.random.Generator) -> NDArray[np.int8]:
        return rerandomize(self, n_rep, rng)


def load_design(session: Session, trial_id: str) -> Design:
    """The design of a trial from its enrollments and assignments (see `Design`)."""
    ctx = trial_context(session, trial_id, for_writing=False)
    protocol = ctx.protocol
    arms = list(protocol.arms)
    # Plain rows of the few columns needed, not ORM objects: a trial can have a million cases.
    units = session.execute(select(Assignment.id, Assignment.stratum, Assignment.block)
                            .where(Assignment.trial_id == trial_id).order_by(Assignment.sequence)).all()
    position = {a.id: i for i, a in enumerate(units)}
    rows = session.execute(select(Enrollment.case_id, Enrollment.arm, Enrollment.assignment_id, Case.case_key)
                           .join(Case, Case.id == Enrollment.case_id)
                           .where(Enrollment.trial_id == trial_id).order_by(Enrollment.sequence)).all()
    strata_of_unit = [a.stratum for a in units]
    return Design(
        trial_id=trial_id, method=protocol.stratification.method, arms=arms,
        weights=[protocol.arms[a] for a in arms], block_sizes=list(protocol.stratification.block_sizes),
        minimization_probability=protocol.stratification.minimization_probability,
        case_ids=[e.case_id for e in rows], case_keys=[e.case_key for e in rows],
        arm_index=[arms.index(e.arm) for e in rows], unit_strata=strata_of_unit,
        unit_blocks=[a.block for a in units],
        unit_of_row=[position[e.assignment_id] for e in rows],
        stratum_of_row=[strata_of_unit[position[e.assignment_id]] for e in rows],
    )


def rerandomize(design: Design, n_rep: int, rng: np.random.Generator) -> NDArray[np.int8]:
    """An (n_rep, n_enrollments) array of arm indices from re-running the design's procedure.

    Units (cases, or clusters in a cluster trial) are re-randomized in their original order
    and strata; every enrolled case takes its unit's arm. Permuted blocks draw fresh block
    sizes and orders (`permuted_blocks_draws`); complete randomization reuses the dependent
    rounding of `complete_counts` driven by `rng`; minimization replays the units in order,
    vectorised over replicates.
    """
    import numpy as np

    n_units = len(design.unit_strata)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, stratum in enumerate(design.unit_strata):
        groups[stratum].append(i)
    rows = np.asarray(design.unit_of_row, dtype=np.int64)
    if design.method == "permuted_blocks":
        # Stratum by stratum side by side, then one gather into row order (np.take: a column
        # gather with fancy indexing is ten times slower, and this runs on a billion draws).
        by_stratum = np.concatenate([permuted_blocks_draws(n_rep, len(idx), design.block_sizes, design.weights, rng)
                                     for idx in groups.values()], axis=1)
        column_of_unit = np.empty(n_units, dtype=np.int64)
        column_of_unit[np.concatenate([np.asarray(idx, dtype=np.int64) for idx in groups.values()])] = \
            np.arange(n_units)
        return np.take(by_stratum, column_of_unit[rows], axis=1)
    unit_arms = np.zeros((n_rep, n_units), dtype=ARM_DTYPE)
    if design.method == "complete":
        _complete_draws(design, groups, unit_arms, rng)
    else:
        _minimization_draws(design, unit_arms, rng)
    return np.take(unit_arms, rows, axis=1)


def permuted_blocks_draws(n_rep: int, n_units: int, block_sizes: list[int], weights: list[int],
                          rng: np.random.Generator) -> NDArray[np.int8]:
    """(n_rep, n_units) arms of one stratum's units under permuted blocks, drawn afresh.

    Each replicate is a sequence of independent blocks, each of a size drawn uniformly from
    `block_sizes` and holding the arms in proportion to `weights` in a uniformly random order.
    A uniformly random permutation of a multiset is a uniformly random one of its distinct
    arrangements, so each block is one integer drawn uniformly from a table in which every
    size has the same number of entries, spread evenly over its arrangements (no sorting;
    blocks too big to list are shuffled by sorting random keys). The blocks are laid end to
    end and each replicate keeps its first `n_units` arms.
    """
    import numpy as np

    blocks = _block_table(tuple(block_sizes), tuple(weights))
    mean = float(np.mean(block_sizes))
    # Enough blocks for n_units with overwhelming probability; rows still short get more blocks
    # of the same independent kind appended, so the sequence is exactly the registered process.
    n_blocks = math.ceil(n_units / mean + 2 * math.sqrt(n_units) + 1)
    drawn = rng.integers(0, len(blocks.length), size=(n_rep, n_blocks), dtype=np.int32)
    lengths = np.take(blocks.length, drawn)
    while (lengths.sum(axis=1) < n_units).any():
        drawn = np.concatenate([drawn, rng.integers(0, len(blocks.length), size=(n_rep, n_blocks), dtype=np.int32)],
                               axis=1)
        lengths = np.take(blocks.length, drawn)
    ends = np.cumsum(lengths.ravel(), dtype=np.int64)
    index_type = np.int32 if ends[-1] < 2**31 else np.int64
    # Position p of a block is blocks.arms[first + p]; the block begins at (end - length) in the
    # concatenation of all blocks of all replicates.
    offset = (np.take(blocks.first, drawn).ravel() - (ends - lengths.ravel())).astype(index_type)
    index = np.repeat(offset, lengths.ravel())
    index += np.arange(len(index), dtype=index_type)
    sequence = np.take(blocks.arms, index)
    if blocks.shuffle:
        block_of = np.repeat(np.arange(lengths.size), lengths.ravel())
        sequence = sequence[np.lexsort((rng.random(len(sequence)), block_of))]
    row_end = ends[lengths.shape[1] - 1::lengths.shape[1]]
    columns = np.add.outer(np.concatenate([[0], row_end[:-1]]).astype(index_type), np.arange(n_units, dtype=index_type))
    return np.asarray(np.take(sequence, columns), dtype=ARM_DTYPE)


@dataclass(frozen=True)
class _BlockTable:
    """Equally likely blocks: entry i is the block arms[first[i]: first[i] + length[i]]."""

    arms: NDArray[np.int8]
    first: NDArray[np.int64]
    length: NDArray[np.int32]
    shuffle: bool  # True: arms are in arm order (blocks too big to list) and must be shuffled


@lru_cache(maxsize=64)
def _block_table(block_sizes: tuple[int, ...], weights: tuple[int, ...]) -> _BlockTable:
    import numpy as np

    listed = [_arrangements(size, weights) for size in block_sizes]
    per_size = math.lcm(*(len(table) for table in listed if table is not None))
    shuffle = any(table is None for table in listed) or per_size * len(block_sizes) > MAX_ARRANGEMENTS
    tables = [_pattern(size, weights)[None, :] if shuffle or table is None else table
              for size, table in zip(block_sizes, listed, strict=True)]
    # Every size gets `per_size` entries, spread evenly over its arrangements.
    per_size = 1 if shuffle else per_size
    starts = np.cumsum([0] + [table.size for table in tables[:-1]])
    first = np.concatenate([np.repeat(start + np.arange(len(table)) * size, per_size // len(table))
                            for start, size, table in zip(starts, block_sizes, tables, strict=True)])
    return _BlockTable(np.concatenate([table.ravel() for table in tables]), first.astype(np.int64),
                       np.repeat(np.asarray(block_sizes, dtype=np.int32), per_size), shuffle)


def _pattern(size: int, weights: Sequence[int]) -> NDArray[np.int8]:
    """One block's arms in arm order (0, 0, 1, 1 for size 4 and weights 1:1)."""
    import numpy as np

    total = sum(weights)
    return np.repeat(np.arange(len(weights)), [w * size // total for w in weights]).astype(ARM_DTYPE)


def _arrangements(size: int, weights: tuple[int, ...]) -> NDArray[np.int8] | None:
    """Every distinct order of one block's arms (rows), or None if there are too many to list."""
    import numpy as np

    total = sum(weights)
    per_arm = [w * size // total for w in weights]
    count = math.factorial(size)
    for n in per_arm:
        count //= math.factorial(n)
    if count > MAX_ARRANGEMENTS:
        return None
    return np.array(list(_distinct_orders(per_arm)), dtype=ARM_DTYPE).reshape(count, size)


def _distinct_orders(remaining: list[int]) -> Iterator[tuple[int, ...]]:
    """The distinct sequences with remaining[a] copies of arm a, in lexicographic order."""
    if not any(remaining):
        yield ()
        return
    for arm, left in enumerate(remaining):
        if left:
            remaining[arm] -= 1
            for rest in _distinct_orders(remaining):
                yield (arm, *rest)
            remaining[arm] += 1


def _complete_draws(design: Design, groups: dict[str, list[int]], unit_arms: NDArray[np.int8],
                    rng: np.random.Generator) -> None:
    import numpy as np

    k = len(design.arms)
    arms_map = dict(zip(design.arms, design.weights, strict=True))
    batches: dict[int | None, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, (stratum, batch) in enumerate(zip(design.unit_strata, design.unit_blocks, strict=True)):
        batches[batch][stratum].append(i)

    def draw(p: Fraction) -> bool:
        return bool(rng.random() < float(p))

    for r in range(unit_arms.shape[0]):
        for members in batches.values():
            counts = complete_counts({s: len(idx) for s, idx in members.items()}, arms_map, draw=draw)
            for stratum, idx in members.items():
                pool = np.repeat(np.arange(k), [counts[stratum][a] for a in design.arms])
                unit_arms[r, idx] = rng.permutation(pool)


def _minimization_draws(design: Design, unit_arms: NDArray[np.int8], rng: np.random.Generator) -> None:
    import numpy as np

    n_rep, k = unit_arms.shape[0], len(design.arms)
    weights = np.asarray(design.weights)
    p = design.minimization_probability
    factor_values = [stratum_values(s) for s in design.unit_strata]
    factors = sorted({f for values in factor_values for f in values})
    level_ids = {f: {v: i for i, v in enumerate(sorted({vals[f] for vals in factor_values}))} for f in factors}
    counts_by_factor = {f: np.zeros((n_rep, len(level_ids[f]), k)) for f in factors}
    rows = np.arange(n_rep)
    for i, values in enumerate(factor_values):
        scores = np.zeros((n_rep, k))
        for f in factors:
            level = counts_by_factor[f][:, level_ids[f][values[f]], :]
            for c in range(k):
                trial_counts = level.copy()
                trial_counts[:, c] += 1
                ratios = trial_counts / weights
                scores[:, c] += ratios.max(axis=1) - ratios.min(axis=1)
        best = scores.min(axis=1, keepdims=True)
        tied = scores <= best + 1e-12
        all_tied = tied.all(axis=1, keepdims=True)
        tied_w = (tied * weights).sum(axis=1, keepdims=True)
        rest_w = (~tied * weights).sum(axis=1, keepdims=True)
        probs = np.where(tied, p * weights / tied_w, (1 - p) * weights / np.maximum(rest_w, 1))
        probs = np.where(all_tied, weights / weights.sum(), probs)
        u = rng.random((n_rep, 1))
        choice = (u >= np.cumsum(probs, axis=1)).sum(axis=1).clip(max=k - 1)
        unit_arms[:, i] = choice
        for f in factors:
            counts_by_factor[f][rows, level_ids[f][values[f]], choice] += 1
