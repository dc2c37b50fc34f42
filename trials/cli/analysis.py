"""`trials analyze FILE` (the flat-file entrance to the analysis engine) and `trials power`.

Thin: parse options, call `trials.analysis`, print. Nothing heavy is imported at module level so
`trials --help` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from trials.cli.options import json_option, print_json


@click.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--time", "time_col", required=True, metavar="COL", help="Column of time to event or censoring.")
@click.option("--event", "event_col", required=True, metavar="COL", help="Column: 1 = self-sufficient, 0 = censored.")
@click.option("--arm", "arm_col", required=True, metavar="COL", help="Column of the assigned arm.")
@click.option("--control", metavar="VALUE", help="The control arm's value [default: the first value in sorted order].")
@click.option("--strata", multiple=True, metavar="COL", help="Randomization stratum column (repeatable).")
@click.option("--cluster", metavar="COL", help="Cluster column (caseworker, team) for cluster-randomized trials.")
@click.option("--adjust", multiple=True, metavar="COL", help="Baseline covariate to adjust for (repeatable).")
@click.option("--competing", metavar="COL", help="Column of exit kinds, for cumulative incidence per kind.")
@click.option("--horizon", multiple=True, type=click.FloatRange(min=0, min_open=True), metavar="W",
              help="Horizon in the file's time unit (repeatable) [default: the last observed time].")
@click.option("--subgroup", multiple=True, metavar="COL", help="Exploratory subgroup column (repeatable).")
@click.option("--replicates", type=click.IntRange(min=0), default=10_000, show_default=True,
              help="Re-randomizations for randomization inference (0 to skip).")
@click.option("--seed", type=int, default=20190604, show_default=True, help="Seed for re-randomization and cross-fitting.")
@click.option("--weekly-cost", type=click.FloatRange(min=0), metavar="DKK",
              help="Benefit cost per week on support, for the business case.")
@click.option("--intervention-cost", type=click.FloatRange(min=0), default=0.0, metavar="DKK",
              help="Intervention cost per treated case, for the business case.")
@json_option
def analyze(file: Path, time_col: str, event_col: str, arm_col: str, control: str | None, strata: tuple[str, ...],
            cluster: str | None, adjust: tuple[str, ...], competing: str | None, horizon: tuple[float, ...],
            subgroup: tuple[str, ...], replicates: int, seed: int, weekly_cost: float | None,
            intervention_cost: float, as_json: bool) -> None:
    """Analyse a trial from a CSV file: one row per randomized unit (see docs/analysis.md)."""
    import warnings

    from trials.analysis.engine import AnalysisOptions, analyse
    from trials.analysis.frame import read_csv
    from trials.analysis.warnings import AnalysisWarning

    frame = read_csv(file)
    business = None
    if weekly_cost is not None:
        business = {"weekly_cost_dkk": weekly_cost, "intervention_cost_per_case_dkk": intervention_cost}
    options = AnalysisOptions(
        time=time_col, event=event_col, arm=arm_col, control=control, strata=list(strata), cluster=cluster,
        adjust=list(adjust), competing=competing, horizons=list(horizon) or None, ri_replicates=replicates,
        seed=seed, subgroups=list(subgroup), business_case=business, source=str(file),
    )
    bar = None
    if replicates and sys.stderr.isatty():
        bar = click.progressbar(length=replicates * max(1, len(horizon)), label="randomization inference",
                                file=sys.stderr)
        options.progress = bar.update
    try:
        if bar is not None:
            bar.__enter__()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AnalysisWarning)  # printed from result["warnings"] below
            result = analyse(frame, options)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    if as_json:
        print_json(result)
    else:
        from trials.analysis.summary import summary_lines

        for line in summary_lines(result):
            click.echo(line)
        for warning in result["warnings"]:
            click.echo(f"warning: {warning}", err=True)


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.3g}" if isinstance(value, float) else str(value)


@click.command()
@click.option("--n", "n", type=click.IntRange(min=4), help="Number of units randomized.")
@click.option("--hr", type=click.FloatRange(min=0, min_open=True), help="Hazard ratio of self-sufficiency.")
@click.option("--baseline-median-weeks", type=click.FloatRange(min=0, min_open=True), required=True,
              help="Median weeks to self-sufficiency in the control arm.")
@click.option("--follow-up-weeks", type=click.FloatRange(min=0, min_open=True), required=True,
              help="Weeks every unit is followed.")
@click.option("--ratio", help="Allocation ratio control:treatment [default: the protocol's weights, else 1:1].")
@click.option("--protocol", "protocol_file", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="Protocol whose registered assignment procedure, strata and weights the simulation uses.")
@click.option("--strata-from", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="CSV case pool whose strata the simulation samples (with --protocol: its factor columns; "
                   "else a 'stratum' column, or all columns).")
@click.option("--sims", type=click.IntRange(min=0), default=0, show_default=True,
              help="Simulated trials (0: formula only).")
@click.option("--solve", type=click.Choice(["power", "n", "hr"]), default="power", show_default=True,
              help="What to solve for: power (needs --n, --hr), n (needs --hr) or the minimum detectable hr (needs --n).")
@click.option("--power", "target_power", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.8,
              show_default=True, help="Target power when solving for n or hr.")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True,
              help="Two-sided significance level.")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the simulation.")
@json_option
def power(n: int | None, hr: float | None, baseline_median_weeks: float, follow_up_weeks: float, ratio: str | None,
          protocol_file: Path | None, strata_from: Path | None, sims: int, solve: str, target_power: float,
          alpha: float, seed: int, as_json: bool) -> None:
    """Power, sample size or minimum detectable hazard ratio (Schoenfeld; simulation with --sims)."""
    from trials.analysis import power as power_mod

    needs = {"power": ("n", "hr"), "n": ("hr",), "hr": ("n",)}[solve]
    given = {"n": n, "hr": hr}
    missing = [f"--{name}" for name in needs if given[name] is None]
    if missing:
        raise click.UsageError(f"--solve {solve} needs {' and '.join(missing)}")
    if hr is not None and abs(hr - 1.0) < 1e-9:
        raise click.BadParameter("a hazard ratio of 1 is no effect; give the effect to detect, e.g. 1.3",
                                 param_hint="--hr")
    frame = None
    if strata_from is not None:
        from trials.analysis.frame import read_csv

        frame = read_csv(strata_from)
    allocate, allocation, pool = None, None, None
    parsed_ratio = (1, 1)
    if protocol_file is not None:
        from trials.protocol import read_protocol_file

        registered = read_protocol_file(protocol_file)
        allocate, parsed_ratio = power_mod.registered_allocation(registered)
        allocation = f"registered procedure of {registered.id} ({registered.stratification.method})"
        pool = power_mod.protocol_strata(registered, frame, str(strata_from or "--strata-from"))
    elif frame is not None:
        pool = power_mod.strata_pool(frame)
    if ratio is not None and protocol_file is not None:
        raise click.UsageError("with --protocol the allocation ratio is the protocol's arm weights; drop --ratio")
    if ratio is not None:
        try:
            parsed_ratio = power_mod.parse_ratio(ratio)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--ratio") from None
    result = power_mod.power_analysis(n=n, hr=hr, median=baseline_median_weeks, follow_up=follow_up_weeks,
                                      ratio=parsed_ratio, alpha=alpha, power=target_power, solve=solve, sims=sims,
                                      seed=seed, pool=pool, allocate=allocate, allocation=allocation)
    if as_json:
        print_json(result)
        return
    click.echo(f"n {result['n']}, hazard ratio {_fmt(result['hr'])}, power {_fmt(result['power'])} "
               f"(Schoenfeld, alpha {alpha:g}, ratio {result['ratio']})")
    if result.get("expected_events") is not None:
        click.echo(f"expected events {result['expected_events']:.0f}")
    if result["simulation"]:
        sim = result["simulation"]
        click.echo(f"simulated power {sim['power']:.3f} (MC SE {sim['mc_se']:.3f}, {sim['sims']} trials)")
