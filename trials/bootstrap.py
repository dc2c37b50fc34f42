"""Creating a new trials installation: the migrated database and the secret key file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trials import db
from trials.audit import record_event
from trials.config import Settings, sqlite_path
from trials.pseudonym import create_key_file, load_key


@dataclass(frozen=True)
class InitResult:
    database: str
    revision: str
    key_file: Path
    key_created: bool


def initialise(settings: Settings) -> InitResult:
    """Create (or bring to head) the database and create the key file if there is none."""
    db_file = sqlite_path(settings.database_url)
    if db_file is not None:
        db_file.parent.mkdir(parents=True, exist_ok=True)
    key_created = not settings.key_file.exists()
    if key_created:
        create_key_file(settings.key_file)
    else:
        load_key(settings.key_file)  # fail early on a file that is not a key
    engine = db.make_engine(settings.database_url)
    try:
        fresh = db.current_revision(engine) is None
        db.upgrade(engine)
        if fresh:
            with db.write_session(engine) as session:
                record_event(session, "database_initialised", payload={"revision": db.head_revision()})
        return InitResult(
            database=engine.url.render_as_string(hide_password=True),
            revision=db.head_revision(),
            key_file=settings.key_file,
            key_created=key_created,
        )
    finally:
        engine.dispose()
