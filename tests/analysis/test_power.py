"""Schoenfeld's formula, solving for n and HR, and simulation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trials.analysis import power as pw


def test_events_for_hr_2_match_schoenfeld_table() -> None:
    """Reference: Schoenfeld (1983) / Collett, Modelling Survival Data, 4 (1.96 + 0.8416)^2 / log(2)^2
    = 65.3 events for HR 2, alpha 0.05 two-sided, power 80%, 1:1."""
    assert pw.events_required(2.0, 0.05, 0.8, 0.5) == pytest.approx(65.34, abs=0.01)


def test_solving_round_trips() -> None:
    """Invariant: power(n(hr)) >= target; detectable_hr(n) gives the target power back."""
    n = pw.n_required(1.3, 60, 104, 0.5, 0.05, 0.8)
    assert pw.power_schoenfeld(n, 1.3, 60, 104, 0.5, 0.05) >= 0.8
    assert pw.power_schoenfeld(n - 2, 1.3, 60, 104, 0.5, 0.05) < 0.8
    hr = pw.detectable_hr(2000, 60, 104, 0.5, 0.05, 0.8)
    assert hr is not None and pw.power_schoenfeld(2000, hr, 60, 104, 0.5, 0.05) == pytest.approx(0.8, abs=1e-6)


def test_event_probability_exponential() -> None:
    """Reference: control median 60 weeks followed 60 weeks -> half exit; HR 1 both arms."""
    assert pw.event_probability(1.0, 60, 60, 0.5) == pytest.approx(0.5)


def test_simulation_agrees_with_formula() -> None:
    """Reference: Schoenfeld power for n=300, HR 1.5 (about 0.86); simulation (300 trials, weekly ties,
    stratified permuted blocks) within 0.07."""
    formula = pw.power_schoenfeld(300, 1.5, 60, 104, 0.5, 0.05)
    sim = pw.simulate(300, 1.5, 60, 104, (1, 1), 300, seed=3, alpha=0.05,
                      pool=np.array(["a", "b", "c"] * 10))
    assert sim["power"] == pytest.approx(formula, abs=0.07)
    assert sim["strata"] == 3 and "permuted blocks" in sim["allocation"]


def test_permuted_blocks_balance_within_strata() -> None:
    """Invariant: within each stratum the arms differ by at most half a block."""
    rng = np.random.default_rng(0)
    strata = rng.integers(0, 4, 101)
    arm = pw.permuted_blocks((1, 1))(strata, rng)
    for s in range(4):
        counts = np.bincount(arm[strata == s], minlength=2)
        assert abs(counts[0] - counts[1]) <= 2


def test_ratio_parsing() -> None:
    assert pw.parse_ratio("1:2") == (1, 2)
    with pytest.raises(ValueError):
        pw.parse_ratio("1-1")


def test_registered_procedure_allocates_like_the_protocol() -> None:
    """Reference: the protocol's weights and method. street-walker (permuted blocks by months band):
    allocation through trials.design.rerandomize keeps arms balanced within each stratum."""
    from pathlib import Path

    from trials.protocol import read_protocol_file

    protocol = read_protocol_file(Path(__file__).resolve().parents[2] / "protocols" / "street-walker.toml")
    allocate, ratio = pw.registered_allocation(protocol)
    frame = pd.DataFrame({"months_unemployed": [2, 7, 14, 30] * 25})
    labels = pw.protocol_strata(protocol, frame)
    arm = allocate(labels, np.random.default_rng(0))
    assert ratio == (1, 1) and set(np.unique(arm)) == {0, 1}
    for label in np.unique(labels):
        counts = np.bincount(arm[labels == label], minlength=2)
        assert abs(counts[0] - counts[1]) <= max(protocol.stratification.block_sizes) // 2
    sim = pw.simulate(200, 1.5, 60, 104, ratio, 20, 1, 0.05, labels, allocate, "registered")
    assert sim["allocation"] == "registered" and sim["strata"] == len(np.unique(labels))


def test_protocol_strata_names_missing_columns() -> None:
    from pathlib import Path

    from trials.errors import InputError
    from trials.protocol import read_protocol_file

    protocol = read_protocol_file(Path(__file__).resolve().parents[2] / "protocols" / "job-clarification.toml")
    with pytest.raises(InputError, match="no column for stratification factor 'primary_barrier'"):
        pw.protocol_strata(protocol, pd.DataFrame({"months_band": ["0-6"]}), "pool.csv")
