"""No CPR number anywhere: database, exports, reports, audit bundles, command output.

A cohort identified by (synthetic) CPR numbers goes through the whole pipeline; then every
file the tool wrote and every table is searched for each CPR, with and without its dash.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from tests.pipeline import run_pipeline
from trials import db


def _needles(cprs: list[str]) -> list[bytes]:
    out = []
    for cpr in cprs:
        digits = cpr.replace("-", "")
        out += [digits.encode(), f"{digits[:6]}-{digits[6:]}".encode()]
    return out


def _database_text(db_url: str) -> bytes:
    engine = db.make_engine(db_url)
    chunks = []
    with engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            if engine.dialect.name == "postgresql":
                rows = connection.execute(text(f"SELECT row_to_json(t)::text FROM {table} t")).scalars()
            else:
                rows = (repr(tuple(r)) for r in connection.execute(text(f"SELECT * FROM {table}")))
            chunks += [str(r).encode() for r in rows]
    engine.dispose()
    return b"\n".join(chunks)


@pytest.mark.slow
def test_no_cpr_survives_the_pipeline(db_url: str, key_file: Path, tmp_path: Path, trials_cli) -> None:  # type: ignore[no-untyped-def]
    work = tmp_path / "work"
    work.mkdir()
    pipeline = run_pipeline(db_url, key_file, work, n=120, with_cpr=True)
    assert len(pipeline.cprs) == 120
    out = tmp_path / "out"
    out.mkdir()
    outputs = [
        trials_cli.ok("cases", "list", "--json"),
        trials_cli.ok("assignments", "export", "street-walker", "-o", out / "assignments.csv"),
        trials_cli.ok("outcomes", "export", "street-walker", "-o", out / "outcomes.csv"),
        trials_cli.ok("audit", "export", "street-walker", "-o", out / "bundle.zip"),
        trials_cli.ok("audit", "log", "--json"),
        trials_cli.ok("report", "street-walker", "--format", "json", "--replicates", "50"),
        trials_cli.ok("report", "street-walker", "--replicates", "50", "-o", out / "effect.html"),
        trials_cli.ok("report", "street-walker", "--format", "md", "--replicates", "0", "-o", out / "effect.md"),
        trials_cli.ok("audit", "report", "street-walker", "-o", out / "audit.html"),
        trials_cli.ok("portfolio", "report", "-o", out / "portfolio.html"),
        trials_cli.ok("status", "--json"),
        trials_cli("enroll", "street-walker", pipeline.cprs[0]),  # refused (closed): the error must not echo it
    ]
    haystack = [r.stdout.encode() + r.stderr.encode() for r in outputs]
    for path in out.iterdir():
        haystack.append(path.read_bytes())
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as bundle:
                haystack += [bundle.read(name) for name in bundle.namelist()]
    haystack.append(_database_text(db_url))
    if db_url.startswith("sqlite"):
        database = Path(db_url.removeprefix("sqlite:///"))
        haystack += [p.read_bytes() for p in database.parent.glob(database.name + "*")]
    needles = _needles(pipeline.cprs)
    leaks = [n.decode() for n in needles if any(n in blob for blob in haystack)]
    assert leaks == []
    assert any(b"cpr" in p.read_bytes()[:200] for p in [pipeline.cases_file])  # the input did carry CPRs
