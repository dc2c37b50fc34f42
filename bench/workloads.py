"""Inputs for the benchmarks: case pools, a benchmark protocol, databases, weekly extracts."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from bench.harness import trials

ENROLLED_ON = dt.date(2024, 2, 5)
AS_OF = dt.date(2026, 3, 2)
PROTOCOL = """\
id = "bench-trial"
title = "Benchmark trial"
hypothesis = "A benchmark, not a hypothesis."
unit = "case"
allow_overlap = true

[arms]
control = 1
treatment = 1

[stratification]
method = "permuted_blocks"
factors = ["primary_barrier", "months_band"]
months_bands = [0, 6, 12, 24]
block_sizes = [2, 4, 6]

[outcome]
event_exits = ["ordinary_job", "education"]
competing_exits = ["flexjob", "disability_pension"]
consecutive_weeks = 4
horizons_weeks = [52, 104]
"""


class Workspace:
    """A folder with cached inputs; databases are SQLite files copied from prepared templates."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.protocol = root / "bench-trial.toml"
        self.protocol.write_text(PROTOCOL)

    def cases_file(self, n: int) -> Path:
        path = self.root / f"cases-{n}.csv"
        if not path.exists():
            trials("cases", "synth", "--n", str(n), "--seed", "1", "-o", str(path))
        return path

    def db(self, name: str) -> tuple[str, Path]:
        folder = self.root / name
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir()
        return f"sqlite:///{folder / 'trials.db'}", folder / "trials.key"

    def template(self, n: int, *, assigned: bool = False) -> Path:
        """A migrated SQLite database with n cases and the benchmark trial (assigned if asked)."""
        name = f"template-{n}{'-assigned' if assigned else ''}"
        folder = self.root / name
        if (folder / "trials.db").exists():
            return folder
        url, key = self.db(name)
        trials("init", "--db", url, "--key-file", str(key))
        trials("cases", "import", str(self.cases_file(n)), "--db", url, "--key-file", str(key))
        trials("protocol", "register", str(self.protocol), "--db", url, "--key-file", str(key))
        if assigned:
            trials("assign", "bench-trial", "--enrolled-on", ENROLLED_ON.isoformat(), "--db", url,
                   "--key-file", str(key))
        return folder

    def copy(self, template: Path, name: str) -> tuple[str, Path]:
        url, key = self.db(name)
        for item in template.iterdir():
            shutil.copy(item, key.parent / item.name)
        return url, key


def weekly_file(workspace: Workspace, url: str, n: int) -> Path:
    """Simulated weekly histories (104 weeks) for every case enrolled in the benchmark trial."""
    from trials import db
    from trials.outcomes.mapping import load_mapping
    from trials.simulate import (
        Scenario,
        enrolled_cases,
        reverse_codes,
        simulate_states,
        write_weekly_csv,
    )

    path = workspace.root / f"weekly-{n}.csv"
    if path.exists():
        return path
    engine = db.make_engine(url)
    with db.read_session(engine) as session:
        cases = enrolled_cases(session, "bench-trial")
    engine.dispose()
    states = simulate_states(cases, Scenario({"treatment": 1.3}), seed=1)
    write_weekly_csv(path, cases, states, reverse_codes(load_mapping().codes), AS_OF)
    return path
