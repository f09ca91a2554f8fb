"""The shim's flock emulation, a killed processor's descriptors and locks, scheduler hooks,
and modules with a top-level ``import os``."""

from __future__ import annotations

import errno
import fcntl
import gc
import importlib
import os
import sys
import threading

import pytest

import persistence._os as target_os
from harness.check.history import History
from harness.faults.actions import Kill
from harness.intercept.shim import DeadlockError, ProcessorKilled, installed


def lock_file(sandbox):
    path = os.path.join(sandbox, ".lock")
    with open(path, "wb"):
        pass
    return path


def test_exclusive_lock_nonblocking_and_release_on_close(sandbox):
    path = lock_file(sandbox)
    history = History()
    with installed(sandbox=sandbox, history=history) as shim:
        with shim.processor(1):
            fd1 = os.open(path, os.O_RDWR)
            fcntl.flock(fd1, fcntl.LOCK_EX)
        with shim.processor(2):
            fd2 = os.open(path, os.O_RDWR)
            with pytest.raises(BlockingIOError) as info:
                fcntl.flock(fd2, fcntl.LOCK_EX | fcntl.LOCK_NB)
            assert info.value.errno == errno.EWOULDBLOCK
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd2, fcntl.LOCK_SH | fcntl.LOCK_NB)
        with shim.processor(1):
            os.close(fd1)
        with shim.processor(2):
            fcntl.flock(fd2, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd2, fcntl.LOCK_UN)
            os.close(fd2)
    outcomes = [r.outcome for r in history.fs_ops() if r.call == "lock"]
    assert outcomes == ["ok", "EAGAIN", "EAGAIN", "ok", "ok"]


