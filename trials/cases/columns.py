"""The columns of a case file: canonical names and the Danish spellings accepted for them.

Matching is case-, space- and punctuation-insensitive and reads æ/ø/å as ae/oe/aa (see
`trials.vocab.normalise`), so `Måneder på ledighed`, `maaneder_paa_ledighed` and
`MÅNEDER-PÅ-LEDIGHED` are the same column. Every spelling is listed in docs/cases.md.
"""

from __future__ import annotations

from trials.vocab import normalise

CASE_ID = "case_id"
CPR = "cpr"
PRIMARY_BARRIER = "primary_barrier"
BARRIERS = "barriers"
MONTHS = "months_unemployed"
BENEFIT = "benefit_type"
CASEWORKER = "caseworker"
TEAM = "team"
AS_OF = "as_of"

ID_COLUMNS = (CASE_ID, CPR)
REQUIRED = (PRIMARY_BARRIER, MONTHS, BENEFIT)
OPTIONAL = (BARRIERS, CASEWORKER, TEAM, AS_OF)

# Canonical name -> other accepted spellings (compared after `normalise`).
ALIASES: dict[str, tuple[str, ...]] = {
    CASE_ID: ("sagsnummer", "sagsnr", "sags id", "sagsid", "sag id", "borger id", "case", "case number"),
    CPR: ("cpr nummer", "cpr nr", "cprnr", "cprnummer", "personnummer"),
    PRIMARY_BARRIER: (
        "primær barriere", "hovedbarriere", "dominerende barriere", "barriere",
        "indsatsspor",
    ),
    BARRIERS: ("barrierer", "alle barrierer"),
    MONTHS: (
        "months", "måneder", "måneder på ledighed", "måneder ledig", "mdr ledig", "mdr på ledighed",
        "ledighedsmåneder", "ledighed mdr", "antal måneder på ledighed",
    ),
    BENEFIT: ("benefit", "ydelse", "ydelsestype", "ydelsesgruppe", "forsørgelsesydelse"),
    CASEWORKER: ("sagsbehandler", "rådgiver", "sagsbehandlerinitialer"),
    TEAM: ("teamnavn", "enhed"),
    AS_OF: ("enrolled_on", "opgjort pr", "opgørelsesdato", "pr dato", "dato", "visitationsdato"),
}

CANONICAL = (*ID_COLUMNS, *REQUIRED, *OPTIONAL)

_LOOKUP: dict[str, str] = {
    normalise(spelling): canonical
    for canonical in CANONICAL
    for spelling in (canonical, *ALIASES[canonical])
}


def canonical_name(header_name: str) -> str | None:
    """The canonical column a header cell names, or None for a covariate."""
    return _LOOKUP.get(normalise(header_name))


def spellings(canonical: str) -> tuple[str, ...]:
    """Every accepted spelling of a canonical column, the canonical name first (for docs)."""
    return (canonical, *ALIASES[canonical])
