"""Options shared by every command (`--db`, `--key-file`, `--json`, `--lang`) and output helpers."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from trials import config

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class AppContext:
    """What the root command resolved; subcommands may override `--db`/`--key-file` locally."""

    database_url: str | None = None
    key_file: str | None = None
    _engine: Engine | None = None

    @property
    def settings(self) -> config.Settings:
        return config.resolve(self.database_url, self.key_file)

    def engine(self, *, require_head: bool = True) -> Engine:
        if self._engine is None:
            from trials import db

            self._engine = db.make_engine(self.settings.database_url)
            # Close the pool's connections when the command ends (in-process callers such as
            # tests run many commands; each would otherwise keep its connections until exit).
            ctx = click.get_current_context(silent=True)
            if ctx is not None:
                ctx.find_root().call_on_close(self._engine.dispose)
            if require_head:
                db.require_head(self._engine)
        return self._engine

    @contextmanager
    def write(self) -> Iterator[Session]:
        from trials import db

        with db.write_session(self.engine()) as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        from trials import db

        with db.read_session(self.engine()) as session:
            yield session

    def key(self) -> bytes:
        from trials.pseudonym import load_key

        return load_key(self.settings.key_file)


pass_app = click.make_pass_decorator(AppContext, ensure=True)


def _set_db(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value:
        ctx.ensure_object(AppContext).database_url = value


def _set_key_file(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value:
        ctx.ensure_object(AppContext).key_file = value


def db_options(func: F) -> F:
    """`--db URL` and `--key-file PATH`, accepted on the root command and on every command."""
    func = click.option(
        "--key-file", metavar="PATH", expose_value=False, is_eager=True, callback=_set_key_file,
        help=f"Secret pseudonymisation key [env {config.KEY_FILE_ENV}; default trials.key beside the SQLite file].",
    )(func)
    return click.option(
        "--db", "database_url", metavar="URL", expose_value=False, is_eager=True, callback=_set_db,
        help=f"Database URL [env {config.DATABASE_ENV}; default {config.DEFAULT_DATABASE_URL}].",
    )(func)


trial_argument = click.argument("trial_id", metavar="TRIAL")


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(func)


def lang_option(func: F) -> F:
    return click.option(
        "--lang", type=click.Choice(["da", "en"]), default="en", show_default=True, help="Language of the output."
    )(func)


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=_json_default))


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """A plain aligned text table: what a person reads when they did not ask for JSON."""
    cells = [[_cell(row.get(col)) for col in columns] for row in rows]
    widths = [max([len(col)] + [len(r[i]) for r in cells]) for i, col in enumerate(columns)]
    click.echo("  ".join(col.ljust(w) for col, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def parse_date_option(_ctx: click.Context, param: click.Parameter, value: str | None) -> dt.date | None:
    """A click callback for ISO dates (YYYY-MM-DD)."""
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date of the form YYYY-MM-DD", param=param) from None


def echo_err(message: str) -> None:
    click.echo(message, err=True)


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


@contextmanager
def progress_bar(length: int, label: str) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr when it is a terminal (None otherwise): pass `.update` along."""
    if length <= 0 or not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(length=length, label=label, file=sys.stderr) as bar:
        yield bar.update
