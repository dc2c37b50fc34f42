"""The benchmarks of issue 8. Each returns Figures; sizes come from a `Scale`."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.harness import ROOT, Figure, Run, median, repeat, run_command, trials
from bench.workloads import AS_OF, ENROLLED_ON, Workspace, weekly_file

POSTGRES_URL = os.environ.get("TRIALS_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
HEAVY_IMPORT = "import lifelines, statsmodels.api"
REPORT_LIBRARIES = "import lifelines, statsmodels.api, sklearn.ensemble, matplotlib.pyplot, pandas, scipy.stats, jinja2"


@dataclass(frozen=True)
class Scale:
    small: int = 2_000
    big: int = 1_000_000
    weekly_persons: int = 1_000_000
    report_big: int = 100_000
    replicates: int = 10_000
    naive_replicates: int = 100
    enrollers: int = 8
    enrollments: int = 2_000
    power_sims: int = 1_000
    runs: int = 3


QUICK = Scale(small=2_000, big=20_000, weekly_persons=5_000, report_big=5_000, replicates=2_000, naive_replicates=20,
              enrollments=400, power_sims=100)


def _figure(name: str, runs: list[float], unit: str, target: float | None, note: str = "") -> Figure:
    value = median(runs)
    return Figure(name, value, unit, "-" if target is None else f"<= {target:g} {unit}",
                  None if target is None else value <= target, runs, note)


def cli_start(ws: Workspace, scale: Scale) -> list[Figure]:
    template = ws.template(scale.small)
    url, key = ws.copy(template, "cli")
    common = ["--db", url, "--key-file", str(key)]
    runs = max(scale.runs, 5)
    help_runs = repeat(runs, lambda i: trials("--help"))
    enroll_runs = repeat(runs, lambda i: trials("enroll", "bench-trial", f"SAG-{i + 1:06d}", "--enrolled-on",
                                                ENROLLED_ON.isoformat(), *common))
    heavy = repeat(scale.runs, lambda i: run_command([sys.executable, "-c", HEAVY_IMPORT]))
    help_s, heavy_s = median([r.seconds for r in help_runs]), median([r.seconds for r in heavy])
    return [
        _figure("`trials --help` wall time", [r.seconds for r in help_runs], "s", 0.3),
        _figure("`trials enroll` (one case, SQLite) wall time", [r.seconds for r in enroll_runs], "s", 0.6),
        _figure(f"`python -c '{HEAVY_IMPORT}'` (for comparison)", [r.seconds for r in heavy], "s", None,
                f"`trials --help` takes {help_s / heavy_s:.2f}x of this import"),
    ]


def assign_sqlite(ws: Workspace, scale: Scale, n: int, target_s: float, target_mb: float | None) -> list[Figure]:
    template = ws.template(n)
    urls: dict[int, tuple[str, Path]] = {}

    def prepare(i: int) -> None:
        urls[i] = ws.copy(template, f"assign-{n}-{i}")

    def once(i: int) -> Run:
        url, key = urls[i]
        return trials("assign", "bench-trial", "--enrolled-on", ENROLLED_ON.isoformat(), "--db", url,
                      "--key-file", str(key))

    measured = repeat(scale.runs, once, prepare)
    figures = [_figure(f"whole-cohort assignment, {n:,} cases, SQLite (incl. CLI start)",
                       [r.seconds for r in measured], "s", target_s)]
    if target_mb is not None:
        figures.append(_figure(f"  peak memory, {n:,} cases", [r.max_rss_mb for r in measured], "MB", target_mb))
    return figures


def _postgres_schema(url_base: str) -> str:
    from sqlalchemy import text

    from trials import db

    schema = f"trials_bench_{secrets.token_hex(5)}"
    engine = db.make_engine(url_base)
    with engine.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    return f"{url_base}?options=-csearch_path%3D{schema}"


def _drop_schema(url: str) -> None:
    from sqlalchemy import text

    from trials import db

    schema = url.rsplit("%3D", 1)[1]
    engine = db.make_engine(POSTGRES_URL)
    with engine.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    engine.dispose()


def _postgres_trial(ws: Workspace, n: int) -> tuple[str, Path]:
    url = _postgres_schema(POSTGRES_URL)
    key = ws.root / "pg.key"
    if key.exists():
        key.unlink()
    trials("init", "--db", url, "--key-file", str(key))
    trials("cases", "import", str(ws.cases_file(n)), "--db", url, "--key-file", str(key))
    trials("protocol", "register", str(ws.protocol), "--db", url, "--key-file", str(key))
    return url, key


def _server_url(database: str) -> str:
    return POSTGRES_URL.rsplit("/", 1)[0] + f"/{database}"


def _admin(statement: str) -> None:
    """CREATE/DROP DATABASE, which cannot run inside a transaction."""
    from sqlalchemy import text

    from trials import db

    engine = db.make_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(statement))
    engine.dispose()


def assign_postgres(ws: Workspace, scale: Scale) -> list[Figure]:
    """The 1M cases are imported once into a template database; each run assigns in a fresh
    copy of it (CREATE DATABASE ... TEMPLATE copies the files: seconds, not an import)."""
    template = f"trials_bench_template_{secrets.token_hex(4)}"
    key = ws.root / "pg-template.key"
    if key.exists():
        key.unlink()
    _admin(f"CREATE DATABASE {template}")
    try:
        url = _server_url(template)
        trials("init", "--db", url, "--key-file", str(key))
        trials("cases", "import", str(ws.cases_file(scale.big)), "--db", url, "--key-file", str(key))
        trials("protocol", "register", str(ws.protocol), "--db", url, "--key-file", str(key))

        def prepare(i: int) -> None:
            _admin(f"CREATE DATABASE {template}_run{i} TEMPLATE {template}")

        def once(i: int) -> Run:
            try:
                return trials("assign", "bench-trial", "--enrolled-on", ENROLLED_ON.isoformat(), "--db",
                              _server_url(f"{template}_run{i}"), "--key-file", str(key))
            finally:
                _admin(f"DROP DATABASE IF EXISTS {template}_run{i}")

        measured = repeat(scale.runs, once, prepare)
    finally:
        _admin(f"DROP DATABASE IF EXISTS {template}")
    return [
        _figure(f"whole-cohort assignment, {scale.big:,} cases, PostgreSQL (incl. CLI start)",
                [r.seconds for r in measured], "s", None),
        _figure(f"  peak memory, {scale.big:,} cases, PostgreSQL", [r.max_rss_mb for r in measured], "MB", None),
    ]


def rolling_postgres(ws: Workspace, scale: Scale) -> list[Figure]:
    """8 concurrent enrollers, one case per transaction, into the same strata."""
    import subprocess

    rates, lost = [], []
    for _run in range(scale.runs):
        url, key = _postgres_trial(ws, max(scale.small, scale.enrollments))
        ids = [f"SAG-{i + 1:06d}" for i in range(scale.enrollments)]
        share = [ids[k::scale.enrollers] for k in range(scale.enrollers)]
        started = time.perf_counter()
        workers = [subprocess.Popen([sys.executable, "-m", "bench.enroller", url, str(key), *part], cwd=ROOT)
                   for part in share]
        codes = [w.wait() for w in workers]
        elapsed = time.perf_counter() - started
        from sqlalchemy import func, select

        from trials import db
        from trials.models import Enrollment

        engine = db.make_engine(url)
        with db.read_session(engine) as session:
            stored = session.scalar(select(func.count()).select_from(Enrollment)) or 0
            distinct = session.scalar(select(func.count(func.distinct(Enrollment.sequence)))) or 0
        engine.dispose()
        _drop_schema(url)
        if any(codes) or distinct != stored:
            raise RuntimeError(f"enrollers failed (exit codes {codes}) or duplicate sequence numbers")
        rates.append(stored / elapsed)
        lost.append(float(scale.enrollments - stored))
    return [
        Figure(f"rolling enrollment, {scale.enrollers} concurrent enrollers, PostgreSQL", median(rates),
               "enrollments/s", ">= 200 enrollments/s", median(rates) >= 200, rates,
               "each enrollment its own transaction, including process start"),
        Figure("  enrollments lost", max(lost), "", "0", max(lost) == 0, lost),
    ]


def weekly_import(ws: Workspace, scale: Scale) -> list[Figure]:
    template = ws.template(scale.weekly_persons, assigned=True)
    url, key = ws.copy(template, "weekly")
    path = weekly_file(ws, url, scale.weekly_persons)
    measured = repeat(scale.runs, lambda i: trials("outcomes", "import-weekly", "bench-trial", str(path), "--as-of",
                                                    AS_OF.isoformat(), "--db", url, "--key-file", str(key)))
    rows = f"{scale.weekly_persons:,} persons x 104 weeks"
    return [
        _figure(f"weekly-history import and derivation, {rows}", [r.seconds for r in measured], "s", 120),
        _figure(f"  peak memory, {rows}", [r.max_rss_mb for r in measured], "MB", 4096),
    ]


def _reported_trial(ws: Workspace, n: int) -> tuple[str, Path]:
    template = ws.template(n, assigned=True)
    url, key = ws.copy(template, f"report-{n}")
    path = weekly_file(ws, url, n)
    trials("outcomes", "import-weekly", "bench-trial", str(path), "--as-of", AS_OF.isoformat(), "--db", url,
           "--key-file", str(key))
    return url, key


def full_report(ws: Workspace, scale: Scale) -> list[Figure]:
    figures = []
    for n, target in ((scale.small, None), (scale.report_big, 60.0)):
        url, key = _reported_trial(ws, n)
        args = ["report", "bench-trial", "--horizon", "all", "--replicates", str(scale.replicates),
                "-o", str(ws.root / f"report-{n}.html"), "--db", url, "--key-file", str(key)]
        measured = repeat(scale.runs, lambda i, args=args: trials(*args))
        seconds = [r.seconds for r in measured]
        if target is None:
            bare = repeat(scale.runs, lambda i: run_command([sys.executable, "-c", REPORT_LIBRARIES]))
            ratio = median(seconds) / median([r.seconds for r in bare])
            figures.append(_figure("bare import of the report's libraries", [r.seconds for r in bare], "s", None))
            figures.append(Figure(f"full effect report, {n:,} cases (both horizons, HTML, all figures, "
                                  f"{scale.replicates:,} RI replicates) / bare import", ratio, "x", "<= 3x",
                                  ratio <= 3, seconds, f"report median {median(seconds):.2f} s"))
        else:
            figures.append(_figure(f"full effect report, {n:,} cases", seconds, "s", target))
    return figures


def randomization_inference(ws: Workspace, scale: Scale) -> list[Figure]:
    """Vectorised re-randomization + stratified log-rank vs a naive loop calling lifelines."""
    import numpy as np

    from trials import db
    from trials.analysis.logrank import logrank_many
    from trials.analysis.trial import analyse_trial  # noqa: F401 - the same frame the report uses
    from trials.design import load_design
    from trials.outcomes.export import analysis_dataframe

    url, _key = _reported_trial(ws, scale.small)
    engine = db.make_engine(url)
    with db.read_session(engine) as session:
        frame = analysis_dataframe(session, "bench-trial")
        design = load_design(session, "bench-trial")
    engine.dispose()
    time_ = frame["time_weeks"].astype(float).to_numpy()
    event = frame["event"].astype(int).to_numpy()
    labels, strata = np.unique(frame["stratum"].astype(str).to_numpy(), return_inverse=True)
    arm = np.array(design.arm_index)

    def vectorised() -> tuple[float, float]:
        rng = np.random.default_rng(1)
        started = time.perf_counter()
        done = 0
        while done < scale.replicates:
            batch = min(500, scale.replicates - done)
            logrank_many(time_, event, strata, design.rerandomize(batch, rng), 2, 0)
            done += batch
        return time.perf_counter() - started, float(logrank_many(time_, event, strata, arm[None, :], 2, 0).chi2[0])

    def naive(replicates: int) -> tuple[float, float]:
        rng = np.random.default_rng(1)
        started = time.perf_counter()
        observed = _naive_stratified_logrank(time_, event, strata, arm)
        for _ in range(replicates):
            _naive_stratified_logrank(time_, event, strata, design.rerandomize(1, rng)[0])
        return (time.perf_counter() - started) / replicates * scale.replicates, observed

    fast = [vectorised() for _ in range(scale.runs)]
    slow = [naive(scale.naive_replicates) for _ in range(scale.runs)]
    difference = abs(fast[0][1] - slow[0][1])
    ratio = median([s for s, _ in slow]) / median([f for f, _ in fast])
    return [
        _figure(f"randomization inference, {scale.replicates:,} replicates, {len(time_):,} cases, {len(labels)} strata",
                [f for f, _ in fast], "s", None),
        Figure("  naive loop (re-randomize, lifelines logrank_test per stratum) / vectorised", ratio, "x", ">= 50x",
               ratio >= 50, [s for s, _ in slow],
               f"naive timed on {scale.naive_replicates} replicates and scaled; |difference of the observed "
               f"statistic| = {difference:.1e} (must be < 1e-8)"),
    ]


def _naive_stratified_logrank(time_: object, event: object, strata: object, arm: object) -> float:
    """Per stratum, lifelines' two-sample log-rank for the per-stratum statistic, and the textbook
    observed-minus-expected and variance sums that combine the strata (lifelines does not return them)."""
    import numpy as np
    from lifelines.statistics import logrank_test

    t, e, s, a = (np.asarray(x) for x in (time_, event, strata, arm))
    o_minus_e = variance = 0.0
    for stratum in np.unique(s):
        m = s == stratum
        treated, control = m & (a == 1), m & (a == 0)
        if not treated.any() or not control.any():
            continue
        logrank_test(t[treated], t[control], e[treated], e[control])
        for time_point in np.unique(t[m & (e == 1)]):
            at_risk = m & (t >= time_point)
            n, n1 = at_risk.sum(), (at_risk & (a == 1)).sum()
            died = m & (t == time_point) & (e == 1)
            d, d1 = died.sum(), (died & (a == 1)).sum()
            o_minus_e += d1 - d * n1 / n
            if n > 1:
                variance += d * (n1 / n) * (1 - n1 / n) * (n - d) / (n - 1)
    return o_minus_e**2 / variance if variance > 0 else float("nan")


def power_simulation(ws: Workspace, scale: Scale) -> list[Figure]:
    measured = repeat(scale.runs, lambda i: trials("power", "--n", "2000", "--hr", "1.3", "--baseline-median-weeks",
                                                   "60", "--follow-up-weeks", "104", "--sims", str(scale.power_sims)))
    return [_figure(f"`trials power`, {scale.power_sims:,} simulated trials of 2,000 cases",
                    [r.seconds for r in measured], "s", 10)]


def today() -> str:
    return dt.date.today().isoformat()
