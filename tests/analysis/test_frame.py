"""Reading and validating the analysis frame: every problem located by file, row and column."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from trials.analysis.engine import AnalysisOptions
from trials.analysis.frame import prepare, read_csv
from trials.errors import InputError

OPTS = AnalysisOptions(time="weeks", event="event", arm="arm")


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trial.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_bad_values_name_file_row_and_column(tmp_path: Path) -> None:
    path = _csv(tmp_path, "weeks,event,arm\n10,1,0\nten,1,1\n-3,2,1\n,0,\n")
    with pytest.raises(InputError) as info:
        prepare(read_csv(path), OPTS, str(path))
    lines = info.value.lines()
    assert f"{path}, row 3, column weeks: 'ten' is not a time >= 0 (time to event or censoring)" in lines
    assert any("row 4, column weeks" in line and "'-3'" in line for line in lines)
    assert any("row 4, column event" in line and "'2' is not 1 (event) or 0 (censored)" in line for line in lines)
    assert any("row 5, column weeks: is empty" in line for line in lines)
    assert any("row 5, column arm: arm is empty" in line for line in lines)


def test_missing_column_lists_columns(tmp_path: Path) -> None:
    path = _csv(tmp_path, "weeks,event,group\n1,1,a\n")
    with pytest.raises(InputError, match="no column 'arm' \\(given by --arm\\); columns are: weeks, event, group"):
        prepare(read_csv(path), OPTS, str(path))


def test_unknown_control_and_single_arm(tmp_path: Path) -> None:
    frame = pd.DataFrame({"weeks": [1, 2], "event": [1, 0], "arm": ["a", "b"]})
    with pytest.raises(InputError, match="control arm 'z' is not among"):
        prepare(frame, AnalysisOptions(time="weeks", event="event", arm="arm", control="z"))
    with pytest.raises(InputError, match="only one arm"):
        prepare(frame.assign(arm="a"), OPTS)


def test_file_problems(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        read_csv(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="no data rows"):
        read_csv(_csv(tmp_path, "weeks,event,arm\n"))
    (tmp_path / "bin.csv").write_bytes(b"\x00\x01\x02")
    with pytest.raises(InputError, match="not a text file"):
        read_csv(tmp_path / "bin.csv")


def test_arms_stay_strings_and_sorted_naturally(tmp_path: Path) -> None:
    path = _csv(tmp_path, "weeks;event;arm;x\n1;1;10;a\n2;0;2;b\n3;1;2;a\n")
    prep = prepare(read_csv(path), AnalysisOptions(time="weeks", event="event", arm="arm", adjust=["x"]))
    assert prep.arm_names == ["2", "10"] and prep.control == 0
    assert prep.covariate_names == ["x=b"]


def test_danish_decimal_comma_and_semicolons(tmp_path: Path) -> None:
    path = _csv(tmp_path, "uger;hændelse;arm;alder\n10,5;1;0;30,5\n3;0;1;41\n")
    prep = prepare(read_csv(path), AnalysisOptions(time="uger", event="hændelse", arm="arm", adjust=["alder"]))
    assert prep.time.tolist() == [10.5, 3.0]
    assert prep.covariates["adj_0"].tolist() == [30.5, 41.0]
