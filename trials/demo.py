"""`make demo`: the main job end to end on the embedded SQLite database, into demo-output/.

From nothing: a database, a synthetic 2000-case pool, the six shipped protocols, assignment
(whole cohort, rolling enrollment, cluster randomization), two years of simulated weekly
benefit histories with a documented true effect per trial (one null), the outcome import,
effect reports at 52 and 104 weeks in Danish and English, audit reports, the portfolio page
and a verified audit trail. Every step calls the library functions the CLI calls.
The simulated truth is documented in docs/demo.md.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trials import config, db
from trials.simulate import Scenario

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

OUTPUT = Path("demo-output")
SEED = 2019
POOL_AS_OF = dt.date(2024, 1, 1)
FIRST_ENROLLMENT = dt.date(2024, 1, 8)
EXTRACT_DATE = dt.date(2026, 8, 3)  # the register extract: two years after the last enrollment
REPLICATES = 2_000

# The true effect behind each trial's simulated outcomes (hazard ratio of leaving support).
TRUTH: dict[str, Scenario] = {
    "street-walker": Scenario({"treatment": 1.35}, baseline_median_weeks=30),
    "conversation-training": Scenario({"treatment": 1.20}, baseline_median_weeks=70, cluster_sd=0.3),
    "voluntary-associations": Scenario({"treatment": 1.00}, baseline_median_weeks=90),  # the null trial
    "one-caseworker": Scenario({"treatment": 1.40}, baseline_median_weeks=45),
    "stop-case-conferences": Scenario({"treatment": 1.10}, baseline_median_weeks=80, cluster_sd=0.2),
    "job-clarification": Scenario({"treatment": 1.30}, baseline_median_weeks=70),
}
ROLLING = ("street-walker",)


def step(message: str) -> None:
    print(message, flush=True)


def run(output: Path = OUTPUT) -> dict[str, dict[str, Any]]:
    from trials.assign import assign_all, close, enroll
    from trials.audit import verify
    from trials.bootstrap import initialise
    from trials.cases.importer import import_cases
    from trials.outcomes.mapping import load_mapping
    from trials.outcomes.weekly import import_weekly
    from trials.protocol import read_protocol_file, register, shipped_protocols
    from trials.pseudonym import load_key
    from trials.reports.audit_report import write_audit_report
    from trials.reports.portfolio import write_portfolio
    from trials.reports.trial_report import record_report, render_trial_report
    from trials.simulate import enrolled_cases, reverse_codes, simulate_states, write_weekly_csv
    from trials.synth import synthesise, write_cohort

    started = time.monotonic()
    if output.exists():
        shutil.rmtree(output)
    output.mkdir(parents=True)
    settings = config.resolve(f"sqlite:///{output / 'demo.db'}", output / "trials.key")
    init = initialise(settings)
    step(f"1. database {init.database} (schema {init.revision}), key {init.key_file}")
    engine = db.make_engine(settings.database_url)
    key = load_key(settings.key_file)

    pool_file = output / "cases.csv"
    write_cohort(synthesise(2000, SEED, as_of=POOL_AS_OF), pool_file)
    with db.write_session(engine) as session:
        imported = import_cases(session, pool_file, key)
    step(f"2. synthesised and imported a pool of {imported.new} cases ({pool_file})")

    with db.write_session(engine) as session:
        for path in shipped_protocols():
            register(session, read_protocol_file(path))
    step(f"3. registered {len(TRUTH)} protocols")

    for trial_id in TRUTH:
        with db.write_session(engine) as session:
            if trial_id in ROLLING:
                eligible = assign_all(session, trial_id, FIRST_ENROLLMENT, dry_run=True)
                candidates = _rolling_candidates(session, trial_id)
                for index, case_key in enumerate(candidates[: eligible.enrolled]):
                    enroll(session, trial_id, case_key, FIRST_ENROLLMENT + dt.timedelta(days=index % 180), key)
                how = f"rolling enrollment of {min(len(candidates), eligible.enrolled)} cases over six months"
            else:
                result = assign_all(session, trial_id, FIRST_ENROLLMENT + dt.timedelta(days=30))
                how = f"{result.method} randomization of {result.randomized} {result.unit} unit(s), " \
                      f"{result.enrolled} cases enrolled"
            close(session, trial_id)
        step(f"4. {trial_id}: {how}; enrollment closed, seed revealed")

    mapping = load_mapping()
    codes = reverse_codes(mapping.codes)
    for trial_id, scenario in TRUTH.items():
        with db.read_session(engine) as session:
            cases = enrolled_cases(session, trial_id)
        weekly_file = output / f"weekly-{trial_id}.csv"
        written = write_weekly_csv(weekly_file, cases, simulate_states(cases, scenario, SEED), codes, EXTRACT_DATE)
        with db.write_session(engine) as session:
            import_weekly(session, trial_id, weekly_file, EXTRACT_DATE, key, mapping)
        step(f"5. {trial_id}: simulated {written} person-weeks (true HR {scenario.hazard_ratio['treatment']}), "
             "imported")

    headlines: dict[str, dict[str, Any]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for trial_id in TRUTH:
            for lang in ("da", "en"):
                for fmt in ("html", "json") if lang == "en" else ("html",):
                    target = output / f"effect-{trial_id}-{lang}.{fmt}"
                    with db.read_session(engine) as session:
                        rendered = render_trial_report(session, trial_id, target, fmt=fmt, lang=lang,
                                                       ri_replicates=REPLICATES)
                    with db.write_session(engine) as session:
                        written_report = record_report(session, rendered)
                    headlines[trial_id] = written_report.headline
            with db.write_session(engine) as session:
                write_audit_report(session, trial_id, output / f"audit-{trial_id}.html")
    step("6. wrote effect reports (52 and 104 weeks, Danish and English, HTML and JSON) and audit reports")
    with db.write_session(engine) as session:
        write_portfolio(session, output / "portfolio.html")
    step(f"7. wrote the portfolio page {output / 'portfolio.html'}")
    with db.read_session(engine) as session:
        verification = verify(session)
    if not verification.ok:
        raise SystemExit("audit verification failed:\n" + "\n".join(verification.findings))
    step(f"8. audit trail verified: {verification.summary()}")
    engine.dispose()

    print(f"\nDone in {time.monotonic() - started:.0f} s. Open {output.resolve() / 'portfolio.html'}\n")
    print(f"{'trial':<24} {'true HR':>8} {'estimated HR (95% CI) at the last horizon':>44}")
    for trial_id, scenario in TRUTH.items():
        h = headlines[trial_id]
        hr, ci = h.get("hr"), h.get("hr_ci") or [None, None]
        shown = "–" if hr is None else f"{hr:.2f} ({ci[0]:.2f}-{ci[1]:.2f}), p = {h.get('p'):.3f}"
        print(f"{trial_id:<24} {scenario.hazard_ratio['treatment']:>8.2f} {shown:>44}")
    return headlines


def _rolling_candidates(session: Session, trial_id: str) -> list[str]:
    """The eligible cases of a rolling trial in the order they 'arrive' (by case key)."""
    from trials.cases.pool import eligible_cases
    from trials.protocol import load_protocol

    protocol = load_protocol(session, trial_id)
    return sorted(case.case_key for case in session.scalars(eligible_cases(protocol.eligibility)))


if __name__ == "__main__":
    run(Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT)
