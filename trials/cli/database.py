"""`trials init` and `trials db ...`: create, migrate and inspect the database."""

from __future__ import annotations

import click

from trials.cli.options import AppContext, db_options, pass_app


@click.command()
@db_options
@pass_app
def init(app: AppContext) -> None:
    """Create a new trials database, migrate it to the current schema and create the key file."""
    from trials.bootstrap import initialise

    result = initialise(app.settings)
    click.echo(f"database {result.database} at schema revision {result.revision}")
    if result.key_created:
        click.echo(f"created pseudonymisation key {result.key_file} (mode 0600; keep it secret, back it up)")
    else:
        click.echo(f"using existing pseudonymisation key {result.key_file}")


@click.group()
def db() -> None:
    """Schema migrations."""


@db.command()
@db_options
@pass_app
def upgrade(app: AppContext) -> None:
    """Migrate the database to the schema this version of trials needs."""
    from trials import db as database

    engine = app.engine(require_head=False)
    before = database.current_revision(engine)
    database.upgrade(engine)
    click.echo(f"upgraded from {before or 'an empty database'} to {database.current_revision(engine)}")


@db.command()
@db_options
@pass_app
def current(app: AppContext) -> None:
    """Print the database's schema revision and the one this version needs."""
    from trials import db as database

    engine = app.engine(require_head=False)
    revision = database.current_revision(engine)
    head = database.head_revision()
    state = "up to date" if revision == head else "run `trials db upgrade`"
    click.echo(f"{revision or 'none'} (head {head}: {state})")


@db.command(name="grant-auditor")
@click.argument("role")
@db_options
@pass_app
def grant_auditor(app: AppContext, role: str) -> None:
    """Give a PostgreSQL ROLE read-only access to the audit, protocol and assignment tables only."""
    from trials.roles import grant_auditor as grant

    for statement in grant(app.engine(), role):
        click.echo(statement)
