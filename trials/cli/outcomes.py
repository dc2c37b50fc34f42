"""`trials outcomes ...` (import exits, import weekly histories, export the analysis frame) and
`trials followup`: thin shells over trials.outcomes."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from trials.cli.options import (
    AppContext,
    db_options,
    json_option,
    parse_date_option,
    pass_app,
    print_json,
    print_table,
    trial_argument,
)

file_argument = click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
as_of_option = click.option(
    "--as-of", "as_of", required=True, callback=parse_date_option, metavar="DATE",
    help="The data extraction date (YYYY-MM-DD): cases without an event are censored there.",
)


@click.group()
def outcomes() -> None:
    """Follow-up outcomes: import exits and weekly benefit histories, export the analysis frame."""


def _report_import(result: object, as_json: bool) -> None:
    from trials.outcomes.exits import ImportResult

    assert isinstance(result, ImportResult)
    if as_json:
        print_json(result.as_dict())
        return
    click.echo(
        f"snapshot {result.snapshot_id} of {result.trial_id} (as of {result.as_of.isoformat()}, "
        f"sha256 {result.source_sha256}): {result.cases} cases, {result.events} events, "
        f"{result.competing} competing exits, {result.censored} censored; {result.rows} rows read"
    )


@outcomes.command(name="import")
@trial_argument
@file_argument
@as_of_option
@db_options
@json_option
@pass_app
def import_(app: AppContext, trial_id: str, file: Path, as_of: dt.date, as_json: bool) -> None:
    """Import exit records (case_id|cpr, exit_date, exit_kind) as a new outcome snapshot."""
    from trials.outcomes.exits import import_exits

    key = app.key()
    with app.write() as session:
        result = import_exits(session, trial_id, file, as_of, key)
    _report_import(result, as_json)


@outcomes.command(name="import-weekly")
@trial_argument
@file_argument
@as_of_option
@click.option("--mapping", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="TOML file mapping status codes to categories [default: the shipped DREAM mapping].")
@click.option("--gaps-as-censoring", is_flag=True,
              help="Censor a case at the first missing week instead of reporting gaps as errors.")
@db_options
@json_option
@pass_app
def import_weekly(app: AppContext, trial_id: str, file: Path, as_of: dt.date, mapping: Path | None,
                  gaps_as_censoring: bool, as_json: bool) -> None:
    """Import weekly benefit histories (case_id|cpr, week, status) as a new outcome snapshot."""
    from trials.outcomes.mapping import load_mapping
    from trials.outcomes.weekly import import_weekly as run_import

    code_mapping = load_mapping(mapping)
    key = app.key()
    with app.write() as session, _progress_bar(file) as progress:
        result = run_import(session, trial_id, file, as_of, key, code_mapping,
                            gaps_as_censoring=gaps_as_censoring, progress=progress)
    _report_import(result, as_json)


@contextmanager
def _progress_bar(file: Path) -> Iterator[Callable[[int], None] | None]:
    """A progress bar over the file's bytes on stderr, only when stderr is a terminal."""
    if not sys.stderr.isatty() or not file.is_file():
        yield None
        return
    with click.progressbar(length=file.stat().st_size, label=f"reading {file.name}", file=sys.stderr) as bar:
        done = 0

        def update(position: int) -> None:
            nonlocal done
            bar.update(max(0, position - done))
            done = max(done, position)

        yield update


@outcomes.command()
@trial_argument
@click.option("--snapshot", "snapshot_id", type=int, default=None, help="The snapshot to export [default: latest].")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="The CSV file to write.")
@db_options
@pass_app
def export(app: AppContext, trial_id: str, snapshot_id: int | None, output: Path) -> None:
    """Write the analysis frame: one row per randomized case with its outcome (CSV)."""
    from trials.outcomes.export import export_csv

    with app.read() as session:
        written = export_csv(session, trial_id, output, snapshot_id)
    click.echo(f"wrote {written.rows} cases of snapshot {written.snapshot_id} to {output}")


@outcomes.command()
@trial_argument
@db_options
@json_option
@pass_app
def snapshots(app: AppContext, trial_id: str, as_json: bool) -> None:
    """List the trial's outcome snapshots (id, kind, source file, SHA-256, as-of date)."""
    from trials.outcomes.snapshots import list_snapshots

    with app.read() as session:
        rows = list_snapshots(session, trial_id)
    if as_json:
        print_json(rows)
    elif not rows:
        click.echo(f"{trial_id} has no outcome snapshot yet (see `trials outcomes import`)")
    else:
        print_table(rows, ["id", "kind", "as_of", "source_name", "source_sha256", "imported_at"])


@click.command()
@trial_argument
@db_options
@json_option
@pass_app
def followup(app: AppContext, trial_id: str, as_json: bool) -> None:
    """Which follow-ups (52, 104 weeks) are due, given the latest outcome snapshot's as-of date."""
    from trials.outcomes.followup import followup_status

    with app.read() as session:
        status = followup_status(session, trial_id)
    if as_json:
        print_json(status)
        return
    as_of = status["as_of"] or "no outcome snapshot yet"
    click.echo(f"{status['trial']}: {status['enrolled']} enrolled cases; outcomes as of {as_of}")
    print_table(status["horizons"], ["weeks", "reached", "enrolled", "last_case_reaches_on", "analysis"])
