"""Every sentence a report shows, in Danish and English: one template set, two languages.

Templates call `t("key", **values)`; values are formatted by the caller (see formatting.py)
so that numbers follow the language's conventions.
"""

from __future__ import annotations

from collections.abc import Callable

TEXTS: dict[str, tuple[str, str]] = {
    # key: (Danish, English)
    "effect_report": ("Effektrapport", "Effect report"),
    "audit_report": ("Revisionsrapport", "Audit report"),
    "portfolio": ("Porteføljeoversigt", "Portfolio of trials"),
    "summary": ("Sammenfatning", "Summary"),
    "summary_tried": (
        "Prøvehandlingen «{title}» blev afprøvet på {n} borgere: {arms}.",
        "The trial “{title}” was tried on {n} citizens: {arms}.",
    ),
    "summary_arm": ("{n} i gruppen {arm}", "{n} in the {arm} group"),
    "summary_horizon": (
        "Efter {weeks} uger var {treated} af {arm}-gruppen og {control} af kontrolgruppen selvforsørgende, "
        "en forskel på {points} procentpoint (95 %-konfidensinterval {ci}); "
        "{arm}-gruppen var i gennemsnit {weeks_diff} uger {more_less} på offentlig forsørgelse i perioden.",
        "After {weeks} weeks, {treated} of the {arm} group and {control} of the control group were self-supporting, "
        "a difference of {points} percentage points (95% confidence interval {ci}); "
        "the {arm} group spent on average {weeks_diff} weeks {more_less} on public support in that period.",
    ),
    "fewer": ("færre", "fewer"),
    "more": ("flere", "more"),
    "certainty_strong": (
        "Forskellen er næppe tilfældig (p = {p}).",
        "The difference is unlikely to be due to chance (p = {p}).",
    ),
    "certainty_weak": (
        "Forskellen kan være tilfældig (p = {p}); data viser ikke sikkert en effekt.",
        "The difference may be due to chance (p = {p}); the data do not show an effect with confidence.",
    ),
    "not_yet": ("{weeks}-ugers opfølgningen er endnu ikke mulig.", "The {weeks}-week follow-up is not yet possible."),
    "flow": ("Forløbsdiagram (CONSORT)", "Flow diagram (CONSORT)"),
    "pool": ("Sager i puljen", "Cases in the pool"),
    "eligible": ("Opfyldte kriterierne", "Eligible"),
    "randomized": ("Randomiseret", "Randomized"),
    "allocated": ("Tildelt", "Allocated"),
    "withdrawn": ("Udtrådt", "Withdrawn"),
    "crossed_over": ("Skiftet gruppe", "Crossed over"),
    "not_treated": ("Ikke modtaget indsats", "Not treated"),
    "censored": ("Censureret før horisonten", "Censored before the horizon"),
    "analysed": ("Analyseret", "Analysed"),
    "baseline": ("Udgangspunkt ved randomisering", "Baseline at randomization"),
    "variable": ("Variabel", "Variable"),
    "smd": ("Standardiseret forskel", "Standardized difference"),
    "km_title": ("Andel selvforsørgende over tid", "Share self-sufficient over time"),
    "weeks_since": ("Uger siden randomisering", "Weeks since randomization"),
    "share_self_sufficient": ("Andel selvforsørgende", "Share self-sufficient"),
    "at_risk": ("Antal i risiko", "Number at risk"),
    "week": ("Uge", "Week"),
    "cif_title": ("Afgange efter type", "Exits by kind"),
    "cumulative_incidence": ("Kumuleret andel", "Cumulative share"),
    "effects": ("Effekt", "Effect"),
    "horizon_weeks": ("Efter {weeks} uger", "At {weeks} weeks"),
    "measure": ("Mål", "Measure"),
    "estimate": ("Estimat", "Estimate"),
    "ci95": ("95 %-KI", "95% CI"),
    "p": ("p", "p"),
    "events": ("Hændelser", "Events"),
    "share_by_horizon": ("Andel selvforsørgende ved horisonten", "Share self-sufficient by the horizon"),
    "difference_points": ("Forskel (procentpoint)", "Difference (percentage points)"),
    "hazard_ratio": ("Hazard ratio (Cox, stratificeret)", "Hazard ratio (Cox, stratified)"),
    "logrank": ("Log-rank-test (stratificeret)", "Log-rank test (stratified)"),
    "rmst": ("Gns. uger på forsørgelse til horisonten", "Mean weeks on support up to the horizon"),
    "rmst_difference": ("Forskel i uger på forsørgelse", "Difference in weeks on support"),
    "status_rd": ("Selvforsørgende ved horisonten: risikoforskel", "Self-supporting at the horizon: risk difference"),
    "status_or": ("Selvforsørgende ved horisonten: odds ratio", "Self-supporting at the horizon: odds ratio"),
    "icc": ("Intraklassekorrelation (designeffekt)", "Intra-cluster correlation (design effect)"),
    "subgroups": ("Hvad virker for hvem (undergrupper)", "What works for whom (subgroups)"),
    "subgroup": ("Undergruppe", "Subgroup"),
    "exploratory": ("eksplorativ", "exploratory"),
    "preregistered": ("forhåndsregistreret", "pre-registered"),
    "interaction_p": ("Interaktionstest p", "Interaction test p"),
    "forest_title": ("Hazard ratio pr. undergruppe", "Hazard ratio by subgroup"),
    "hr_axis": ("Hazard ratio (over 1: hurtigere selvforsørgelse)", "Hazard ratio (above 1: faster self-sufficiency)"),
    "ri": ("Randomiseringsinferens", "Randomization inference"),
    "ri_text": (
        "Tildelingen blev gentaget {replicates} gange med {procedure}; p = {p}.",
        "The assignment was re-run {replicates} times with {procedure}; p = {p}.",
    ),
    "ri_registered": ("den registrerede procedure", "the registered procedure"),
    "ri_permutation": ("ombytning af grupperne inden for strata", "permutation of the arms within strata"),
    "business_case": ("Økonomisk potentiale (business case)", "Business case"),
    "weeks_saved": ("Sparede uger på forsørgelse i alt", "Weeks of support saved in total"),
    "gross_saving": ("Bruttobesparelse", "Gross saving"),
    "total_cost": ("Omkostning til indsatsen", "Cost of the intervention"),
    "net_saving": ("Nettobesparelse", "Net saving"),
    "roi": ("Afkast pr. investeret krone", "Return per krone invested"),
    "warnings": ("Forbehold", "Caveats"),
    "no_warnings": ("Ingen forbehold.", "No caveats."),
    "methods": ("Metode", "Methods"),
    "method_design": (
        "{unit_text} blev randomiseret med metoden {method} inden for strata efter {factors} "
        "(fordeling {weights}).",
        "{unit_text} were randomized by {method} within strata of {factors} (allocation {weights}).",
    ),
    "unit_case": ("Borgere", "Citizens"),
    "unit_caseworker": ("Sagsbehandlere (klynger)", "Caseworkers (clusters)"),
    "unit_team": ("Teams (klynger)", "Teams (clusters)"),
    "method_outcome": (
        "Selvforsørgelse er første periode med mindst {k} sammenhængende uger uden offentlig forsørgelse "
        "({events}); {competing} er konkurrerende afgange; fraflytning og død censurerer.",
        "Self-sufficiency is the first spell of at least {k} consecutive weeks without public income benefit "
        "({events}); {competing} are competing exits; moving away and death censor.",
    ),
    "method_analysis": (
        "Primær analyse: intention-to-treat. Kaplan–Meier pr. gruppe, log-rank-test og Cox-model stratificeret "
        "efter randomiseringsstrata, begrænset middeloverlevelsestid (RMST), Aalen–Johansen for afgangstyper.",
        "Primary analysis: intention to treat. Kaplan–Meier per arm, log-rank test and Cox model stratified by "
        "the randomization strata, restricted mean survival time (RMST), Aalen–Johansen for exit kinds.",
    ),
    "population_itt": ("Population: intention-to-treat (alle randomiserede).", "Population: intention to treat (everyone randomized)."),
    "population_pp": (
        "Population: per protokol (udtrådte, skiftede og ikke-behandlede udeladt) — en afvigelse fra den primære analyse.",
        "Population: per protocol (withdrawn, crossed-over and untreated excluded) — a deviation from the primary analysis.",
    ),
    "deviations": ("Afvigelser fra protokollen", "Deviations from the protocol"),
    "no_deviations": ("Ingen.", "None."),
    "amendment": ("Protokol version {version}: {reason}", "Protocol version {version}: {reason}"),
    "hypothesis": ("Hypotese", "Hypothesis"),
    "provenance": ("Sporbarhed", "Provenance"),
    "software": ("Program", "Software"),
    "protocol_hash": ("Protokol (SHA-256)", "Protocol (SHA-256)"),
    "outcome_snapshot": ("Udfaldsdata (snapshot)", "Outcome snapshot"),
    "audit_head": ("Revisionslogens hoved", "Audit log head"),
    "generated": ("Dannet", "Generated"),
    "public_note": (
        "Offentlig udgave: antal under 5 er skjult.",
        "Public version: counts below 5 are suppressed.",
    ),
    "arm": ("Gruppe", "Arm"),
    "total": ("I alt", "Total"),
    "targets": ("Mål for forsøget", "Trial targets"),
    "target_n": ("Planlagt antal: {target}; randomiseret: {n}.", "Planned number: {target}; randomized: {n}."),
    "target_hr": (
        "Forsøget var planlagt til at kunne påvise en hazard ratio på {planned}; med de observerede hændelser kan det påvise {detectable}.",
        "The trial was planned to detect a hazard ratio of {planned}; with the events observed it can detect {detectable}.",
    ),
}


def translator(lang: str) -> Callable[..., str]:
    """`t(key, **values)` in the given language; an unknown key is a programming error."""
    index = 0 if lang == "da" else 1

    def t(key: str, **values: object) -> str:
        return TEXTS[key][index].format(**values)

    return t
