"""The project as pip installs it: a wheel in a fresh venv, used from an empty directory.

`pip install .` (not -e) once gave a harness with no scenarios (``.../site-packages/
scenarios: no such scenario directory``, exit 2), because they lived beside the
package, not in it. Here the wheel that ``pip wheel .`` builds goes into a new venv with
``--no-deps``; its dependencies (hypothesis, multiprocess, tqdm) come from this test's
own environment through a ``.pth`` line, which adds that site-packages directory to
``sys.path`` but does not run the ``.pth`` files in it, so this checkout's editable
install of the harness is not there and the venv can only import what the wheel holds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "harness" / "scenarios_data"

pytestmark = pytest.mark.slow  # a wheel build, a venv and every scenario: about 30 s


def _run(*cmd: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    # No PYTHONPATH: a checkout on it would hand the venv this tree instead of the wheel.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"{cmd}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The venv's bin directory, with the wheel of this checkout installed in it."""
    base = tmp_path_factory.mktemp("wheel")
    # Built from a copy: pip builds in the tree it is given, and a build/ left in the
    # checkout would feed stale files to later wheels.
    source = shutil.copytree(REPO, base / "src", ignore=shutil.ignore_patterns(
        ".*", "build", "*.egg-info", "__pycache__", "reports", "tests", "*venv*"))
    _run(sys.executable, "-m", "pip", "wheel", source, "--no-deps", "--quiet", "-w",
         base / "dist", cwd=base)
    (wheel,) = (base / "dist").glob("queue_chaos-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        shipped = {n.removeprefix("harness/scenarios_data/") for n in zf.namelist()
                   if n.startswith("harness/scenarios_data/")}
    assert shipped == {p.relative_to(DATA).as_posix() for p in DATA.rglob("*.toml")}
    _run(sys.executable, "-m", "venv", base / "venv", cwd=base)
    bin_dir = base / "venv" / "bin"
    _run(bin_dir / "python", "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
         wheel, cwd=base)
    purelib = _run(bin_dir / "python", "-c", "import sysconfig; "
                   "print(sysconfig.get_paths()['purelib'])", cwd=base).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    Path(purelib, "test-deps.pth").write_text(ours + "\n", encoding="utf-8")
    return bin_dir


def test_the_installed_harness_has_every_scenario_from_any_directory(installed, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    where = _run(installed / "python", "-c", "import harness; print(harness.__file__)",
                 cwd=empty).stdout
    assert str(installed.parent) in where and str(REPO) not in where

    listed = _run(installed / "harness", "list", cwd=empty).stdout
    assert listed.startswith(f"scenarios: built-in set ({installed.parent}/lib/")
    for path in DATA.rglob("*.toml"):
        name = path.relative_to(DATA).with_suffix("").as_posix()
        assert f"\n  {name} " in listed, f"{name} missing from harness list"

    ran = _run(installed / "harness", "run", "--target", "robust", "--scenario", "all",
               "--progress", "off", cwd=empty).stdout
    passed = sorted(line.split()[1] for line in ran.splitlines() if line.startswith("PASS  "))
    assert passed == sorted(p.stem for p in DATA.glob("*.toml"))
    assert f"verdict: PASS target robust: {len(passed)} scenarios" in ran
    assert len(list((empty / "reports").glob("run-robust*"))) == 3  # JSON, JUnit, Markdown
