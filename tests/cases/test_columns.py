"""Column spellings are unambiguous and documented; the docs name every synthetic constant."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from trials.cases import columns as col
from trials.vocab import BARRIERS, BENEFIT_TYPES, normalise

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_no_spelling_means_two_columns() -> None:
    spellings = Counter(normalise(s) for c in col.CANONICAL for s in col.spellings(c))
    assert [s for s, n in spellings.items() if n > 1] == []


@pytest.mark.parametrize("canonical", col.CANONICAL)
def test_canonical_name_and_every_alias_resolve(canonical: str) -> None:
    for spelling in col.spellings(canonical):
        assert col.canonical_name(spelling) == canonical
        assert col.canonical_name(spelling.upper().replace(" ", "-")) == canonical
    assert col.canonical_name("alder") is None


def test_docs_list_every_column_spelling_and_vocabulary_term() -> None:
    text = (DOCS / "cases.md").read_text(encoding="utf-8")
    for canonical in col.CANONICAL:
        for spelling in col.spellings(canonical):
            assert f"`{spelling}`" in text, spelling
    for vocabulary in (BARRIERS, BENEFIT_TYPES):
        for term in vocabulary.terms:
            assert f"| `{term.id}` | {term.da} | {term.en} |" in text, term.id
            for alias in term.aliases:
                assert f"`{alias}`" in text, alias


def test_synthetic_docs_name_every_calibrated_constant() -> None:
    import trials.synth as synth

    text = (DOCS / "synthetic.md").read_text(encoding="utf-8")
    for name in ("BENEFIT_SHARES", "MONTHS_LOGNORMAL", "LOG_MONTHS_PER_BARRIER", "PRIMARY_BARRIER_WEIGHTS",
                 "EXTRA_BARRIERS_MEAN", "BARRIER_AFFINITY", "AGE", "FEMALE_SHARE", "CASES_PER_CASEWORKER",
                 "CASELOAD_SHAPE", "TEAMS", "RISK_CUTS"):
        assert hasattr(synth, name) and f"`{name}" in text, name
    for benefit, (median, sigma) in synth.MONTHS_LOGNORMAL.items():
        found = re.search(rf"\| {benefit} \| ([\d.]+) \| ([\d.]+) \|", text)
        assert found and (float(found.group(1)), float(found.group(2))) == (median, sigma), benefit
    for benefit, share in synth.BENEFIT_SHARES.items():
        assert f"{benefit} " in text and f"| {share * 100:.0f} % |" in text, benefit
