"""The jinja2 environment: a user's template folder first, then the package's templates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    select_autoescape,
)

from trials.reports.formatting import NumberFormat
from trials.reports.texts import translator


def environment(lang: str = "en", public: bool = False, template_dir: Path | None = None) -> Environment:
    """Autoescaping environment with `fmt` (numbers), `t` (texts) and `lang` as globals."""
    loaders: list[Any] = [PackageLoader("trials.reports", "templates")]
    if template_dir is not None:
        loaders.insert(0, FileSystemLoader(str(template_dir)))
    env = Environment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(["html", "htm", "xml"], default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(fmt=NumberFormat(lang, public), t=translator(lang), lang=lang, public=public)
    return env
