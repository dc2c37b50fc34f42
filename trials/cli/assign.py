"""`trials assign`, `enroll`, `balance`, `close`, `assignments export`, `enrollment event`.

Thin: each command parses its options, calls one function of `trials.assign` or
`trials.balance`, and prints the result. Nothing heavy is imported at module level, so
`trials enroll` starts fast.
"""

from __future__ import annotations

import datetime as dt
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

enrolled_on_option = click.option(
    "--enrolled-on", type=str, callback=parse_date_option, metavar="DATE",
    help="Effective enrollment date YYYY-MM-DD [default: today]; the audit event keeps it and the real time.",
)


def _key_if_needed(app: AppContext, refs: tuple[str, ...] | list[str]) -> bytes | None:
    from trials.pseudonym import parse_cpr

    return app.key() if any(parse_cpr(ref) is not None for ref in refs) else None


@click.command()
@trial_argument
@click.option("--dry-run", is_flag=True, help="Show how many units would be randomized, per stratum; write nothing.")
@enrolled_on_option
@db_options
@json_option
@pass_app
def assign(app: AppContext, trial_id: str, dry_run: bool, enrolled_on: dt.date | None, as_json: bool) -> None:
    """Randomize every eligible, not yet enrolled case (or cluster) of TRIAL in one transaction."""
    from trials.assign import assign_all

    if dry_run:
        with app.read() as session:
            result = assign_all(session, trial_id, enrolled_on, dry_run=True)
    else:
        with app.write() as session:
            result = assign_all(session, trial_id, enrolled_on)
    if as_json:
        print_json(result.__dict__)
        return
    unit = "cases" if result.unit == "case" else f"{result.unit}s"
    verb = "would randomize" if dry_run else "randomized"
    click.echo(f"{trial_id}: {verb} {result.randomized} {unit} ({result.method}) in {len(result.strata)} strata; "
               f"{'would enroll' if dry_run else 'enrolled'} {result.enrolled} cases")
    for label, n in sorted(result.strata.items()):
        click.echo(f"  {label}: {n}")
    if result.by_arm:
        click.echo("cases per arm: " + ", ".join(f"{arm} {n}" for arm, n in sorted(result.by_arm.items())))
    for reason, n in sorted(result.skipped.items()):
        click.echo(f"not eligible ({reason}): {n}")
    for other, n in sorted(result.overlapping.items()):
        click.echo(f"already in the active trial {other}: {n}")
    for label in result.too_small:
        click.echo(f"warning: stratum {label} is smaller than the smallest block", err=True)


@click.command()
@trial_argument
@click.argument("case_refs", metavar="CASE_ID...", nargs=-1, required=True)
@enrolled_on_option
@db_options
@json_option
@pass_app
def enroll(app: AppContext, trial_id: str, case_refs: tuple[str, ...], enrolled_on: dt.date | None,
           as_json: bool) -> None:
    """Enroll cases into TRIAL one at a time as they arrive and print each one's arm.

    A case is named by its case id or by its CPR number (pseudonymised before lookup, never
    stored or printed). If any case cannot be enrolled, none is.
    """
    from trials.assign import enroll_many

    key = _key_if_needed(app, case_refs)
    with app.write() as session:
        results = enroll_many(session, trial_id, list(case_refs), enrolled_on, key)
    if as_json:
        print_json([r.__dict__ for r in results])
        return
    for ref, result in zip(case_refs, results, strict=True):
        from trials.pseudonym import parse_cpr

        name = "(CPR given)" if parse_cpr(ref) is not None and result.case_key != ref.strip() else result.case_key
        cluster = f" via {result.cluster}" if result.cluster else ""
        click.echo(f"{name}: {result.arm}{cluster} (enrollment #{result.sequence}, stratum {result.stratum})")


