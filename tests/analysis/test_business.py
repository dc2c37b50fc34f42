"""Business case arithmetic carried from the RMST difference."""

from __future__ import annotations

import pytest

from trials.analysis.business import business_case, weekly_cost
from trials.analysis.warnings import WarningLog


def test_business_case_by_hand() -> None:
    """Reference: hand arithmetic. 4 weeks saved x 100 cases x 3000 DKK = 1,200,000; cost 5000 x 100 +
    100,000 = 600,000; net 600,000; ROI 1.0. CI: difference CI (-6, -2) -> weeks (2, 6)."""
    contrast = {"arm": "1", "control": "0", "difference": -4.0, "ci": [-6.0, -2.0], "tau": 52.0}
    spec = {"weekly_cost_dkk": 3000, "intervention_cost_per_case_dkk": 5000, "fixed_cost_dkk": 100_000}
    out = business_case(contrast, 100, spec, None, WarningLog())
    assert out is not None
    assert out["weeks_saved_total"] == 400
    assert out["gross_saving_dkk"] == 1_200_000 and out["net_saving_dkk"] == 600_000
    assert out["return_on_investment"] == pytest.approx(1.0)
    assert out["ci"]["weeks_saved_per_case"] == [2.0, 6.0]
    assert out["ci"]["net_saving_dkk"] == [0.0, 1_200_000.0]


def test_weekly_cost_weighted_by_benefit_mix() -> None:
    spec = {"weekly_cost_dkk": {"cash_assistance": 3000, "sickness_benefit": 4000}}
    assert weekly_cost(spec, {"cash_assistance": 0.25, "sickness_benefit": 0.75}, WarningLog()) == 3750


def test_no_cost_no_case() -> None:
    assert business_case({"arm": "1", "control": "0", "difference": -1.0, "ci": [-2, 0]}, 5, {}, None,
                         WarningLog()) is None
