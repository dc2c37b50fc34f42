"""The built wheel works without the checkout: migrations and protocols come from the package."""

from __future__ import annotations

import json
import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_installs_and_runs_in_an_empty_folder(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(ROOT)],
        check=True, capture_output=True,
    )
    (wheel,) = wheels.glob("trials-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # Dependencies come from the test environment's site-packages (no network needed); the
    # editable `trials` there is not activated, because .pth files in an added folder are not run.
    new_site = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip())
    (new_site / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, capture_output=True)

    work = tmp_path / "empty"
    work.mkdir()
    trials = str(venv / "bin" / "trials")
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}

    def run(*args: str) -> str:
        done = subprocess.run([trials, *args], cwd=work, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout

    run("init")
    shipped = subprocess.run(
        [str(python), "-c", "from trials.protocol import shipped_protocols; print(shipped_protocols()[0])"],
        cwd=work, env=env, check=True, capture_output=True, text=True,
    ).stdout.strip()
    assert shipped.startswith(str(new_site)), shipped
    run("protocol", "register", shipped)
    listed = json.loads(run("protocol", "list", "--json"))
    assert [row["id"] for row in listed] == [Path(shipped).stem]
