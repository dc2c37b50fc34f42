"""Controlled vocabularies: stable English ids, Danish and English labels, Danish aliases.

The ids are a contract (files, JSON and protocols use them); labels are for people.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Term:
    id: str
    da: str
    en: str
    aliases: tuple[str, ...] = ()


def normalise(value: str) -> str:
    """Case-, space- and punctuation-insensitive form; Danish letters also match æ=ae, ø=oe, å=aa."""
    value = unicodedata.normalize("NFC", value).strip().lower()
    value = value.replace("æ", "ae").replace("ø", "oe").replace("å", "aa")
    return re.sub(r"[\s_\-,./]+", " ", value).strip()


@dataclass(frozen=True)
class Vocabulary:
    name: str
    terms: tuple[Term, ...]
    _index: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[str, str] = {}
        for term in self.terms:
            for spelling in (term.id, term.da, term.en, *term.aliases):
                index[normalise(spelling)] = term.id
        object.__setattr__(self, "_index", index)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(t.id for t in self.terms)

    def lookup(self, value: str) -> str | None:
        """The id a spelling stands for, or None if it is not in the vocabulary."""
        return self._index.get(normalise(value))

    def label(self, term_id: str, lang: str = "en") -> str:
        for term in self.terms:
            if term.id == term_id:
                return term.da if lang == "da" else term.en
        return term_id

    def accepted(self) -> str:
        """The accepted ids, for error messages."""
        return ", ".join(self.ids)


BARRIERS = Vocabulary(
    "barrier",
    (
        Term("physical", "fysiske lidelser", "physical conditions", ("fysisk", "fysiske")),
        Term("mild_mental", "lettere psykiske lidelser", "mild mental conditions", ("lettere psykisk",)),
        Term("mental_illness", "psykisk sygdom", "mental illness", ("psykiske lidelser",)),
        Term(
            "cognitive",
            "udviklingsforstyrrelse, kognitive vanskeligheder",
            "developmental or cognitive difficulties",
            ("udviklingsforstyrrelse", "kognitive vanskeligheder", "kognitiv"),
        ),
        Term("social", "sociale problemer", "social problems", ("sociale",)),
        Term("substance", "misbrug", "substance abuse", ("substance_abuse",)),
        Term("lifestyle", "livsstilsproblemer", "lifestyle problems", ("livsstil",)),
        Term(
            "diffuse",
            "diffuse, uafklarede lidelser",
            "diffuse or unclarified conditions",
            ("diffuse lidelser", "uafklarede lidelser", "uafklaret"),
        ),
        Term("none", "ingen", "none", ("ingen barrierer",)),
    ),
)

BENEFIT_TYPES = Vocabulary(
    "benefit type",
    (
        Term("cash_assistance", "kontanthjælp", "social assistance"),
        Term("education_assistance", "uddannelseshjælp", "education assistance"),
        Term("sickness_benefit", "sygedagpenge", "sickness benefit"),
        Term("job_clarification", "jobafklaringsforløb", "job clarification course", ("jobafklaring",)),
        Term("resource_course", "ressourceforløb", "resource course"),
        Term("flexjob_waiting", "ledighedsydelse", "flex-job waiting benefit"),
        Term("rehabilitation", "revalidering", "rehabilitation"),
        Term("other", "andet", "other", ("anden",)),
    ),
)

EXIT_KINDS = Vocabulary(
    "exit kind",
    (
        Term("ordinary_job", "ordinært job", "ordinary job", ("job", "ordinaert job", "beskaeftigelse")),
        Term("education", "uddannelse", "education"),
        Term("flexjob", "fleksjob", "flex-job"),
        Term("disability_pension", "førtidspension", "disability pension"),
        Term("unemployment_insurance", "a-dagpenge", "unemployment insurance", ("dagpenge",)),
        Term("moved", "fraflytning", "moved away", ("fraflyttet",)),
        Term("died", "død", "died", ("doed", "dødsfald")),
        Term("other", "andet", "other"),
    ),
)

# Exits that end follow-up without telling us anything about the intervention's effect.
CENSORING_EXITS = ("moved", "died")

UNITS = ("case", "caseworker", "team")
METHODS = ("permuted_blocks", "complete", "minimization")
