"""The pytest plugin, used the way another project would: through its fixtures and marker only.

The last test runs pytest in a fresh directory outside this repository, so it also
proves the plugin is found through the installed ``pytest11`` entry point.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from harness.faults import DiskFull, KillMidWrite, PermissionDenied


def test_a_failed_enqueue_on_a_full_disk_leaves_nothing_behind(fault_shim, queue_target):
    shim = fault_shim(DiskFull(after_bytes=64))
    payload = b"x" * 2000
    with shim.processor(0):
        queue = queue_target.open()
        with pytest.raises(OSError):
            queue.enqueue(payload)
    assert shim.faults_fired >= 1
    assert "ENOSPC" in {op.outcome for op in shim.history.fs_ops()}
    shim.heal()
    with shim.processor(0):
        again = queue_target.open()
        again.recover()
        assert again.claim("w") is None, "the refused entry came out after all"


@pytest.mark.faults(PermissionDenied(calls=("open_write",), path="*.json"))
def test_the_marker_gives_the_plan_and_only_bound_code_is_hit(fault_shim, tmp_path):
    shim = fault_shim()
    target = tmp_path / "state.json"
    with shim.processor(0), pytest.raises(PermissionError):
        target.write_text("{}")
    target.write_text("{}")  # not bound to a processor: passes straight through
    assert target.read_text() == "{}"
    assert shim.faults_fired == 1
    assert [(op.call, op.outcome) for op in shim.history.fs_ops()] == [("open", "EACCES")]


def test_a_killed_enqueue_is_whole_or_absent_after_restart(fault_shim, queue_target):
    shim = fault_shim(KillMidWrite(calls=("write",), keep=0.5, at_op=1))
    payload = b"e1|" + bytes(range(256)) * 4
    with shim.processor(0):
        queue = queue_target.open()
        queue.enqueue(payload)
    assert shim.killed == [0], "the kill never happened"
    shim.restart(0)
    with shim.processor(0):
        after = queue_target.open()
        after.recover()
        got = after.claim("w")
    assert got is None or bytes(got[1]) == payload


_OUTSIDE_TEST = '''
import pytest
from harness.faults import DiskFull

@pytest.mark.faults(DiskFull(after_bytes=3))
def test_short_write(fault_shim, tmp_path):
    shim = fault_shim()
    with shim.processor(0), open(tmp_path / "f", "wb", buffering=0) as f:
        assert f.write(b"0123456789") == 3  # write(2): the short count, no error yet
        with pytest.raises(OSError):
            f.write(b"3456789")  # nothing fits any more: ENOSPC
    assert (tmp_path / "f").read_bytes() == b"012"

def test_seed_is_passed(fault_shim):
    assert fault_shim().seed == 7

def test_target_option(queue_target):
    assert queue_target.spec == "legacy"
    q = queue_target.open()
    q.enqueue(b"hello")
    assert q.claim("w")[1] == b"hello"

def test_failure_report_names_the_plan(fault_shim):
    fault_shim(DiskFull(after_bytes=5))
    assert False
'''


def test_another_project_gets_the_plugin_from_the_entry_point(tmp_path):
    (tmp_path / "test_outside.py").write_text(textwrap.dedent(_OUTSIDE_TEST))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "--harness-seed", "7", "--harness-target", "legacy", "test_outside.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    out = done.stdout + done.stderr
    assert "1 failed, 3 passed" in out, out
    assert "harness" in out and "plan Plan(faults=(DiskFull(after_bytes=5),)), seed 7" in out
