"""``harness stress`` as a user runs it: interrupted, terminated, its parent killed, from a
console script without a ``__main__`` guard, with bad ``--replay`` files; and the numbers
it prints are the ones it ran.

Each test runs the command in a subprocess whose environment carries a unique marker,
which every worker inherits, so /proc tells whether any of them outlived it. The only
timing in an assert is a generous upper bound that keeps a broken command from hanging
the suite.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from harness.report.progress import Progress

REPO = Path(__file__).resolve().parents[3]
_WAIT_S = 120.0


def _marked(marker: str) -> list[int]:
    """Pids whose environment carries the marker (the command and its workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _start(tmp_path: Path, *args: str, runner: list[str] | None = None
           ) -> tuple[subprocess.Popen, str]:
    marker = f"stress-{uuid.uuid4().hex}"
    env = dict(os.environ, HARNESS_TEST_MARKER=marker, TMPDIR=str(tmp_path))
    env.pop("CI", None)
    cmd = (runner or [sys.executable, "-m", "harness"]) + [
        "stress", "--database", str(tmp_path / "db"), "--report-dir", str(tmp_path / "r"),
        "--progress", "plain", *args]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True), marker


def _wait_until(condition, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + _WAIT_S
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"stress ended before {what}: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"stress never got to {what}")
        time.sleep(0.1)


def _none_left(marker: str) -> bool:
    deadline = time.monotonic() + 30  # reaped means gone; allow the kernel its bookkeeping
    while _marked(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _marked(marker) == []


def _workers_running(marker: str) -> bool:
    return len(_marked(marker)) >= 3  # the command and its two workers


def _sandboxes(tmp_path: Path) -> list[Path]:
    return [p for p in tmp_path.iterdir() if p.name.startswith("harness-")]


def test_ctrl_c_saves_what_was_found_and_exits_130(tmp_path):
    out = tmp_path / "stress.json"
    proc, marker = _start(tmp_path, "--target", "legacy", "--faults", "concurrent_processors",
                          "--examples", "5000", "-j", "2", "--json", str(out))
    try:
        # hypothesis saves a failure to the database when it finds it: one was found
        _wait_until(lambda: any(p.is_file() for p in (tmp_path / "db").rglob("*")), proc,
                    "its first counterexample")
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=_WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stdout + stderr, stderr
    assert "verdict: INTERRUPTED stress legacy by SIGINT" in stdout, stdout
    data = json.loads(out.read_text())
    assert data["interrupted"] == "SIGINT" and data["found"], (data, stdout, stderr)
    for c in data["counterexamples"]:
        assert Path(c["replay"].rsplit(" ", 1)[1]).is_file()
        assert f"FOUND {c['bug']}" in stdout
    assert _none_left(marker), "a worker outlived the command"
    left = _sandboxes(tmp_path)
    assert left == [], [sorted(str(p.relative_to(tmp_path)) for p in d.rglob("*")) for d in left]


def test_sigterm_leaves_no_worker_and_exits_143(tmp_path):
    proc, marker = _start(tmp_path, "--target", "robust", "--examples", "5000", "-j", "2",
                          "--json", str(tmp_path / "s.json"))
    try:
        _wait_until(lambda: _workers_running(marker), proc, "two workers")
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=_WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stdout + stderr
    assert "Traceback" not in stdout + stderr, stderr
    assert json.loads((tmp_path / "s.json").read_text())["interrupted"] == "SIGTERM"
    assert _none_left(marker), "a worker outlived the command"
    left = _sandboxes(tmp_path)
    assert left == [], [sorted(str(p.relative_to(tmp_path)) for p in d.rglob("*")) for d in left]


def test_workers_die_with_a_command_that_is_sigkilled(tmp_path):
    proc, marker = _start(tmp_path, "--target", "robust", "--examples", "5000", "-j", "2")
    try:
        _wait_until(lambda: _workers_running(marker), proc, "two workers")
        proc.kill()  # no cleanup can run: the workers must notice by themselves
        proc.communicate(timeout=_WAIT_S)
        assert _none_left(marker), "a worker outlived its SIGKILLed parent"
        assert _sandboxes(tmp_path) == [], "the workers did not clean up as they stopped"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_runs_from_a_console_script_without_a_main_guard(tmp_path):
    script = tmp_path / "mystress.py"
    script.write_text("import sys\nfrom harness.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    proc, marker = _start(tmp_path, "--target", "robust", "--examples", "4", "-j", "2",
                          "--json", str(tmp_path / "s.json"),
                          runner=[sys.executable, str(script)])
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stdout + stderr
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["examples"] == 4 and not data["found"] and not data["errors"], data
    assert _none_left(marker)


def test_examples_reported_are_the_examples_asked_for(tmp_path):
    # Two searches (a race alone and the mix): --examples 30 is split between them, and
    # the number printed is the number hypothesis tried, not one per search or per run.
    proc, _ = _start(tmp_path, "--target", "robust", "--examples", "30",
                     "--faults", "concurrent_processors,disk_full",
                     "--json", str(tmp_path / "s.json"))
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stdout + stderr
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["examples"] == 30 == sum(s["examples"] for s in data["searches"]), data
    assert "verdict: PASS stress robust: nothing found in 30 of 30 examples" in stdout, stdout


def _replay(tmp_path: Path, content: str | None, *extra: str) -> subprocess.CompletedProcess:
    path = tmp_path / "counterexample.json"
    if content is not None:
        path.write_text(content)
    return subprocess.run([sys.executable, "-m", "harness", "stress", "--replay", str(path),
                           *extra], cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("content, says", [
    (None, "cannot read it"),
    ("this is not json {", "not JSON"),
    ('{"scenarios": []}', "not a stress counterexample"),
    ('{"target": "legacy", "seed": 1, "workload": {}, "schedule": []}', "plan"),
    ('[1, 2]', "not a stress counterexample"),
])
def test_a_bad_replay_file_is_one_line_and_exit_2(tmp_path, content, says):
    proc = _replay(tmp_path, content)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert str(tmp_path / "counterexample.json") in lines[0] and says in lines[0], lines[0]
    assert "expected a counterexample that 'harness stress' saved" in lines[0], lines[0]


def test_replay_writes_its_json(tmp_path):
    saved = {"target": "legacy", "seed": 1, "name": "stress",
             "workload": {"entries": 2, "processors": 1},
             "plan": [{"kind": "disk_full", "after_bytes": 0}], "schedule": []}
    proc = _replay(tmp_path, json.dumps(saved), "--json", str(tmp_path / "replay.json"))
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    data = json.loads((tmp_path / "replay.json").read_text())
    assert data["replay_file"] == str(tmp_path / "counterexample.json")
    assert data["status"] in proc.stdout.splitlines()[-1] and "verdict:" in proc.stdout


def test_plain_progress_of_an_open_ended_search_says_how_long_it_has_run():
    import io

    now = [0.0]
    out = io.StringIO()
    bar = Progress(total=None, description="stress robust", unit="runs", mode="plain",
                   stream=out, interval_s=10, clock=lambda: now[0], elapsed=True)
    now[0] = 65.0
    bar.update(130, bugs=2)
    assert out.getvalue() == "stress robust: 130 runs, 2.0/s, 1m05s elapsed, bugs=2\n"
