"""`trials cases ...`: import the case pool, categorise it, list it, size strata, make synthetic pools."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

from trials.cli.options import (
    AppContext,
    db_options,
    json_option,
    lang_option,
    parse_date_option,
    pass_app,
    print_json,
    print_table,
    trial_argument,
)


@click.group()
def cases() -> None:
    """The case pool: import, categorise by barrier and months on benefits, synthesise (docs/cases.md)."""


@cases.command(name="import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--as-of", type=str, callback=parse_date_option, metavar="DATE",
              help="The date the categorisation holds for (YYYY-MM-DD), for rows without an as_of column value.")
@db_options
@json_option
@pass_app
def import_(app: AppContext, file: Path, as_of: dt.date | None, as_json: bool) -> None:
    """Import a case file (CSV or XLSX); the whole file is checked first, nothing is written if any row is wrong.

    Cases are named by a case_id or a cpr column; CPR numbers are replaced by keyed
    pseudonyms and never stored. A case imported again is updated and its earlier
    categorisation kept in its history.
    """
    from trials.cases.importer import read_case_file, write_cases

    case_file = read_case_file(file, app.key, as_of=as_of)
    with app.write() as session:
        result = write_cases(session, case_file)
    if as_json:
        print_json(result.as_dict())
    else:
        click.echo(f"imported {result.source}: {result.rows} rows, {result.new} new, {result.updated} updated, "
                   f"{result.unchanged} unchanged (sha256 {result.sha256})")


@cases.command()
@click.option("--bands", default="0,6,12,24", show_default=True, metavar="EDGES",
              help="Lower edges of the months-on-benefits bands, comma-separated, starting at 0.")
@db_options
@json_option
@lang_option
@pass_app
def summary(app: AppContext, bands: str, as_json: bool, lang: str) -> None:
    """The pool as a cross-table of primary barrier x months band with margins, and benefit-type counts."""
    from trials.cases.summary import cross_table, parse_bands
    from trials.vocab import BARRIERS, BENEFIT_TYPES

    edges = parse_bands(bands)
    with app.read() as session:
        table = cross_table(session, edges)
    if as_json:
        print_json(table)
        return
    labels = table["band_labels"]
    counts = {(c["primary_barrier"], c["months_band"]): c["n"] for c in table["cells"]}
    barrier_header = "primær barriere" if lang == "da" else "primary barrier"
    total_header = "i alt" if lang == "da" else "total"
    rows: list[dict[str, Any]] = []
    for barrier, total in table["barrier_totals"].items():
        row: dict[str, Any] = {barrier_header: BARRIERS.label(barrier, lang)}
        row.update({label: counts[(barrier, label)] for label in labels})
        row[total_header] = total
        rows.append(row)
    margin: dict[str, Any] = {barrier_header: total_header}
    margin.update(table["band_totals"])
    margin[total_header] = table["total"]
    rows.append(margin)
    click.echo(f"{table['total']} cases; months on benefits in bands {', '.join(labels)}")
    click.echo("")
    print_table(rows, [barrier_header, *labels, total_header])
    click.echo("")
    benefit_header = "ydelse" if lang == "da" else "benefit type"
    print_table([{benefit_header: BENEFIT_TYPES.label(b, lang), "n": n} for b, n in table["benefit_types"].items()],
                [benefit_header, "n"])


@cases.command(name="list")
@click.option("--barrier", metavar="X", help="Only cases with this primary barrier (id or Danish name).")
@click.option("--benefit", metavar="Y", help="Only cases on this benefit type (id or Danish name).")
@click.option("--team", help="Only cases of this team.")
@click.option("--caseworker", help="Only cases of this caseworker.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many cases.")
@db_options
@json_option
@pass_app
def list_(app: AppContext, barrier: str | None, benefit: str | None, team: str | None, caseworker: str | None,
          limit: int | None, as_json: bool) -> None:
    """List the cases in the pool with their current categorisation (pseudonyms for CPR-named cases)."""
    from trials.cases.summary import list_cases

    with app.read() as session:
        rows = list_cases(session, barrier=barrier, benefit=benefit, team=team, caseworker=caseworker, limit=limit)
    if as_json:
        print_json(rows)
    elif not rows:
        click.echo("no cases match (import cases with `trials cases import FILE`)")
    else:
        for row in rows:
            if row["id_kind"] == "cpr":
                row["case_id"] = row["case_id"][:12] + "..."
        print_table(rows, ["case_id", "primary_barrier", "months_unemployed", "benefit_type", "caseworker", "team",
                           "as_of"])


@cases.command()
@click.option("--n", "n", type=click.IntRange(min=0), default=2000, show_default=True, help="Number of cases.")
@click.option("--seed", required=True, help="Random seed; the same seed gives the same pool.")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="File to write: .xlsx for a workbook, else CSV.")
@click.option("--with-cpr", is_flag=True, help="Name cases by fake CPR numbers instead of case ids.")
@click.option("--as-of", type=str, callback=parse_date_option, metavar="DATE",
              help="The date the pool describes (YYYY-MM-DD) [default 2026-01-01].")
@click.option("--plain", is_flag=True, help="CSV with ',' and decimal points instead of the Danish ';' and commas.")
def synth(n: int, seed: str, output: Path, with_cpr: bool, as_of: dt.date | None, plain: bool) -> None:
    """Write a realistic synthetic case pool (assumptions and sources in docs/synthetic.md)."""
    from trials.synth import DEFAULT_AS_OF, synthesise, write_cohort

    rows = synthesise(n, seed, with_cpr=with_cpr, as_of=as_of or DEFAULT_AS_OF)
    write_cohort(rows, output, plain=plain)
    click.echo(f"wrote {n} synthetic cases to {output} (seed {seed})")


@cases.command()
@trial_argument
@db_options
@json_option
@pass_app
def strata(app: AppContext, trial_id: str, as_json: bool) -> None:
    """Stratum sizes of a trial's protocol over the eligible pool; flags strata too small for its blocks."""
    from trials.cases.pool import trial_stratum_sizes

    with app.read() as session:
        report = trial_stratum_sizes(session, trial_id)
    if as_json:
        print_json(report.as_dict())
        return
    unit = {"case": "cases", "caseworker": "caseworkers", "team": "teams"}[report.unit]
    blocks = f", block sizes {', '.join(map(str, report.block_sizes))}" if report.method == "permuted_blocks" else ""
    click.echo(f"{report.trial_id} v{report.version}: {report.units} eligible {unit} in {len(report.strata)} strata "
               f"({report.method}{blocks})")
    if report.strata:
        click.echo("")
        print_table([{"stratum": s.label, "n": s.n, "too small": "TOO SMALL" if s.too_small else ""}
                     for s in report.strata], ["stratum", "n", "too small"])
    for note in report.notes:
        click.echo(f"note: {note}")
    if report.too_small:
        click.echo(f"{len(report.too_small)} strata are smaller than the smallest block (or the number of arms): "
                   "consider fewer factors or wider bands before randomizing")
