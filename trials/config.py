"""Where the database and the pseudonymisation key live: option, then environment, then default."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DATABASE_ENV = "TRIALS_DATABASE_URL"
KEY_FILE_ENV = "TRIALS_KEY_FILE"
DEFAULT_DATABASE_URL = "sqlite:///trials.db"
KEY_FILE_NAME = "trials.key"


@dataclass(frozen=True)
class Settings:
    """The resolved location of the database and of the secret key file."""

    database_url: str
    key_file: Path


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or None for other databases and in-memory SQLite."""
    if not url.startswith("sqlite"):
        return None
    _, _, path = url.partition(":///")
    if not path or path == ":memory:":
        return None
    return Path(path)


def default_key_file(database_url: str) -> Path:
    """`trials.key` beside the SQLite file; in the current folder for a server database."""
    db_file = sqlite_path(database_url)
    if db_file is not None:
        return db_file.parent / KEY_FILE_NAME
    return Path(KEY_FILE_NAME)


def resolve(database_url: str | None = None, key_file: str | os.PathLike[str] | None = None) -> Settings:
    """Apply the option > environment > default order to both settings."""
    url = database_url or os.environ.get(DATABASE_ENV) or DEFAULT_DATABASE_URL
    key = key_file or os.environ.get(KEY_FILE_ENV)
    return Settings(database_url=url, key_file=Path(key) if key else default_key_file(url))
