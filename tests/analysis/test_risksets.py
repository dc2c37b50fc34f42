"""Event times and risk sets of rows sorted by (stratum, time), checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from trials.analysis.risksets import risk_sets


def test_event_times_and_risk_sets_by_hand() -> None:
    # stratum 0: times 1 (event), 1 (censored), 2 (event), 3 (censored); stratum 1: 2, 2 (both events), 5 (censored)
    time = np.array([3, 2, 1, 2, 1, 5, 2], dtype=float)
    event = np.array([0, 1, 1, 1, 0, 0, 1])
    strata = np.array([0, 0, 0, 1, 0, 1, 1])
    sets = risk_sets(time, event, strata)
    assert list(strata[sets.order]) == [0, 0, 0, 0, 1, 1, 1]
    assert list(sets.time_starts) == [0, 2, 4]  # time 1 and 2 in stratum 0, time 2 in stratum 1
    assert list(sets.n_risk) == [4, 2, 3]
    assert list(sets.deaths) == [1, 1, 2]
    assert list(sets.ends) == [4, 4, 7]
    assert list(sets.first_event) == [0, 1, 2]  # events at sorted rows 0, 2, 4, 5


def test_a_given_order_must_sort_by_stratum_and_time() -> None:
    time, event, strata = np.array([2.0, 1.0]), np.array([1, 1]), np.array([0, 0])
    with pytest.raises(ValueError, match="does not sort"):
        risk_sets(time, event, strata, order=np.array([0, 1]))
