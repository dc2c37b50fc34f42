"""`make bench`: run the benchmarks, print a table, write bench/RESULTS.md.

`python -m bench --quick` runs every benchmark at a small scale (to check the harness);
`--only NAME` runs some of them. Figures are medians of at least three runs, and every
comparison is a ratio measured in the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import benchmarks as b
from bench.harness import Figure
from bench.workloads import Workspace

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def plan(scale: b.Scale) -> dict[str, Callable[[Workspace], list[Figure]]]:
    return {
        "cli": lambda ws: b.cli_start(ws, scale),
        "assign-small": lambda ws: b.assign_sqlite(ws, scale, scale.small, 1.0, None),
        "assign-big": lambda ws: b.assign_sqlite(ws, scale, scale.big, 60.0, 2048),
        "assign-postgres": lambda ws: b.assign_postgres(ws, scale),
        "rolling": lambda ws: b.rolling_postgres(ws, scale),
        "weekly": lambda ws: b.weekly_import(ws, scale),
        "report": lambda ws: b.full_report(ws, scale),
        "ri": lambda ws: b.randomization_inference(ws, scale),
        "power": lambda ws: b.power_simulation(ws, scale),
    }


def render(figures: list[Figure], failures: list[str], scale: b.Scale, quick: bool, seconds: float) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Written by `make bench` on {dt.date.today().isoformat()}: {os.cpu_count()} cores, "
        f"{platform.machine()}, Python {platform.python_version()}, {platform.system()}"
        f"{' — QUICK SCALE (harness check, not the targets)' if quick else ''}. "
        f"Figures are medians of at least {scale.runs} runs; ratios are measured in the same run. "
        f"The whole run took {seconds / 60:.1f} minutes.",
        "",
        "| benchmark | median | target | met | runs | note |",
        "|---|---:|---|---|---|---|",
    ]
    for f in figures:
        met = "–" if f.ok is None else ("yes" if f.ok else "**no**")
        runs = ", ".join(f"{r:.3g}" for r in f.runs)
        lines.append(f"| {f.name} | {f.value:.3g} {f.unit} | {f.target} | {met} | {runs} | {f.note} |")
    if failures:
        lines += ["", "## Benchmarks that did not run", ""] + [f"- {line}" for line in failures]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: check the harness, not the targets")
    parser.add_argument("--only", action="append", default=[], help="run only this benchmark (repeatable)")
    parser.add_argument("--work", type=Path, help="folder for inputs and databases (default: a temporary one)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to write the results")
    args = parser.parse_args(argv)
    scale = b.QUICK if args.quick else b.Scale()
    chosen = plan(scale)
    names = args.only or list(chosen)
    started = time.monotonic()
    figures: list[Figure] = []
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="trials-bench-") as tmp:
        workspace = Workspace(args.work or Path(tmp))
        for name in names:
            print(f"running {name} ...", flush=True)
            try:
                found = chosen[name](workspace)
            except Exception as exc:  # noqa: BLE001 - a failed benchmark is reported, the others still run
                traceback.print_exc()
                failures.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                continue
            for figure in found:
                met = "" if figure.ok is None else ("  ok" if figure.ok else "  MISSED")
                print(f"  {figure.name}: {figure.value:.3g} {figure.unit} (target {figure.target}){met}", flush=True)
            figures += found
            # Written after every benchmark, so a long run that is stopped still leaves its figures.
            args.results.write_text(render(figures, failures, scale, args.quick, time.monotonic() - started))
    text = render(figures, failures, scale, args.quick, time.monotonic() - started)
    args.results.write_text(text)
    print(f"\nwrote {args.results}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
