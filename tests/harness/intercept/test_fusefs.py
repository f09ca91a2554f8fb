"""The FUSE layer's filesystem: passthrough, whose call it is, faults carried out, clean-up.

Each test mounts a real FUSE filesystem over a temporary backing directory (the same
`FuseMount` a ``--layer fuse`` run uses) and drives it from real processes. They skip
where FUSE cannot run (no /dev/fuse, not root, no fuse3): the reason is printed.
"""

from __future__ import annotations

import errno
import fcntl
import os
import random
import signal

import multiprocess
import pytest

from harness.check.history import DRAIN
from harness.faults.actions import Kill, Raise
from harness.intercept.fusegate import hello_name
from harness.run import _fusemount
from harness.run.reaper import make_sandbox, remove_sandbox

pytestmark = pytest.mark.skipif(_fusemount.refusal() is not None,
                                reason=f"FUSE layer unavailable: {_fusemount.refusal()}")

CTX = multiprocess.get_context("fork")


class _Plan:
    """A plan that answers ``action`` for the first call of ``kind`` (then nothing)."""

    exhausted = False

    def __init__(self, kind: str | None = None, action=None) -> None:
        self.kind, self.action, self.calls = kind, action, []

    def decide(self, call):
        self.calls.append(call)
        if call.kind == self.kind and self.action is not None:
            action, self.action = self.action, None
            return action
        return None

    def at_rest(self, where, op):
        return []

    def heal(self):
        pass


@pytest.fixture
def mounted():
    made = []

    def mount(plan=None, model=False):
        sandbox = make_sandbox()
        m = _fusemount.FuseMount(sandbox, ctx=CTX, plan=plan, model=model,
                                 rng=random.Random(1), max_ops=10_000)
        made.append((m, sandbox))
        return m

    yield mount
    for m, sandbox in made:
        m.unmount()
        remove_sandbox(sandbox)
        assert not _mounted_under(sandbox)


def _mounted_under(path: str) -> list[str]:
    with open("/proc/mounts", encoding="utf-8") as f:
        return [line.split()[1] for line in f if line.split()[1].startswith(path)]


def _records(m) -> list[tuple]:
    out = []
    while m.records.poll(0.2):
        out.append(m.records.recv())
    return out


def _in_child(fn, *args) -> int:
    """Run ``fn`` in a forked process; its exit code (negative: the signal)."""
    proc = CTX.Process(target=fn, args=args)
    proc.start()
    proc.join(30)
    return proc.exitcode


def test_the_mount_passes_files_and_directories_through_to_the_backing_directory(mounted):
    m = mounted()
    q = os.path.join(m.mount, "q")
    os.mkdir(q)
    with open(os.path.join(q, "a.tmp"), "wb") as f:
        f.write(b"hello")
        f.flush()
        os.fsync(f.fileno())
    os.replace(os.path.join(q, "a.tmp"), os.path.join(q, "a"))
    with open(os.path.join(q, "b"), "wb") as f:
        f.write(b"x" * 10_000)
    os.truncate(os.path.join(q, "b"), 3)
    fd = os.open(q, os.O_RDONLY)
    os.fsync(fd)  # a directory fsync reaches the server as fsyncdir
    os.close(fd)
    # readdir(3) skips an entry whose d_ino is 0: the listing must carry inode numbers
    assert sorted(os.listdir(q)) == ["a", "b"]
    assert sorted(os.listdir(os.path.join(m.backing, "q"))) == ["a", "b"]
    with open(os.path.join(m.backing, "q", "a"), "rb") as f:
        assert f.read() == b"hello"
    assert os.path.getsize(os.path.join(m.backing, "q", "b")) == 3
    # an unlinked file stays readable through its open descriptor
    fd = os.open(os.path.join(q, "a"), os.O_RDONLY)
    os.unlink(os.path.join(q, "a"))
    assert os.read(fd, 5) == b"hello"
    os.close(fd)
    assert os.listdir(q) == ["b"]


