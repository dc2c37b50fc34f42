"""`trials protocol ...`: validate, register, amend, list and show pre-registered protocols."""

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
)

protocol_file = click.argument("file", type=click.Path(path_type=Path, dir_okay=False))


@click.group()
def protocol() -> None:
    """Pre-registered trial protocols (TOML; see docs/protocol.md)."""


@protocol.command()
@protocol_file
@json_option
def validate(file: Path, as_json: bool) -> None:
    """Check a protocol file and list every problem with its key (exit 2 if any)."""
    from trials.protocol import read_protocol_file

    parsed = read_protocol_file(file)
    if as_json:
        print_json({"id": parsed.id, "valid": True, "sha256": parsed.sha256})
    else:
        click.echo(f"OK: {file} is a valid protocol for trial {parsed.id!r} (sha256 {parsed.sha256})")


@protocol.command()
@protocol_file
@db_options
@json_option
@pass_app
def register(app: AppContext, file: Path, as_json: bool) -> None:
    """Register a new trial from its protocol; prints the seed's commitment, never the seed."""
    from trials.protocol import read_protocol_file
    from trials.protocol import register as register_protocol

    parsed = read_protocol_file(file)
    with app.write() as session:
        result = register_protocol(session, parsed)
    if as_json:
        print_json(result.__dict__)
    elif result.created:
        click.echo(f"registered {result.trial_id} version {result.version} (sha256 {result.sha256})")
        click.echo(f"seed commitment {result.seed_commitment} (the seed is revealed when the trial is closed)")
    else:
        click.echo(f"{result.trial_id} version {result.version} is already registered with this content")


@protocol.command()
@protocol_file
@click.option("--reason", required=True, help="Why the protocol is amended (kept with the new version).")
@db_options
@json_option
@pass_app
def amend(app: AppContext, file: Path, reason: str, as_json: bool) -> None:
    """Register a new version of a trial's protocol; randomization keys are frozen once assigned."""
    from trials.protocol import amend as amend_protocol
    from trials.protocol import read_protocol_file

    parsed = read_protocol_file(file)
    with app.write() as session:
        result = amend_protocol(session, parsed, reason)
    if as_json:
        print_json(result.__dict__)
    else:
        click.echo(f"amended {result.trial_id}: version {result.version} (sha256 {result.sha256})")


@protocol.command(name="list")
@db_options
@json_option
@pass_app
def list_(app: AppContext, as_json: bool) -> None:
    """List the registered trials with their current protocol version."""
    from trials.protocol import list_trials

    with app.read() as session:
        rows = list_trials(session)
    if as_json:
        print_json(rows)
    elif not rows:
        click.echo("no trials registered yet (see `trials protocol register FILE`)")
    else:
        print_table(rows, ["id", "unit", "version", "title"])


@protocol.command()
@click.argument("trial_id", metavar="ID")
@db_options
@json_option
@pass_app
def show(app: AppContext, trial_id: str, as_json: bool) -> None:
    """Show a trial's protocol versions with hashes and amendment reasons."""
    from trials.protocol import show_trial

    with app.read() as session:
        shown = show_trial(session, trial_id)
    if as_json:
        print_json(shown)
        return
    click.echo(f"{shown['id']}: {shown['title']} (unit {shown['unit']})")
    click.echo(f"seed commitment {shown['seed_commitment']}")
    for version in shown["versions"]:
        reason = f" - {version['reason']}" if version["reason"] else ""
        click.echo(f"  version {version['version']} sha256 {version['sha256']}{reason}")
    click.echo("")
    click.echo(shown["versions"][-1]["text"].rstrip())
