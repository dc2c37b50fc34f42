"""Timing and memory of whole commands: medians of repeated runs in fresh processes."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRIALS = [sys.executable, "-c", "from cli import main; main()"]


@dataclass(frozen=True)
class Run:
    seconds: float
    max_rss_mb: float


@dataclass
class Figure:
    """One row of RESULTS.md: what was measured, the median, the target and whether it holds."""

    name: str
    value: float
    unit: str
    target: str
    ok: bool | None
    runs: list[float] = field(default_factory=list)
    note: str = ""


def run_command(args: Sequence[str], *, cwd: Path = ROOT, env: dict[str, str] | None = None,
                check: bool = True) -> Run:
    """Run a command to completion; its wall time and peak resident memory (from wait4)."""
    started = time.perf_counter()
    process = subprocess.Popen(list(args), cwd=cwd, env={**os.environ, **(env or {})},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if process.stderr:
        process.stderr.close()
    if check and os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {stderr.strip()[-2000:]}")
    return Run(seconds, usage.ru_maxrss / 1024)


def trials(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> Run:
    return run_command([*TRIALS, *args], cwd=cwd, env={"PYTHONPATH": str(ROOT), **(env or {})})


def repeat(runs: int, once: Callable[[int], Run], prepare: Callable[[int], None] | None = None) -> list[Run]:
    """`runs` measurements of `once(i)`, each after an unmeasured `prepare(i)`."""
    out = []
    for i in range(runs):
        if prepare is not None:
            prepare(i)
        out.append(once(i))
    return out


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))
