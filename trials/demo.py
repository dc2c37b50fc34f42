"""`make demo`: the main job end to end on the embedded SQLite database in demo-output/.

Each step calls the same library functions the CLI uses, and prints what a user would see.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from trials import config, db
from trials.bootstrap import initialise
from trials.protocol import list_trials, read_protocol_file, register, shipped_protocols

OUTPUT = Path("demo-output")


def run(output: Path = OUTPUT) -> None:
    if output.exists():
        shutil.rmtree(output)
    output.mkdir(parents=True)
    settings = config.resolve(f"sqlite:///{output / 'demo.db'}", output / "trials.key")
    init = initialise(settings)
    print(f"1. created {init.database} (schema {init.revision}) and key {init.key_file}")

    engine = db.make_engine(settings.database_url)
    with db.write_session(engine) as session:
        for path in shipped_protocols():
            result = register(session, read_protocol_file(path))
            print(f"2. registered {result.trial_id} v{result.version} (seed commitment {result.seed_commitment[:16]}…)")
    with db.read_session(engine) as session:
        trials = list_trials(session)
    print(f"\n{len(trials)} registered trials:")
    for trial in trials:
        print(f"  {trial['id']:<24} unit={trial['unit']:<10} {trial['title']}")
    engine.dispose()


if __name__ == "__main__":
    run(Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT)
