"""A small trial run through the real pipeline, for end-to-end tests of reports and reliability.

synthesise -> import cases -> register -> assign (or enroll one by one) -> close ->
simulate weekly histories -> import them. Library calls only, the same ones the CLI makes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from trials import db
from trials.simulate import Scenario

ENROLLED_ON = dt.date(2024, 2, 5)
AS_OF = dt.date(2026, 3, 2)


@dataclass(frozen=True)
class Pipeline:
    cases_file: Path
    weekly_files: dict[str, Path]
    cprs: list[str]


def run_pipeline(db_url: str, key_file: Path, folder: Path, *, n: int = 400, seed: int = 7,
                 trials: tuple[str, ...] = ("street-walker",), rolling: tuple[str, ...] = (),
                 with_cpr: bool = False, hazard_ratio: float = 1.5) -> Pipeline:
    from trials.assign import assign_all, close, enroll
    from trials.cases.importer import import_cases
    from trials.cases.pool import eligible_cases
    from trials.outcomes.mapping import load_mapping
    from trials.outcomes.weekly import import_weekly
    from trials.protocol import load_protocol, read_protocol_file, register, shipped_protocols
    from trials.pseudonym import load_key
    from trials.simulate import enrolled_cases, reverse_codes, simulate_states, write_weekly_csv
    from trials.synth import synthesise, write_cohort

    engine = db.make_engine(db_url)
    key = load_key(key_file)
    rows = synthesise(n, seed, with_cpr=with_cpr, as_of=dt.date(2024, 1, 1))
    cases_file = folder / "cases.csv"
    write_cohort(rows, cases_file)
    with db.write_session(engine) as session:
        import_cases(session, cases_file, key)
        for path in shipped_protocols():
            if path.stem in trials:
                register(session, read_protocol_file(path))
    for trial_id in trials:
        with db.write_session(engine) as session:
            if trial_id in rolling:
                protocol = load_protocol(session, trial_id)
                keys = sorted(c.case_key for c in session.scalars(eligible_cases(protocol.eligibility)))
                for index, case_key in enumerate(keys):
                    enroll(session, trial_id, case_key, ENROLLED_ON + dt.timedelta(days=index % 60), key)
            else:
                assign_all(session, trial_id, ENROLLED_ON)
            close(session, trial_id)
    mapping = load_mapping()
    weekly_files = {}
    for trial_id in trials:
        with db.read_session(engine) as session:
            cases = enrolled_cases(session, trial_id)
        path = folder / f"weekly-{trial_id}.csv"
        scenario = Scenario({"treatment": hazard_ratio}, baseline_median_weeks=40)
        write_weekly_csv(path, cases, simulate_states(cases, scenario, seed), reverse_codes(mapping.codes), AS_OF)
        with db.write_session(engine) as session:
            import_weekly(session, trial_id, path, AS_OF, key, mapping)
        weekly_files[trial_id] = path
    engine.dispose()
    return Pipeline(cases_file, weekly_files, [str(r["cpr"]) for r in rows if "cpr" in r])