def test_shared_locks_share_and_file_objects_lock_too(sandbox):
    path = lock_file(sandbox)
    with installed(sandbox=sandbox, history=History()) as shim:
        with shim.processor(1):
            f1 = open(path, "rb")  # noqa: SIM115 - held across processors
            fcntl.flock(f1, fcntl.LOCK_SH)
        with shim.processor(2):
            f2 = open(path, "rb")  # noqa: SIM115 - held across processors
            fcntl.flock(f2, fcntl.LOCK_SH | fcntl.LOCK_NB)
            with pytest.raises(BlockingIOError):
                fcntl.flock(f2, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with shim.processor(1):
            f1.close()
        with shim.processor(2):
            fcntl.flock(f2, fcntl.LOCK_EX | fcntl.LOCK_NB)  # upgrade once alone
            f2.close()


def test_killing_a_processor_releases_its_locks(sandbox):
    path = lock_file(sandbox)
    with installed(sandbox=sandbox, history=History()) as shim:
        with shim.processor(1):
            fcntl.flock(os.open(path, os.O_RDWR), fcntl.LOCK_EX)
        shim.kill(1, "test")
        with shim.processor(2):
            fcntl.flock(os.open(path, os.O_RDWR), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with shim.processor(1), pytest.raises(ProcessorKilled):
            os.open(path, os.O_RDWR)


def test_a_dead_processors_late_close_never_hits_a_live_file(sandbox):
    j = lambda name: os.path.join(sandbox, name)  # noqa: E731
    history = History()
    with installed(sandbox=sandbox, history=history) as shim:
        with shim.processor(1):
            n = os.open(j("p1"), os.O_RDWR | os.O_CREAT)
            fcntl.flock(n, fcntl.LOCK_EX)
            f = open(j("p1-buffered"), "w")  # noqa: SIM115 - left to its finaliser
            f.write("never lands")
            m = f.fileno()
        shim.kill(1, "test")
        with shim.processor(2):
            live = os.open(j("p2"), os.O_RDWR | os.O_CREAT)  # a number, but never n or m
            fcntl.flock(live, fcntl.LOCK_EX | fcntl.LOCK_NB)
            g = open(j("p1"), "wb")  # noqa: SIM115 - the dead one's file: lock released
            fcntl.flock(g, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert {live, g.fileno()}.isdisjoint({n, m})
        # the dead processor's cleanup: from its own thread, from a live processor's
        # thread (a finaliser runs wherever the collector does), from an unbound thread
        with shim.processor(1):
            os.close(n)
            with pytest.raises(ProcessorKilled):
                os.write(n, b"x")
        with shim.processor(2):
            os.close(n)
            with pytest.raises(OSError):  # not this processor's descriptor
                os.write(m, b"x")
        os.close(m)
        del f
        gc.collect()
        with shim.processor(2):
            assert os.write(live, b"alive") == 5
            g.write(b"alive")
            g.close()
            os.fstat(live)
            os.close(live)
        assert shim.real.fstat(n) and shim.real.fstat(m)  # still taken until uninstall
    for fd in (n, m):
        with pytest.raises(OSError):  # really closed once the shim went
            os.fstat(fd)
    bad = [(r.process, r.call, r.outcome) for r in history.fs_ops() if r.outcome != "ok"]
    assert bad == []  # no EBADF, and the dead processor's calls were never recorded
    assert [r.process for r in history.fs_ops()].count(1) == 3  # open, lock, open
    with open(j("p2"), "rb") as a, open(j("p1"), "rb") as b, open(j("p1-buffered"), "rb") as c:
        assert (a.read(), b.read(), c.read()) == (b"alive", b"alive", b"")


def test_a_lock_nobody_can_release_is_a_deadlock_not_a_hang(sandbox):
    path = lock_file(sandbox)
    history = History()
    with installed(sandbox=sandbox, history=history) as shim:
        with shim.processor(1):
            fcntl.flock(os.open(path, os.O_RDWR), fcntl.LOCK_EX)
        with shim.processor(2):
            fd = os.open(path, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except Exception:  # noqa: BLE001
                pytest.fail("DeadlockError must not be an Exception")
            except DeadlockError as exc:
                message = str(exc)
    assert message.startswith("processor 2 waits for LOCK_EX on .lock held by processor 1")
    assert history.fs_ops()[-1].outcome == "DeadlockError"


def test_blocking_lock_waits_for_another_thread(sandbox):
    path = lock_file(sandbox)
    held, order = threading.Event(), []
    with installed(sandbox=sandbox, history=History()) as shim:
        def holder():
            with shim.processor(1):
                fd = os.open(path, os.O_RDWR)
                fcntl.flock(fd, fcntl.LOCK_EX)
                held.set()
                for _ in range(3):
                    shim.real.sleep(0.02)  # really wait, while processor 2 blocks
                order.append("release")
                os.close(fd)

        thread = threading.Thread(target=holder)
        thread.start()
        held.wait(5)
        with shim.processor(2):
            fd = os.open(path, os.O_RDWR)
            fcntl.flock(fd, fcntl.LOCK_EX)
            order.append("acquired")
            os.close(fd)
        thread.join()
    assert order == ["release", "acquired"]


class Scheduler:
    def __init__(self, on_blocked):
        self.on_blocked, self.points, self.blocked_calls = on_blocked, [], []

    def switch_point(self, p):
        self.points.append(p)

    def blocked(self, p):
        self.blocked_calls.append(p)
        return self.on_blocked(p)


def test_scheduler_gets_switch_points_and_blocked_calls(sandbox):
    path = lock_file(sandbox)
    fds = {}

    def release_holder(p):  # stands for "processor 1 ran and closed its descriptor"
        with shim.processor(1):
            os.close(fds[1])
        return True

    scheduler = Scheduler(release_holder)
    with installed(sandbox=sandbox, history=History(), scheduler=scheduler) as shim:
        with shim.processor(1):
            fds[1] = os.open(path, os.O_RDWR)
            fcntl.flock(fds[1], fcntl.LOCK_EX)
        with shim.processor(2):
            fcntl.flock(os.open(path, os.O_RDWR), fcntl.LOCK_EX)
    assert scheduler.blocked_calls == [2]
    assert scheduler.points == [1, 1, 2, 2, 1]

    stuck = Scheduler(lambda p: False)
    with installed(sandbox=sandbox, history=History(), scheduler=stuck) as shim:
        with shim.processor(1):
            fcntl.flock(os.open(path, os.O_RDWR), fcntl.LOCK_EX)
        with shim.processor(2), pytest.raises(DeadlockError, match="every live processor"):
            fcntl.flock(os.open(path, os.O_RDWR), fcntl.LOCK_EX)


# -- a target module with a top-level `import os` ------------------------------------------


def test_persistence_os_module_is_intercepted(sandbox):
    path = os.path.join(sandbox, "journal")
    plan_calls = []

    class Plan:
        def decide(self, call):
            plan_calls.append(call.kind)
            if call.kind == "write" and call.nbytes == 5:
                return Kill(fault="KillMidWrite()", kind="killed_mid_write", keep=2)
            return None

    history = History()
    with installed(sandbox=sandbox, history=history, plan=Plan()) as shim, shim.processor(1):
        fd = target_os.open_file(path, os.O_CREAT | os.O_WRONLY)
        target_os.write_all(fd, b"abc", path)
        target_os.fsync(fd, path)
        target_os.fsync_dir(sandbox)
        assert target_os.try_flock(fd, path)
        with pytest.raises(ProcessorKilled):
            target_os.write_all(fd, b"12345", path)
    assert plan_calls == ["open", "write", "fsync", "open", "dirsync", "close", "lock", "write"]
    with open(path, "rb") as f:
        assert f.read() == b"abc12"


def test_a_fresh_module_with_top_level_import_os_is_intercepted(tmp_path, request):
    (tmp_path / "tiny_target.py").write_text(
        "import os\n\ndef save(path, data):\n"
        "    fd = os.open(path, os.O_CREAT | os.O_WRONLY)\n"
        "    os.write(fd, data)\n    os.fsync(fd)\n    os.close(fd)\n")
    sys.path.insert(0, str(tmp_path))
    request.addfinalizer(lambda: (sys.path.remove(str(tmp_path)),
                                  sys.modules.pop("tiny_target", None)))
    tiny = importlib.import_module("tiny_target")
    request.getfixturevalue("fs")  # pyfakefs now swaps tiny_target.os for its fake module
    os.makedirs("/box")
    history = History()
    with installed(sandbox="/box", history=history) as shim, shim.processor(1):
        tiny.save("/box/f", b"data")
    assert [r.call for r in history.fs_ops()] == ["open", "write", "fsync", "close"]
    with open("/box/f", "rb") as f:
        assert f.read() == b"data"
