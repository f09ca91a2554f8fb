"""The pytest plugin, used the way another project would: through its fixtures and marker only.

The last two tests run pytest in a fresh directory outside this repository, so they also
prove the plugin is found through the installed ``pytest11`` entry point.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

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


_OPENED_MODULE = '''
import json, os

class Recorded:
    """A dict queue that notes its close in the directory, so the outer test can see it."""
    def __init__(self, directory):
        os.makedirs(directory, exist_ok=True)
        self.directory, self.items, self.n = directory, {}, 0
    def enqueue(self, payload):
        self.n += 1
        self.items[f"e{self.n}"] = payload
        return f"e{self.n}"
    def claim(self, worker):
        return next(iter(self.items.items()), None)
    def ack(self, entry_id):
        del self.items[entry_id]
    def recover(self):
        pass
    def close(self):
        with open(os.path.join(os.path.dirname(self.directory), "closed"), "a") as f:
            f.write(self.directory + "\\n")

def open_recorded(directory):
    return Recorded(directory)
'''

_OPENED_TEST = '''
import os
import pytest

@pytest.mark.harness_target("recorded:open_recorded")
def test_opened_queue_is_a_queue(opened_queue, tmp_path):
    entry = opened_queue.enqueue(b"hello")
    assert opened_queue.claim("w") == (entry, b"hello")
    opened_queue.ack(entry)
    assert opened_queue.directory == str(tmp_path / "q")
    with open(os.environ["OUTER"], "a") as f:
        f.write(str(tmp_path) + "\\n")

def test_opened_queue_defaults_to_robust(opened_queue):
    entry = opened_queue.enqueue(b"x")
    assert opened_queue.claim("w")[0] == entry

def test_the_factory_says_how_to_get_a_queue(queue_target):
    with pytest.raises(AttributeError) as info:
        queue_target.enqueue(b"x")
    message = str(info.value)
    assert "queue_target.open()" in message and "opened_queue" in message, message
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        queue_target.nonsense
'''


def test_opened_queue_yields_a_queue_and_closes_it(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "recorded.py").write_text(textwrap.dedent(_OPENED_MODULE))
    (project / "test_opened.py").write_text(textwrap.dedent(_OPENED_TEST))
    outer = tmp_path / "tmp_paths"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "test_opened.py"], cwd=project, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "OUTER": str(outer), "PYTHONPATH": str(project)})
    out = done.stdout + done.stderr
    assert done.returncode == 0 and "3 passed" in out, out
    inner_tmp = outer.read_text().strip()
    closed = (Path(inner_tmp) / "closed").read_text().split()
    assert closed == [str(Path(inner_tmp) / "q")], "opened_queue was not closed at teardown"


def test_the_readme_example_runs_as_written(tmp_path):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("**4. Or test one function in pytest.**"):]
    code = section[section.index("```python\n") + len("```python\n"):section.index("```\n", 10)]
    assert "opened_queue" in code and "queue_target.open()" in code, "the example moved"
    (tmp_path / "test_readme.py").write_text(code)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "test_readme.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL)
    out = done.stdout + done.stderr
    assert done.returncode == 0 and " failed" not in out and " error" not in out, out
