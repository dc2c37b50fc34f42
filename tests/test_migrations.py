"""Migrations keep the data: for every revision step found in the shipped migrations, a database
at the earlier revision with rows in every table is upgraded to the next revision and
downgraded back, and every row that both revisions can hold is still there, unchanged.

The steps are discovered from alembic's ScriptDirectory, so a new migration is covered the day
it is added; the rows are generated from the schema as reflected at the earlier revision and
inserted through SQLAlchemy Core (not the ORM models, which describe head only).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import MetaData, Table, inspect, select, types
from sqlalchemy.engine import Connection, Engine

from trials import db

ROWS = 3


def _steps() -> list[tuple[str, str]]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(db.alembic_config())
    steps = []
    for revision in script.walk_revisions(base="base", head="heads"):
        down = revision.down_revision
        if down is None:
            continue  # base -> first revision: there is no earlier schema to hold data
        assert isinstance(down, str), f"merge revisions are not handled here: {revision.revision}"
        steps.append((down, revision.revision))
    return sorted(steps)


STEPS = _steps()


def test_every_revision_is_a_step() -> None:
    """The discovery itself: each shipped revision after the first appears once as a step's target."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(db.alembic_config())
    revisions = {r.revision for r in script.walk_revisions()}
    firsts = {r.revision for r in script.walk_revisions() if r.down_revision is None}
    assert sorted(target for _, target in STEPS) == sorted(revisions - firsts)
    assert db.head_revision() in {target for _, target in STEPS} | firsts


def _value(column: Any, table: str, index: int, parents: dict[tuple[str, str], list[Any]]) -> Any:
    """A representative value of the column's type for row `index` (unique per row)."""
    for fk in column.foreign_keys:
        target = (fk.column.table.name, fk.column.name)
        return parents[target][index]
    kind = column.type
    if isinstance(kind, types.Integer):
        return index + 1 if column.primary_key else 10 * index + 7
    if isinstance(kind, types.Boolean):
        return index % 2 == 0
    if isinstance(kind, (types.Float, types.Numeric)):
        return 1.5 + index
    if isinstance(kind, types.DateTime):
        return dt.datetime(2025, 3, 1 + index, 12, 30, 15, tzinfo=dt.UTC)
    if isinstance(kind, types.Date):
        return dt.date(2025, 1, 1 + index)
    if isinstance(kind, types.JSON):
        return {"row": index, "text": "ø æ å", "list": [1, 2.5, None]}
    if isinstance(kind, types.String):  # String, Text, VARCHAR
        value = f"{table}.{column.name}.{index}:æøå"
        length = getattr(kind, "length", None)
        return value[-length:] if length else value
    raise AssertionError(f"no representative value for {table}.{column.name} of type {kind!r}")


def _fill(connection: Connection) -> dict[str, list[dict[str, Any]]]:
    """ROWS rows in every table (parents first), the values as inserted."""
    metadata = MetaData()
    metadata.reflect(connection)
    parents: dict[tuple[str, str], list[Any]] = {}
    inserted: dict[str, list[dict[str, Any]]] = {}
    for table in metadata.sorted_tables:
        if table.name == "alembic_version":
            continue
        rows = [{c.name: _value(c, table.name, i, parents) for c in table.columns} for i in range(ROWS)]
        connection.execute(table.insert(), rows)
        for column in table.columns:
            parents[(table.name, column.name)] = [row[column.name] for row in rows]
        inserted[table.name] = rows
    return inserted


def _normal(value: Any) -> Any:
    """Compare instants as instants (SQLite hands back naive UTC datetimes)."""
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _contents(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    metadata = MetaData()
    with engine.connect() as connection:
        metadata.reflect(connection)
        contents = {}
        for name, table in metadata.tables.items():
            if name == "alembic_version":
                continue
            assert isinstance(table, Table)
            order = list(table.primary_key.columns) or list(table.columns)
            result = connection.execute(select(table).order_by(*order)).mappings()
            contents[name] = [{k: _normal(v) for k, v in row.items()} for row in result]
    return contents


def _same_where_both_hold(before: dict[str, list[dict[str, Any]]], after: dict[str, list[dict[str, Any]]],
                          step: str) -> None:
    """Every table and column present in both revisions has the same rows."""
    lost = sorted(set(before) - set(after))
    assert not lost, f"{step}: tables dropped with their data: {lost}"
    for name, rows in before.items():
        later = after[name]
        assert len(later) == len(rows), f"{step}: {name} had {len(rows)} rows, now {len(later)}"
        shared = set(rows[0]) & set(later[0]) if rows else set()
        for old, new in zip(rows, later, strict=True):
            assert {k: old[k] for k in shared} == {k: new[k] for k in shared}, f"{step}: {name} changed"


@pytest.mark.parametrize(("earlier", "later"), STEPS, ids=[f"{a}-to-{b}" for a, b in STEPS])
def test_upgrade_and_downgrade_keep_the_data(empty_db_url: str, earlier: str, later: str) -> None:
    engine = db.make_engine(empty_db_url)
    try:
        db.upgrade(engine, earlier)
        with engine.begin() as connection:
            inserted = _fill(connection)
        assert inserted, "the earlier revision has no tables to fill"
        before = _contents(engine)
        for name, rows in inserted.items():  # the generated rows read back as written
            assert [{k: _normal(v) for k, v in row.items()} for row in rows] == before[name], name

        db.upgrade(engine, later)
        assert db.current_revision(engine) == later
        _same_where_both_hold(before, _contents(engine), f"upgrade {earlier} -> {later}")

        db.downgrade(engine, earlier)
        assert db.current_revision(engine) == earlier
        assert _contents(engine) == before, f"downgrade {later} -> {earlier} changed the data"

        # and up once more: a migration must be re-runnable after its own downgrade
        db.upgrade(engine, later)
        _same_where_both_hold(before, _contents(engine), f"second upgrade {earlier} -> {later}")
    finally:
        engine.dispose()


def test_fill_reaches_every_table_at_head(empty_db_url: str) -> None:
    """The generator handles every column type the schema uses, so a later step can be filled too."""
    engine = db.make_engine(empty_db_url)
    try:
        db.upgrade(engine)
        with engine.begin() as connection:
            inserted = _fill(connection)
        tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
        assert set(inserted) == tables
        assert all(len(rows) == ROWS for rows in _contents(engine).values())
    finally:
        engine.dispose()
