"""``--target exec:COMMAND``: programs outside Python speaking the target contract.

Through the public API: `resolve` and ``harness run`` in a subprocess, against the
reference client (examples/exec_queue.py), the shell example over sqlite3
(examples/exec_sqlite.sh) and small broken programs. The shim cannot see a child's file
calls, so most scenarios honestly end "no fault fired"; what these tests hold is that a
run completes with verdicts, delivers everything without faults, turns a broken program
into a clear error, and leaves no child process behind.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from harness.run._exectarget import ExecProtocolError, ExecTargetError
from harness.run.targets import TargetError, resolve

REPO = Path(__file__).resolve().parents[3]
PY = shlex.quote(sys.executable)
REFERENCE = f"{PY} examples/exec_queue.py"


def _marker() -> str:
    return f"--marker-{uuid.uuid4().hex}"  # an extra argument the programs ignore


def _alive(marker: str) -> list[int]:
    """Pids of live processes whose command line carries the marker."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
            status = (entry / "status").read_text()
        except OSError:
            continue
        if marker.encode() in cmdline and "State:\tZ" not in status:
            found.append(int(entry.name))
    return found


def _run(target: str, *args: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "run.json"
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--target", target,
                           "--progress", "off", "--report-dir", str(tmp_path / "reports"),
                           "--json", str(out), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc, json.loads(out.read_text()) if out.exists() else {}


def test_the_reference_client_honours_the_contract(tmp_path):
    marker = _marker()
    factory = resolve(f"exec:{REFERENCE} {marker}")
    one, two = factory(str(tmp_path / "q")), factory(str(tmp_path / "q"))
    ids = [one.enqueue(bytes([i, 0, 255]) * 3) for i in range(5)]
    got = [two.claim("p1") for _ in ids]
    assert [g[0] for g in got] == ids and got[2][1] == bytes([2, 0, 255]) * 3
    assert two.claim("p1") is None
    assert two.states() == dict.fromkeys(ids, "PROCESSING")
    one.recover()
    qid, _payload = one.claim("p0")
    one.ack(qid)
    with pytest.raises(ExecTargetError, match="FileNotFoundError"):
        one.ack(qid)  # the program's own error, raised with its message
    assert len(two.states()) == 4
    one.close()
    two.close()
    assert _alive(marker) == []


def test_a_dropped_queue_takes_its_child_with_it(tmp_path):
    marker = _marker()
    queue = resolve(f"exec:{REFERENCE} {marker}")(str(tmp_path / "q"))
    queue.enqueue(b"x")
    assert _alive(marker) == [queue.pid]
    del queue  # a killed processor's queue is dropped without close()
    import gc

    gc.collect()
    assert _alive(marker) == []


def test_a_command_that_cannot_run_is_a_target_error():
    with pytest.raises(TargetError, match="not found"):
        resolve("exec:no-such-program-zz --x")
    with pytest.raises(TargetError, match="no command"):
        resolve("exec:  ")


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_a_run_completes_delivers_everything_and_leaves_no_child(tmp_path, mode):
    marker = _marker()
    target = f"exec:{REFERENCE} {marker}"
    proc, run = _run(target, "--mode", mode, "--scenario", "concurrent-processors",
                     "killed-mid-write", "power-loss", tmp_path=tmp_path)
    assert proc.returncode in (0, 1), proc.stderr
    # no file fault can reach the child (no fault fired, honestly), and with none the
    # checker finds every entry delivered: no violation in any scenario
    assert {s["status"] for s in run["scenarios"]} <= {"pass", "no_fault_fired"}, proc.stdout
    assert run["violations_total"] == 0 and len(run["scenarios"]) == 3, proc.stdout
    assert _alive(marker) == []


BROKEN = {
    "garbage": "for line in sys.stdin:\n    print('hello, not json', flush=True)\n",
    "exits": ("for line in sys.stdin:\n    if 'enqueue' in line:\n"
              "        print('dying in enqueue', file=sys.stderr, flush=True)\n"
              "        sys.exit(3)\n    print(json.dumps({'ok': None}), flush=True)\n"),
    "errors": ("for line in sys.stdin:\n    op = json.loads(line)['op']\n"
               "    reply = {'error': 'disk on fire'} if op == 'enqueue' else {'ok': None}\n"
               "    print(json.dumps(reply), flush=True)\n"),
}


@pytest.mark.parametrize("kind, words", [
    ("garbage", ["not JSON", "hello, not json"]),
    ("exits", ["exit code 3", "dying in enqueue"]),
    ("errors", ["disk on fire"]),
])
def test_a_broken_program_is_a_clear_error_not_a_traceback(tmp_path, kind, words):
    script = tmp_path / f"{kind}.py"
    script.write_text("import json, sys\n" + BROKEN[kind])
    marker = _marker()
    target = f"exec:{PY} {shlex.quote(str(script))} {marker}"
    queue = resolve(target)(str(tmp_path / "q"))
    with pytest.raises(ExecTargetError) as info:
        queue.enqueue(b"x")
    assert all(w in str(info.value) for w in words), info.value
    assert isinstance(info.value, ExecProtocolError) == (kind != "errors")
    queue.close() if kind == "errors" else None
    proc, run = _run(target, "--scenario", "concurrent-processors", tmp_path=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    # every call fails: the workload never ran (ERROR), or the final drain finds the queue
    # unavailable (FAIL), in words that carry the program's own error
    assert [s["status"] for s in run["scenarios"]] in (["error"], ["fail"]), proc.stdout
    assert words[0] in proc.stdout, proc.stdout
    assert _alive(marker) == []


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="the sqlite3 CLI is not installed "
                    "(apt-get install sqlite3): examples/exec_sqlite.sh drives it")
def test_the_shell_example_over_sqlite3_honours_the_contract(tmp_path):
    marker = _marker()
    factory = resolve(f"exec:sh examples/exec_sqlite.sh {marker}")
    cwd = os.getcwd()
    os.chdir(REPO)  # the command's path is relative to the harness's working directory
    try:
        one, two = factory(str(tmp_path / "q")), factory(str(tmp_path / "q"))
    finally:
        os.chdir(cwd)
    first, second = one.enqueue(b"\x00first\xff"), one.enqueue(b"second")
    assert two.claim("p1") == (first, b"\x00first\xff")
    assert one.claim("p0") == (second, b"second") and one.claim("p0") is None
    two.ack(first)
    with pytest.raises(ExecTargetError, match="not claimed"):
        two.ack(first)
    assert one.states() == {second: "PROCESSING"}
    one.recover()
    assert one.states() == {second: "PENDING"}
    assert two.claim("p1") == (second, b"second")
    one.close()
    two.close()
    assert _alive(marker) == []


def test_a_program_that_stops_answering_is_stuck_and_killed_in_process_mode(tmp_path):
    script = tmp_path / "hangs.py"
    script.write_text("import json, sys, time\nfor line in sys.stdin:\n"
                      "    if 'enqueue' in line:\n        time.sleep(3600)\n"
                      "    print(json.dumps({'ok': None}), flush=True)\n")
    marker = _marker()
    proc, run = _run(f"exec:{PY} {shlex.quote(str(script))} {marker}", "--mode", "process",
                     "--timeout", "2", "--scenario", "concurrent-processors",
                     tmp_path=tmp_path)
    assert [s["status"] for s in run["scenarios"]] == ["fail"], proc.stdout
    assert "inside enqueue" in proc.stdout
    assert _alive(marker) == []  # each worker's child died with its SIGKILLed worker
