"""One concurrent enroller for the throughput benchmark: enrolls its cases one per transaction."""

from __future__ import annotations

import sys
from pathlib import Path

from bench.workloads import ENROLLED_ON


def main(url: str, key_file: str, case_ids: list[str]) -> None:
    from trials import db
    from trials.assign import enroll
    from trials.pseudonym import load_key

    engine = db.make_engine(url)
    key = load_key(Path(key_file))
    for case_id in case_ids:
        with db.write_session(engine) as session:
            enroll(session, "bench-trial", case_id, ENROLLED_ON, key)
    engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
