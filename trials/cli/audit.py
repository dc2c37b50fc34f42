"""`trials audit ...`: verify the hash chain and every allocation, print the head, the log, bundles."""

from __future__ import annotations

from pathlib import Path

import click

from trials.cli.options import (
    AppContext,
    db_options,
    json_option,
    pass_app,
    print_json,
    print_table,
    trial_argument,
)


@click.group()
def audit() -> None:
    """The audit trail: an append-only hash chain of every change of state."""


@audit.command()
@click.argument("trial_id", metavar="[TRIAL]", required=False)
@click.option("--expect-head", metavar="HASH", help="A head recorded earlier (e.g. in minutes): catches a truncated log.")
@click.option("--bundle", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Verify an exported bundle instead of the database (no database needed).")
@db_options
@json_option
@pass_app
def verify(app: AppContext, trial_id: str | None, expect_head: str | None, bundle: Path | None,
           as_json: bool) -> None:
    """Recompute the chain, re-derive every allocation, check protocol texts and seeds.

    Exit 0 with "OK: N events, M allocations verified", or exit 1 listing each discrepancy.
    """
    from trials import audit as library

    if bundle is not None:
        result = library.verify_bundle(bundle, expect_head)
    else:
        with app.read() as session:
            result = library.verify(session, trial_id, expect_head)
    if as_json:
        print_json(result.as_dict())
    else:
        for note in result.notes:
            click.echo(f"note: {note}")
        if result.ok:
            click.echo(result.summary())
        else:
            for finding in result.findings:
                click.echo(f"FAIL: {finding}")
            click.echo(f"{len(result.findings)} discrepancies in {result.events} events")
    if not result.ok:
        raise SystemExit(1)


@audit.command()
@db_options
@json_option
@pass_app
def head(app: AppContext, as_json: bool) -> None:
    """Print the current head of the chain (record it outside the system, e.g. in minutes)."""
    from trials.audit import head as current_head

    with app.read() as session:
        last = current_head(session)
    if as_json:
        print_json({"seq": last.seq, "hash": last.hash} if last else {"seq": 0, "hash": None})
    elif last is None:
        click.echo("the audit log is empty")
    else:
        click.echo(f"{last.hash} (event #{last.seq})")


@audit.command()
@click.argument("trial_id", metavar="[TRIAL]", required=False)
@db_options
@json_option
@pass_app
def log(app: AppContext, trial_id: str | None, as_json: bool) -> None:
    """List the audit events (of one trial, or all), oldest first."""
    from trials.audit import log as read_log

    with app.read() as session:
        events = read_log(session, trial_id)
    if as_json:
        print_json(events)
        return
    rows = [{"seq": e["seq"], "occurred_at": e["occurred_at"][:19].replace("T", " "), "actor": e["actor"],
             "action": e["action"], "trial": e["trial_id"], "hash": e["hash"][:16]} for e in events]
    print_table(rows, ["seq", "occurred_at", "actor", "action", "trial", "hash"])


@audit.command(name="export")
@trial_argument
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The bundle (zip) to write.")
@click.option("--include-seed", is_flag=True, help="Include the seed of an open trial (recorded as an audit event).")
@db_options
@pass_app
def export_(app: AppContext, trial_id: str, output: Path, include_seed: bool) -> None:
    """Export TRIAL's protocol versions, enrollments, assignments, events and a manifest as a zip."""
    from trials.audit import export_bundle

    if include_seed:
        with app.write() as session:
            manifest = export_bundle(session, trial_id, output, include_seed=True)
    else:
        with app.read() as session:
            manifest = export_bundle(session, trial_id, output)
    seed = "with the seed" if manifest["seed_included"] else "without the seed (trial open)"
    click.echo(f"wrote {output}: {manifest['counts']['events']} events, {manifest['counts']['assignments']} "
               f"assignments, {seed}; verify with `trials audit verify --bundle {output}`")
