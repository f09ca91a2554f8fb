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
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness import cli
from harness.report import reportfiles as _reportfiles
from harness.run.scenarios import default_dir

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

STEM = "run-refuser-open_queue-thread"
_SILENCE_S = 60


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


def test_html_alone_still_writes_json_junit_and_markdown(cwd):
    proc = _harness(cwd, *_run_args("--scenario", "disk-full", "--html", "page.html"))
    assert proc.returncode == 1, proc.stdout + proc.stderr  # ERROR: the target refuses
    assert sorted(p.name for p in (cwd / "reports").iterdir()) == [
        f"{STEM}.json", f"{STEM}.md", f"{STEM}.xml"]
    assert (cwd / "page.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert _reports_line(proc.stdout) == [f"reports/{STEM}.json", f"reports/{STEM}.xml",
                                          f"reports/{STEM}.md", "page.html"]
    again = _harness(cwd, "report", f"reports/{STEM}.json", "--html", "again.html")
    assert again.returncode == 0, again.stderr
    assert (cwd / "again.html").exists()


def test_an_explicit_path_moves_its_format_and_drops_none(cwd):
    proc = _harness(cwd, *_run_args("--scenario", "disk-full", "--json", "out/run.json"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert json.loads((cwd / "out" / "run.json").read_text())["target"] == "refuser:open_queue"
    assert sorted(p.name for p in (cwd / "reports").iterdir()) == [f"{STEM}.md",
                                                                  f"{STEM}.xml"]


def test_two_concurrent_runs_into_one_report_dir_keep_both_reports(cwd):
    first = subprocess.Popen(
        [sys.executable, "-m", "harness", *_run_args("--scenario", "disk-full", "--seed", "1",
                                                     "--report-dir", "shared")],
        cwd=cwd, env=_env(cwd, HOLD_AT_OPEN="1"), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        # The target says when the first run is inside its first open, its reports' names
        # long since chosen. (The bound turns a run that never gets there into a failure,
        # not a hang.)
        if not select.select([first.stderr], [], [], _SILENCE_S)[0]:
            pytest.fail(f"the first run did not reach the target in {_SILENCE_S} s")
        assert first.stderr.readline() == "held at open\n"
        second = _harness(cwd, *_run_args("--scenario", "disk-full", "--seed", "2",
                                          "--report-dir", "shared"))
    finally:
        first.send_signal(signal.SIGUSR1)
        out, err = first.communicate(timeout=120)
    assert first.returncode == 1 and second.returncode == 1, (out, err, second.stderr)
    shared = cwd / "shared"
    seeds = sorted(json.loads(p.read_text())["seed"] for p in shared.glob("*.json"))
    assert seeds == [1, 2], "one run's report replaced the other's"
    assert _reports_line(out) == [f"shared/{STEM}.{ext}" for ext in ("json", "xml", "md")]
    assert _reports_line(second.stdout) == [f"shared/{STEM}-2.{ext}"
                                            for ext in ("json", "xml", "md")]
    assert f"shared/{STEM}.* -> shared/{STEM}-2.* (another run in progress" in second.stdout
    assert json.loads((shared / f"{STEM}.json").read_text())["seed"] == 1
    assert json.loads((shared / f"{STEM}-2.json").read_text())["seed"] == 2
    assert sorted(p.name for p in shared.iterdir()) == sorted(
        f"{STEM}{n}.{ext}" for n in ("", "-2") for ext in ("json", "xml", "md"))
    # Once both ended, the names are free again: a later run replaces the first report.
    third = _harness(cwd, *_run_args("--scenario", "disk-full", "--seed", "3",
                                     "--report-dir", "shared"))
    assert _reports_line(third.stdout)[0] == f"shared/{STEM}.json"
    assert json.loads((shared / f"{STEM}.json").read_text())["seed"] == 3


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


# -- in process: the claim itself ---------------------------------------------------------


def test_a_held_name_is_skipped_and_freed_on_release(tmp_path):
    suffixes = {"json": ".json"}
    with (_reportfiles.claim("run-x", tmp_path, {"json": None}, suffixes) as first,
          _reportfiles.claim("run-x", tmp_path, {"json": None}, suffixes) as second):
        assert first.paths["json"].name == "run-x.json"
        assert second.paths["json"].name == "run-x-2.json"
        assert second.moved == [f"{tmp_path / 'run-x'}.* -> {tmp_path / 'run-x-2'}.*"]
    assert list(tmp_path.iterdir()) == []  # lock files go with their claims
    (tmp_path / ".run-x.json.lock").write_text("")  # left by a run that was SIGKILLed
    with _reportfiles.claim("run-x", tmp_path, {"json": None}, suffixes) as again:
        assert again.paths["json"].name == "run-x.json" and again.moved == []
        # A path given explicitly meets the same lock as the name another run chose.
        explicit = _reportfiles.claim("ignored", tmp_path, {"json": tmp_path / "run-x.json"},
                                      suffixes)
        assert explicit.paths["json"].name == "run-x-2.json"
        assert explicit.moved == [f"{tmp_path / 'run-x'}.json -> {tmp_path / 'run-x-2'}.json"]
        explicit.release()


def test_an_unwritable_report_place_is_exit_2_before_anything_runs(tmp_path, monkeypatch,
                                                                    capsys):
    ran = []
    import harness.run.runner

    monkeypatch.setattr(harness.run.runner, "run_suite", lambda *a, **k: ran.append(a))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("")
    assert cli.main(["run", "--report-dir", str(tmp_path / "file" / "sub")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("harness run: error: --report-dir ")
    assert len(err.splitlines()) == 1 and ran == []