def test_posix_and_flock_locks_hold_between_processes_on_the_mount(mounted):
    m = mounted()
    path = os.path.join(m.mount, "lock")
    with open(path, "wb") as f:
        f.write(b"x" * 100)
    fd = os.open(path, os.O_RDWR)
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def other() -> None:
        mine = os.open(path, os.O_RDWR)
        for take in (lambda: fcntl.lockf(mine, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0),
                     lambda: fcntl.flock(mine, fcntl.LOCK_EX | fcntl.LOCK_NB)):
            try:
                take()
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os._exit(3)
            else:
                os._exit(2)  # granted while the parent holds it: locks are broken
        fcntl.lockf(mine, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 50)  # another range is free
        os._exit(0)

    try:
        assert _in_child(other) == 0
    finally:
        os.close(fd)


def _hello_then_write(mount: str, process: int, name: str, data: bytes) -> None:
    try:
        os.stat(os.path.join(mount, hello_name(process, 0)))
    except FileNotFoundError:
        pass
    try:
        with open(os.path.join(mount, name), "wb", buffering=0) as f:
            f.write(data)
    except OSError as exc:
        os._exit(100 + exc.errno)
    os._exit(0)


def test_a_process_that_said_hello_has_its_calls_numbered_and_recorded(mounted):
    plan = _Plan()
    m = mounted(plan)
    assert _in_child(_hello_then_write, m.mount, 3, "f", b"abc") == 0
    fs = [r for r in _records(m) if r[0] == "fs"]
    assert [(r[1], r[2], r[3]) for r in fs if r[2] in ("open", "write")] == [
        (3, "open", "f"), (3, "write", "f")]
    assert all(r[6] == "ok" for r in fs)
    served, ops, _fired, errors = m.ask("final")  # the server's own copy of the plan
    assert errors == [] and ops == len(fs) >= 2
    assert [(c.op, c.process) for c in served.calls] == [(i, 3) for i in range(1, ops + 1)]
    # the drain's calls are recorded, never numbered nor shown to the plan
    assert _in_child(_hello_then_write, m.mount, DRAIN, "g", b"d") == 0
    assert any(r[0] == "fs" and r[1] == DRAIN for r in _records(m))
    served, after, _fired, _errors = m.ask("final")
    assert after == ops and len(served.calls) == ops


def test_a_process_nobody_knows_runs_untouched_and_unrecorded(mounted):
    plan = _Plan("write", Raise("DiskFull()", "disk_full", errno.ENOSPC))
    m = mounted(plan)
    with open(os.path.join(m.mount, "mine"), "wb") as f:  # the harness itself
        f.write(b"data")
    served, ops, _fired, _errors = m.ask("final")
    assert served.calls == [] and ops == 0 and _records(m) == []
    with open(os.path.join(m.backing, "mine"), "rb") as f:
        assert f.read() == b"data"


def test_an_injected_errno_reaches_the_caller_as_the_kernel_would_return_it(mounted):
    plan = _Plan("write", Raise("DiskFull()", "disk_full", errno.ENOSPC))
    m = mounted(plan)
    assert _in_child(_hello_then_write, m.mount, 0, "f", b"abc") == 100 + errno.ENOSPC
    writes = [r for r in _records(m) if r[0] == "fs" and r[2] == "write"]
    assert writes == [("fs", 0, "write", "f", None, 3, "ENOSPC", "DiskFull()")]


def test_a_kill_lands_a_torn_prefix_and_the_caller_dies_before_it_sees_an_answer(mounted):
    plan = _Plan("write", Kill("KillMidWrite()", "killed_mid_write", keep=4))
    m = mounted(plan)
    code = _in_child(_hello_then_write, m.mount, 1, "f", b"0123456789")
    assert code == -signal.SIGKILL
    with open(os.path.join(m.backing, "f"), "rb") as f:
        assert f.read() == b"0123"
    records = _records(m)
    assert ("fs", 1, "write", "f", None, 4, "killed", "KillMidWrite()") in records
    faults = [r for r in records if r[0] == "fault"]
    assert len(faults) == 1 and faults[0][1] == 1 and faults[0][5] == (1,)
    assert "4 of 10 bytes landed" in faults[0][4]


def test_unmount_leaves_no_mount_even_when_the_server_was_killed(mounted):
    m = mounted()
    os.kill(m.proc.pid, signal.SIGKILL)
    m.proc.join(10)
    m.unmount()  # the fixture checks /proc/mounts for what is left under the sandbox
    assert not _mounted_under(m.mount)
