"""The `trials` command: a thin click shell over the `trials` library.

Command modules live in `trials/cli/`; this file only assembles them and turns the
library's user errors into one line per problem on stderr with the right exit code.
"""

from __future__ import annotations

from typing import Any

import click

from trials import __version__
from trials.cli.analysis import analyze, power
from trials.cli.assign import assign, assignments, balance, close, enroll, enrollment
from trials.cli.audit import audit
from trials.cli.cases import cases
from trials.cli.database import db, init
from trials.cli.options import AppContext, db_options
from trials.cli.outcomes import followup, outcomes
from trials.cli.portfolio import audit_report, portfolio, status
from trials.cli.protocol import protocol
from trials.cli.report import report
from trials.errors import TrialsError


class TrialsGroup(click.Group):
    """A group that reports `TrialsError`s without a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TrialsError as exc:
            for line in exc.lines():
                click.echo(f"error: {line}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=TrialsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="trials")
@db_options
@click.pass_context
def main(ctx: click.Context) -> None:
    """Randomized trials of a jobcenter's own ways of working (prøvehandlinger).

    Register a protocol, import the case pool, randomize, follow up outcomes and report.
    Exit codes: 0 success, 1 a check failed, 2 bad input or usage.
    """
    ctx.ensure_object(AppContext)


for command in (init, db, protocol, analyze, power, cases, assign, enroll, balance, close, assignments, enrollment, audit, outcomes, followup, report, status, portfolio):
    main.add_command(command)
audit.add_command(audit_report)


if __name__ == "__main__":
    main()
