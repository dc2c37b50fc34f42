"""Benefit-code mappings: which category each weekly status code stands for.

A mapping is TOML with one `[codes]` table, `"code" = "category"`, where a category is
`self_supporting`, a benefit-type id or an exit-kind id (trials.vocab). The package ships a
default for DREAM-style codes (trials/data/dream_codes.toml); `--mapping FILE` replaces it for
one import.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from trials.audit import sha256_hex
from trials.errors import InputError, Problem
from trials.outcomes.derive import category_ids

DEFAULT_MAPPING = "dream_codes.toml"


@dataclass(frozen=True)
class CodeMapping:
    source: str
    codes: dict[str, str]  # code (stripped) -> category id
    sha256: str

    def category(self, code: str) -> str | None:
        return self.codes.get(code.strip())


def parse_mapping(text: str, source: str) -> CodeMapping:
    """Validate mapping TOML; every problem is listed with its key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError([Problem(source, f"not valid TOML: {exc}")]) from None
    problems: list[Problem] = []
    for key in data:
        if key not in ("codes", "source", "description"):
            problems.append(Problem(source, "unknown key; known keys: codes, description, source", key=key))
    table = data.get("codes")
    if not isinstance(table, dict):
        problems.append(Problem(source, 'is required: a table of "code" = "category"', key="codes"))
        raise InputError(problems)
    allowed = category_ids()
    codes: dict[str, str] = {}
    for code, category in table.items():
        if not isinstance(category, str):
            problems.append(Problem(source, "the category must be a string", key=f"codes.{code}"))
        elif category not in allowed:
            problems.append(Problem(source, f"unknown category {category!r}; accepted: {', '.join(allowed)}",
                                    key=f"codes.{code}"))
        elif code.strip() in codes and codes[code.strip()] != category:
            problems.append(Problem(source, "the code is mapped twice", key=f"codes.{code}"))
        else:
            codes[code.strip()] = category
    if not codes and not problems:
        problems.append(Problem(source, "maps no codes", key="codes"))
    if problems:
        raise InputError(problems)
    return CodeMapping(source, codes, sha256_hex(text))


def default_mapping_text() -> str:
    return (files("trials") / "data" / DEFAULT_MAPPING).read_text(encoding="utf-8")


def load_mapping(path: Path | None = None) -> CodeMapping:
    """The mapping in `path`, or the shipped DREAM default."""
    if path is None:
        return parse_mapping(default_mapping_text(), f"trials/data/{DEFAULT_MAPPING}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError([Problem(str(path), "file not found")]) from None
    except UnicodeDecodeError:
        raise InputError([Problem(path.name, "not UTF-8 text")]) from None
    return parse_mapping(text, path.name)
