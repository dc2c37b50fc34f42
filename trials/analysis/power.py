"""Sample size and power for time to self-sufficiency: Schoenfeld's formula and simulation.

Events needed for a two-sided log-rank test: D = (z_{1-alpha/2} + z_power)^2 / (p (1 - p) log(HR)^2)
with p the share allocated to treatment. Times to self-sufficiency are exponential with the
control median given; HR > 1 means the intervention speeds exits. Every case is followed for
the follow-up period (administrative censoring), so P(event) = 1 - exp(-lambda F) per arm.

The simulation draws strata from a case pool (or none), allocates with stratified permuted
blocks, draws exponential times rounded up to whole weeks (weekly data: ties), censors at the
follow-up and runs the stratified log-rank test of `logrank.py`, the primary analysis.
With a protocol (`trials power --protocol FILE`) the allocation is the protocol's registered
procedure (`trials.design.rerandomize`: permuted blocks with its block sizes, complete
randomization, or minimization) on the strata of the case pool; without one, a local stratified
permuted-block allocation (blocks of 2 x the ratio sum).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trials.analysis.logrank import logrank_many

Allocate = Callable[[NDArray[np.int_], np.random.Generator], NDArray[np.int_]]


def _z(alpha: float, power: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(1 - alpha / 2) + norm.ppf(power))


def parse_ratio(text: str) -> tuple[int, int]:
    """'1:1' -> (1, 1), control first then treatment."""
    parts = text.split(":")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"{text!r} is not an allocation ratio like 1:1 or 1:2 (control:treatment)")
    return int(parts[0]), int(parts[1])


def events_required(hr: float, alpha: float, power: float, share: float) -> float:
    return _z(alpha, power) ** 2 / (share * (1 - share) * np.log(hr) ** 2)


def event_probability(hr: float, median: float, follow_up: float, share: float) -> float:
    rate = np.log(2) / median
    p0 = 1 - np.exp(-rate * follow_up)
    p1 = 1 - np.exp(-rate * hr * follow_up)
    return float((1 - share) * p0 + share * p1)


def power_schoenfeld(n: int, hr: float, median: float, follow_up: float, share: float, alpha: float) -> float:
    from scipy.stats import norm

    events = n * event_probability(hr, median, follow_up, share)
    return float(norm.cdf(np.sqrt(events * share * (1 - share)) * abs(np.log(hr)) - norm.ppf(1 - alpha / 2)))


def n_required(hr: float, median: float, follow_up: float, share: float, alpha: float, power: float) -> int:
    events = events_required(hr, alpha, power, share)
    return int(np.ceil(events / event_probability(hr, median, follow_up, share)))


def detectable_hr(n: int, median: float, follow_up: float, share: float, alpha: float, power: float) -> float | None:
    """The smallest HR > 1 detected with the given power (solving Schoenfeld's formula for HR)."""
    from scipy.optimize import brentq

    def gap(log_hr: float) -> float:
        return power_schoenfeld(n, float(np.exp(log_hr)), median, follow_up, share, alpha) - power

    hi = np.log(100.0)
    if gap(hi) < 0:
        return None
    return float(np.exp(brentq(gap, 1e-9, hi, xtol=1e-10)))


def detectable_hr_from_events(events: int, share: float, alpha: float, power: float) -> float:
    return float(np.exp(_z(alpha, power) / np.sqrt(events * share * (1 - share))))


def permuted_blocks(ratio: tuple[int, int], blocks: int = 2) -> Allocate:
    """Stratified permuted-block allocation: 0 = control, 1 = treatment, blocks of `blocks` x sum(ratio)."""
    unit = np.array([0] * ratio[0] + [1] * ratio[1])
    block = np.tile(unit, blocks)

    def allocate(strata: NDArray[np.int_], rng: np.random.Generator) -> NDArray[np.int_]:
        out = np.empty(len(strata), dtype=int)
        for s in np.unique(strata):
            idx = np.flatnonzero(strata == s)
            count = -(-len(idx) // len(block))
            seq = np.concatenate([rng.permutation(block) for _ in range(count)])
            out[idx] = seq[: len(idx)]
        return out

    return allocate


def simulate(n: int, hr: float, median: float, follow_up: float, ratio: tuple[int, int], sims: int, seed: int,
             alpha: float, pool: NDArray[Any] | None = None, allocate: Allocate | None = None,
             allocation: str = "stratified permuted blocks (local implementation)") -> dict[str, Any]:
    """Share of simulated trials in which the stratified log-rank test rejects at `alpha`.

    `pool` holds one stratum label per case of a case pool; each trial draws n cases from it.
    `allocate(labels, rng) -> 0/1 per unit` is the assignment procedure (default: local
    stratified permuted blocks).
    """
    from scipy.stats import chi2

    rng = np.random.default_rng(seed)
    allocate = allocate or permuted_blocks(ratio)
    labels_pool = np.asarray(pool if pool is not None else ["(all)"], dtype=str)
    codes_pool = np.unique(labels_pool, return_inverse=True)[1]
    stratified = codes_pool.max() > 0
    critical = chi2.isf(alpha, 1)
    rate = np.log(2) / median
    rejections = 0
    events = 0.0
    for _ in range(sims):
        idx = rng.integers(0, len(labels_pool), n)
        arm = np.asarray(allocate(labels_pool[idx], rng), dtype=int)
        latent = np.ceil(rng.exponential(1.0 / (rate * np.where(arm == 1, hr, 1.0))))
        event = (latent <= follow_up).astype(int)
        time = np.minimum(latent, follow_up)
        stat = logrank_many(time, event, codes_pool[idx] if stratified else None, arm[None, :], 2, 0).chi2[0]
        rejections += int(np.isfinite(stat) and stat > critical)
        events += event.sum()
    p = rejections / sims
    return {"sims": sims, "power": p, "mc_se": float(np.sqrt(p * (1 - p) / sims)), "mean_events": events / sims,
            "seed": seed, "strata": int(codes_pool.max() + 1) if stratified else 0, "allocation": allocation,
            "analysis": "stratified log-rank test, times rounded up to whole weeks"}


def registered_allocation(protocol: Any) -> tuple[Allocate, tuple[int, int]]:
    """The protocol's own procedure (`trials.design.rerandomize` on a synthetic design) as an allocator.

    Returns the allocator (0 = control, 1 = treatment) and the protocol's control:treatment ratio.
    Two-arm, case-level protocols only.
    """
    from trials.design import Design, rerandomize
    from trials.errors import InputError, Problem

    arms = list(protocol.arms)
    if protocol.unit != "case":
        raise InputError([Problem("--protocol", f"{protocol.id} randomizes {protocol.unit}s (clusters); the power "
                                  "simulation models individually randomized trials only")])
    if len(arms) != 2:
        raise InputError([Problem("--protocol", f"power is computed for two arms; {protocol.id} has {len(arms)}")])
    control = arms.index(protocol.control_arm)
    weights = [int(protocol.arms[a]) for a in arms]

    def allocate(labels: NDArray[Any], rng: np.random.Generator) -> NDArray[np.int_]:
        n = len(labels)
        units = [str(label) for label in labels]
        design = Design(trial_id=protocol.id, method=protocol.stratification.method, arms=arms, weights=weights,
                        block_sizes=list(protocol.stratification.block_sizes),
                        minimization_probability=protocol.stratification.minimization_probability,
                        case_ids=list(range(n)), case_keys=[str(i) for i in range(n)], arm_index=[0] * n,
                        unit_strata=units, unit_blocks=[None] * n, unit_of_row=list(range(n)), stratum_of_row=units)
        return (rerandomize(design, 1, rng)[0] != control).astype(int)

    return allocate, (weights[control], weights[1 - control])


def protocol_strata(protocol: Any, frame: Any | None, source: str = "--strata-from") -> NDArray[Any]:
    """Stratum keys (as the assignment engine writes them) of each case in a case-pool frame.

    A column named like a factor is used as is; `months_band` may instead come from
    `months_unemployed`. Without a pool every case is in one stratum.
    """
    from trials.errors import InputError, Problem
    from trials.strata import months_band, stratum_key

    factors = list(protocol.stratification.factors)
    if frame is None:
        return np.array([stratum_key({f: "(all)" for f in factors})])
    missing = [f for f in factors if f not in frame.columns
               and not (f == "months_band" and "months_unemployed" in frame.columns)]
    if missing:
        raise InputError([Problem(source, f"no column for stratification factor {f!r} of protocol {protocol.id}")
                          for f in missing])
    keys = []
    for i, row in enumerate(frame.to_dict("records")):
        values = {}
        for f in factors:
            if f in row:
                values[f] = str(row[f])
            else:
                try:
                    values[f] = months_band(float(row["months_unemployed"]), protocol.stratification.months_bands)
                except ValueError:
                    raise InputError([Problem(source, f"{row['months_unemployed']!r} is not a number of months",
                                              row=i + 2, column="months_unemployed")]) from None
        keys.append(stratum_key(values))
    return np.array(keys)


def power_analysis(*, n: int | None, hr: float | None, median: float, follow_up: float, ratio: tuple[int, int] = (1, 1),
                   alpha: float = 0.05, power: float = 0.8, solve: str = "power", sims: int = 0, seed: int = 1,
                   pool: NDArray[Any] | None = None, allocate: Allocate | None = None,
                   allocation: str | None = None) -> dict[str, Any]:
    """`trials power`: solve Schoenfeld's formula for power, n or the minimum detectable HR."""
    share = ratio[1] / sum(ratio)
    result: dict[str, Any] = {"solve": solve, "alpha": alpha, "baseline_median_weeks": median,
                              "follow_up_weeks": follow_up, "ratio": f"{ratio[0]}:{ratio[1]}", "share_treated": share}
    if solve == "n":
        assert hr is not None
        n = n_required(hr, median, follow_up, share, alpha, power)
        result.update(hr=hr, power=power, n=n)
    elif solve == "hr":
        assert n is not None
        hr = detectable_hr(n, median, follow_up, share, alpha, power)
        result.update(n=n, power=power, hr=hr, minimum_detectable_hr=hr)
    else:
        assert n is not None and hr is not None
        result.update(n=n, hr=hr, power=power_schoenfeld(n, hr, median, follow_up, share, alpha))
    if hr is not None and n is not None:
        result["events_required"] = float(events_required(hr, alpha, result["power"], share)) \
            if 0 < result["power"] < 1 else None
        result["expected_events"] = n * event_probability(hr, median, follow_up, share)
        result["method"] = "Schoenfeld (1983), exponential times, administrative censoring at the follow-up"
    result["simulation"] = simulate(n, hr, median, follow_up, ratio, sims, seed, alpha, pool, allocate,
                                    allocation or "stratified permuted blocks (local implementation)") \
        if sims and n is not None and hr is not None else None
    return result


def strata_pool(frame: Any) -> NDArray[Any]:
    """Stratum labels of a case pool: its `stratum` column, or all its columns joined."""
    if "stratum" in frame.columns:
        return frame["stratum"].astype(str).to_numpy()
    return frame.astype(str).agg(" | ".join, axis=1).to_numpy()
