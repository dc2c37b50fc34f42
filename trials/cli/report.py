"""`trials report`: the effect report of a trial, as JSON, HTML, Markdown or PDF."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import click

from trials.cli.options import (
    AppContext,
    db_options,
    lang_option,
    pass_app,
    progress_bar,
    trial_argument,
)


def _horizons(_ctx: click.Context, param: click.Parameter, value: str) -> list[int] | None:
    if value == "all":
        return None
    try:
        weeks = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number of weeks or 'all'", param=param) from None
    if weeks <= 0:
        raise click.BadParameter("the horizon must be a positive number of weeks", param=param)
    return [weeks]


@click.command()
@trial_argument
@click.option("--format", "fmt", type=click.Choice(["html", "md", "json", "pdf"]), default="html", show_default=True,
              help="Output format; pdf needs headless Chromium.")
@click.option("--horizon", default="all", show_default=True, callback=_horizons,
              help="Follow-up horizon in weeks (52, 104) or 'all' the protocol's horizons.")
@lang_option
@click.option("--public", is_flag=True, help="Suppress counts below 5 everywhere (for publication).")
@click.option("--population", type=click.Choice(["itt", "per-protocol"]), default="itt", show_default=True,
              help="Intention to treat (primary) or per protocol (a deviation, labelled as such).")
@click.option("--snapshot", type=int, help="Outcome snapshot id (default: the latest).")
@click.option("--replicates", type=click.IntRange(0), default=10_000, show_default=True,
              help="Re-randomizations for randomization inference.")
@click.option("--templates", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="A folder of templates that override the package's.")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Output file (required except for --format json, which prints to stdout).")
@db_options
@pass_app
def report(app: AppContext, trial_id: str, fmt: str, horizon: list[int] | None, lang: str, public: bool,
           population: str, snapshot: int | None, replicates: int, templates: Path | None,
           output: Path | None) -> None:
    """Analyse a trial (survival analysis of time to self-sufficiency) and write its effect report."""
    from trials.analysis.warnings import AnalysisWarning
    from trials.reports.trial_report import record_report, render_trial_report

    bar_length = replicates * len(horizon or [52, 104])
    with warnings.catch_warnings(), app.read() as session, progress_bar(bar_length, "randomization inference") as bar:
        # Analysis warnings are part of the report (its `warnings`), not stderr noise.
        warnings.simplefilter("ignore", AnalysisWarning)
        rendered = render_trial_report(session, trial_id, output, fmt=fmt, lang=lang, public=public,
                                       population=population, snapshot_id=snapshot, horizons=horizon,
                                       ri_replicates=replicates, template_dir=templates, progress=bar)
    with app.write() as session:
        written = record_report(session, rendered)
    if written.text is not None:
        sys.stdout.write(written.text)
        return
    hr = written.headline.get("hr")
    effect = f"; HR {hr:.2f} at week {written.headline['horizon_weeks']}" if hr is not None else ""
    click.echo(f"wrote {written.path} (sha256 {written.sha256}){effect}")
