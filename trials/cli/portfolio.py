"""`trials status`, `trials portfolio report` and `trials audit report`: documents about trials."""

from __future__ import annotations

from pathlib import Path

import click

from trials.cli.options import (
    AppContext,
    db_options,
    json_option,
    lang_option,
    pass_app,
    print_json,
    print_table,
    trial_argument,
)

output_option = click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), required=True,
                             help="The HTML file to write.")
templates_option = click.option("--templates", type=click.Path(path_type=Path, file_okay=False, exists=True),
                                help="A folder of templates that override the package's.")


@click.command()
@db_options
@json_option
@pass_app
def status(app: AppContext, as_json: bool) -> None:
    """Every trial's lifecycle state, enrollment against target, alarms, follow-ups and last report."""
    from trials.portfolio import portfolio_status

    with app.read() as session:
        rows = portfolio_status(session)
    if as_json:
        print_json(rows)
        return
    table = []
    for row in rows:
        due = row["next_followup"]
        headline = (row["last_report"] or {}).get("headline") or {}
        table.append({
            "trial": row["id"], "state": row["state"],
            "enrolled": f"{row['enrolled']}/{row['target_n'] or '-'}",
            "next follow-up": f"{due['weeks']}w {due['due']} ({due['data_in']})" if due else "-",
            "last effect": f"HR {headline['hr']:.2f} p={headline['p']:.3f}" if headline.get("hr") else "-",
            "alarms": "; ".join(row["alarms"]) or "-",
        })
    print_table(table, ["trial", "state", "enrolled", "next follow-up", "last effect", "alarms"])


@click.group()
def portfolio() -> None:
    """All trials at a glance."""


@portfolio.command(name="report")
@output_option
@lang_option
@templates_option
@db_options
@pass_app
def portfolio_report(app: AppContext, output: Path, lang: str, templates: Path | None) -> None:
    """Write the portfolio page: all trials, a timeline and a Holm-adjusted view across trials."""
    from trials.reports.portfolio import write_portfolio

    with app.write() as session:
        digest = write_portfolio(session, output, lang=lang, template_dir=templates)
    click.echo(f"wrote {output} (sha256 {digest})")


@click.command(name="report")
@trial_argument
@output_option
@templates_option
@db_options
@pass_app
def audit_report(app: AppContext, trial_id: str, output: Path, templates: Path | None) -> None:
    """Write the audit report: verification, protocol versions, seed, timeline, balance, events."""
    from trials.reports.audit_report import write_audit_report

    with app.write() as session:
        digest = write_audit_report(session, trial_id, output, template_dir=templates)
    click.echo(f"wrote {output} (sha256 {digest})")