@click.command()
@trial_argument
@db_options
@json_option
@pass_app
def balance(app: AppContext, trial_id: str, as_json: bool) -> None:
    """Per-stratum counts by arm, the largest within-stratum imbalance, SMDs and the SRM test."""
    import warnings

    from trials.balance import SampleRatioMismatch
    from trials.balance import balance as compute

    with app.read() as session, warnings.catch_warnings():
        warnings.simplefilter("ignore", SampleRatioMismatch)  # printed below as WARNING
        result = compute(session, trial_id)
    if as_json:
        print_json(result)
        return
    arms = result["arms"]
    click.echo(f"{trial_id}: {result['method']}, unit {result['unit']}, weights "
               + ":".join(str(result["weights"][a]) for a in arms))
    rows = [{"stratum": s["stratum"], **s["counts"], "n": s["n"], "imbalance": s["imbalance"]}
            for s in result["strata"]]
    if rows:
        print_table(rows, ["stratum", *arms, "n", "imbalance"])
    click.echo(f"largest within-stratum imbalance: {result['max_imbalance']:g}")
    srm = result["srm"]
    if srm["p"] is not None:
        click.echo(f"sample ratio: chi-square {srm['chi2']:.3f} (df {srm['df']}), p = {srm['p']:.3g}")
    if result["smd"]:
        click.echo("standardized mean differences (against the control arm):")
        for name, by_arm in result["smd"].items():
            cells = ", ".join(f"{arm} {'-' if v is None else f'{v:+.3f}'}" for arm, v in by_arm.items())
            click.echo(f"  {name}: {cells}")
    for warning in result["warnings"]:
        click.echo(f"WARNING: {warning}", err=True)


@click.command()
@trial_argument
@db_options
@json_option
@pass_app
def close(app: AppContext, trial_id: str, as_json: bool) -> None:
    """Close enrollment of TRIAL: reveal the seed into the audit log, record open partial blocks."""
    from trials.assign import close as close_trial

    with app.write() as session:
        result = close_trial(session, trial_id)
    if as_json:
        print_json(result.__dict__)
        return
    click.echo(f"closed {trial_id}; partial blocks left open: {len(result.partial_blocks)}")
    for block in result.partial_blocks:
        click.echo(f"  {block['stratum']}: block {block['block']} filled {block['filled']} of {block['block_size']}")
    click.echo(f"seed revealed in audit event #{result.audit_seq}: {result.seed}")


@click.group()
def assignments() -> None:
    """The assignments of a trial."""


@assignments.command(name="export")
@trial_argument
@click.option("-o", "--output", "output", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="CSV file to write.")
@db_options
@pass_app
def export_(app: AppContext, trial_id: str, output: Path) -> None:
    """Write the assignments of TRIAL as CSV, with each case's exact probability of every arm."""
    from trials.assign import write_assignments_csv

    with app.read() as session:
        n = write_assignments_csv(session, trial_id, output)
    click.echo(f"wrote {n} assignments to {output}")


@click.group()
def enrollment() -> None:
    """Events on an enrollment (withdrawal, crossover, non-compliance)."""


@enrollment.command()
@trial_argument
@click.argument("case_ref", metavar="CASE_ID")
@click.option("--kind", type=click.Choice(["withdrawn", "crossed_over", "not_treated"]), required=True,
              help="What happened.")
@click.option("--reason", required=True, help="Why (kept in the audit log).")
@click.option("--effective-on", type=str, callback=parse_date_option, metavar="DATE",
              help="When it took effect, YYYY-MM-DD [default: today].")
@db_options
@pass_app
def event(app: AppContext, trial_id: str, case_ref: str, kind: str, reason: str,
          effective_on: dt.date | None) -> None:
    """Record that an enrolled case was withdrawn, crossed over or not treated; the arm never changes."""
    from trials.assign import record_enrollment_event

    key = _key_if_needed(app, [case_ref])
    with app.write() as session:
        recorded = record_enrollment_event(session, trial_id, case_ref, kind, reason, effective_on, key)
    click.echo(f"recorded {recorded.kind} on {recorded.effective_on} for the case in {trial_id}")
