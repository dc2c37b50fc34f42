"""Strata: band labels, frozen stratum values and too-small flags."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from trials.protocol import parse_protocol
from trials.strata import (
    band_labels,
    case_stratum,
    months_band,
    stratum_key,
    stratum_label,
    stratum_sizes,
    stratum_values,
)

PROTOCOL = parse_protocol("""
id = "strata-test"
title = "t"
hypothesis = "h"
unit = "case"
[arms]
control = 1
treatment = 1
[stratification]
method = "permuted_blocks"
factors = ["primary_barrier", "months_band", "covariate:sex"]
months_bands = [0, 6, 12, 24]
block_sizes = [4]
[outcome]
event_exits = ["ordinary_job"]
consecutive_weeks = 4
""")


def test_band_edges_include_the_lower_and_exclude_the_upper() -> None:
    bands = [0, 6, 12, 24]
    assert band_labels(bands) == ["0-6", "6-12", "12-24", "24+"]
    assert [months_band(m, bands) for m in (0, 5.9, 6, 23.99, 24, 400)] == ["0-6", "0-6", "6-12", "12-24", "24+", "24+"]


@given(st.floats(min_value=0, max_value=1000, allow_nan=False))
def test_every_months_value_falls_in_exactly_one_listed_band(months: float) -> None:
    assert months_band(months, [0, 6, 12, 24]) in band_labels([0, 6, 12, 24])


def test_case_stratum_in_factor_order_with_missing_covariates() -> None:
    case = {"primary_barrier": "social", "months_unemployed": 7.5, "covariates": {}}
    values = case_stratum(PROTOCOL, case)
    assert stratum_label(values) == "primary_barrier=social|months_band=6-12|covariate:sex=(missing)"
    assert stratum_key(values) == stratum_key(dict(reversed(list(values.items()))))


def test_strata_smaller_than_the_smallest_block_are_flagged() -> None:
    strata = [{"primary_barrier": "social"}] * 5 + [{"primary_barrier": "physical"}] * 3
    sizes = {s.label: (s.n, s.too_small) for s in stratum_sizes(PROTOCOL, strata)}
    assert sizes == {"primary_barrier=social": (5, False), "primary_barrier=physical": (3, True)}


def test_stratum_values_read_back_what_stratum_key_wrote() -> None:
    values = {"primary_barrier": "social", "months_band": "6-12", "team": "Øst"}
    assert stratum_values(stratum_key(values)) == values
