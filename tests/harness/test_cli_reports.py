"""`harness run` as a user starts it (a real process): which scenarios it runs, and the
reports it writes, alone and beside another run in the same directory.

The target here refuses to open, so each scenario ends ERROR at once and a whole set
runs in a second or two: these tests are about names and files, not verdicts. One copy
of it can be held at its first open (it says so on stderr) until the test sends
SIGUSR1, which keeps a run alive, by events and not by timing, while a second run starts
and ends.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.scenarios import default_dir

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p.stem for p in (REPO / "harness" / "scenarios_data").glob("*.toml"))

TARGET = """\
import os, signal, sys, time

_go = not os.environ.get("HOLD_AT_OPEN")


def _release(signum, frame):
    global _go
    _go = True


signal.signal(signal.SIGUSR1, _release)


def open_queue(directory):
    if not _go:
        print("held at open", file=sys.stderr, flush=True)
    while not _go:  # held here until the test says go
        time.sleep(0.01)
    raise RuntimeError("refused: this target never opens")
"""

UNRELATED = """\
description = "A project's own scenario that has nothing to do with the built-in set."
fault = "disk_full"
[[faults]]
kind = "disk_full"
after_bytes = 64
"""



@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    """An empty working directory, with the target module on PYTHONPATH beside it."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "refuser.py").write_text(TARGET, encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    return work


def _env(cwd: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(cwd.parent / "lib"), **extra}


def _harness(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd,
                          env=_env(cwd, **env), capture_output=True, text=True, timeout=120)


def _run_args(*extra: str) -> list[str]:
    return ["run", "--target", "refuser:open_queue", "--progress", "off", *extra]


def _reports_line(stdout: str) -> list[str]:
    line = next(ln for ln in stdout.splitlines() if ln.startswith("reports: "))
    return line.removeprefix("reports: ").split(", ")


def test_a_scenarios_folder_in_the_working_directory_changes_nothing(cwd):
    (cwd / "scenarios").mkdir()
    (cwd / "scenarios" / "unrelated.toml").write_text(UNRELATED, encoding="utf-8")
    proc = _harness(cwd, *_run_args("--scenario", "all", "--json", "run.json"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == (f"scenarios: built-in set ({default_dir()}); not "
                        f"{cwd / 'scenarios'} (only --scenario-dir reads a folder of yours: "
                        "--scenario-dir scenarios)")
    ran = sorted(ln.split()[1] for ln in lines if ln.startswith("ERROR  "))
    assert ran == SHIPPED and len(SHIPPED) >= 20
    saved = json.loads((cwd / "run.json").read_text())
    assert saved["scenario_set"] == {"set": "built-in", "directory": str(default_dir()),
                                     "ignored": str(cwd / "scenarios")}
    # Asked for by name, the folder is the set, and the run says so.
    own = _harness(cwd, *_run_args("--scenario-dir", "scenarios"))
    assert own.stdout.splitlines()[0] == f"scenarios: --scenario-dir ({cwd / 'scenarios'})"
    assert [ln.split()[1] for ln in own.stdout.splitlines() if ln.startswith("ERROR  ")] == [
        "unrelated"]
