"""Fixtures for the case-pool tests: the key, files written in tmp_path, row counts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from tests.cases.helpers import row_counts
from trials.pseudonym import load_key


@pytest.fixture
def key(key_file: Path) -> bytes:
    return load_key(key_file)


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """write(name, text_or_bytes, encoding="utf-8") -> path of a file in tmp_path."""

    def _write(name: str, content: str | bytes, encoding: str = "utf-8") -> Path:
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
        return path

    return _write


@pytest.fixture
def counts(engine: Engine) -> Iterator[Callable[[], dict[str, int]]]:
    yield lambda: row_counts(engine)
