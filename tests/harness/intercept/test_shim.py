"""The shim: recording, actions, kills and patching, on the real disk and under pyfakefs."""

from __future__ import annotations

import builtins
import contextlib
import errno
import fcntl
import gc
import io
import os
import pathlib
import random
import shutil
import threading
import time
import types

import pytest

from harness.check.history import DRAIN, NEMESIS, History
from harness.faults import DiskFull, KillMidWrite, PowerLoss
from harness.faults import Plan as FaultPlan
from harness.faults.actions import Kill, PowerCut, Raise, RemoveDirectory, ShortWrite
from harness.faults.durability import DurabilityModel
from harness.intercept.shim import ProcessorKilled, ShimError, installed


class Plan:
    """Fires ``action`` once, at the first call matching ``kind`` (and ``path``)."""

    def __init__(self, kind=None, action=None, path=None):
        self.kind, self.action, self.path, self.calls = kind, action, path, []

    def decide(self, call):
        self.calls.append(call)
        if self.action and call.kind == self.kind and self.path in (None, call.path):
            action, self.action = self.action, None
            return action
        return None


class Model:
    def __init__(self, sentences=("rolled back q/a",)):
        self.calls, self.sentences = [], list(sentences)

    def file_synced(self, fd):
        self.calls.append(("file_synced", fd))

    def dir_synced(self, fd):
        self.calls.append(("dir_synced", fd))

    def removed_by_fault(self, path):
        self.calls.append(("removed_by_fault", path))

    def power_loss(self, rng, torn=None, names="strict"):
        self.calls.append(("power_loss", torn) if names == "strict" else
                          ("power_loss", torn, names))
        return self.sentences


@contextlib.contextmanager
def bound(sandbox, p=1, **kw):
    history = History()
    with installed(sandbox=sandbox, history=history, **kw) as shim, shim.processor(p):
        yield shim, history


def put(sandbox, rel, data=b"old"):
    path = os.path.join(sandbox, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


def tree(root):
    out = {}
    for top, dirs, files in os.walk(root):
        for d in dirs:
            out[os.path.relpath(os.path.join(top, d), root)] = "dir"
        for name in files:
            with open(os.path.join(top, name), "rb") as f:
                out[os.path.relpath(os.path.join(top, name), root)] = f.read()
    return out


def fs_log(history):
    return [(r.call, r.path, r.path2, r.nbytes, r.outcome) for r in history.fs_ops()]


def assert_buried(shim, fd):
    """A killed processor's descriptor: its number still taken, its file released."""
    assert shim._fds[fd].dead
    st = shim.real.fstat(fd)  # still open: nobody else can be given this number
    if not shim.real.fake:  # on the real disk it is /dev/null now, not the file
        null = shim.real.stat(os.devnull)
        assert (st.st_dev, st.st_ino) == (null.st_dev, null.st_ino)


# -- recording -------------------------------------------------------------------------


def test_every_call_is_recorded_with_kind_path_nbytes_outcome(sandbox):
    put(sandbox, "a", b"hello")
    j = lambda *p: os.path.join(sandbox, *p)  # noqa: E731
    with bound(sandbox, p=3) as (shim, h):
        fd = os.open(j("a"), os.O_RDWR)
        assert os.read(fd, 100) == b"hello"
        os.lseek(fd, 0, os.SEEK_SET)
        assert os.write(fd, b"HEL") == 3
        os.ftruncate(fd, 4)
        os.fsync(fd)
        os.fdatasync(fd)
        os.fstat(fd)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.close(fd)
        os.stat(j("a"))
        os.lstat(j("a"))
        os.mkdir(j("d"))
        os.listdir(sandbox)
        list(os.scandir(sandbox))
        os.rename(j("a"), j("b"))
        os.replace(j("b"), j("c"))
        shutil.copyfile(j("c"), j("d", "c1"))
        shutil.copy(j("c"), j("d", "c2"))
        shutil.copy2(j("c"), j("d", "c3"))
        shutil.move(j("d", "c3"), j("m"))
        os.unlink(j("c"))
        os.remove(j("m"))
        with pytest.raises(FileNotFoundError):
            os.stat(j("nope"))
        assert shim.ops == 24
    assert fs_log(h) == [
        ("open", "a", None, None, "ok"), ("read", "a", None, 5, "ok"),
        ("seek", "a", None, None, "ok"), ("write", "a", None, 3, "ok"),
        ("truncate", "a", None, 4, "ok"), ("fsync", "a", None, None, "ok"),
        ("fsync", "a", None, None, "ok"), ("stat", "a", None, None, "ok"),
        ("lock", "a", None, None, "ok"), ("close", "a", None, None, "ok"),
        ("stat", "a", None, None, "ok"), ("stat", "a", None, None, "ok"),
        ("mkdir", "d", None, None, "ok"), ("listdir", ".", None, None, "ok"),
        ("listdir", ".", None, None, "ok"), ("replace", "a", "b", None, "ok"),
        ("replace", "b", "c", None, "ok"), ("copy", "c", "d/c1", None, "ok"),
        ("copy", "c", "d/c2", None, "ok"), ("copy", "c", "d/c3", None, "ok"),
        ("replace", "d/c3", "m", None, "ok"), ("unlink", "c", None, None, "ok"),
        ("unlink", "m", None, None, "ok"), ("stat", "nope", None, None, "ENOENT"),
    ]
    assert {r.process for r in h.fs_ops()} == {3}
    assert tree(sandbox)["d/c1"] == b"HELl"


def test_file_objects_buffer_above_the_shim(sandbox):
    path = os.path.join(sandbox, "f.txt")
    with bound(sandbox) as (shim, h):
        f = open(path, "w", encoding="utf-8")  # noqa: SIM115 - inspect between steps
        f.write("abc")
        assert [r.call for r in h.fs_ops()] == ["open"]  # still in Python's buffer
        f.flush()
        os.fsync(f.fileno())
        f.close()
        with open(path, encoding="utf-8") as f:
            assert f.read() == "abc"
        with open(path, "ab", buffering=0) as raw:
            assert raw.write(b"d") == 1
        with open(path, "r+b") as f:
            assert f.read(2) == b"ab"
            f.seek(0)
            f.write(b"X")
    assert tree(sandbox)["f.txt"] == b"Xbcd"
    log = fs_log(h)
    assert log[:4] == [("open", "f.txt", None, None, "ok"), ("write", "f.txt", None, 3, "ok"),
                       ("flush", "f.txt", None, None, "ok"), ("fsync", "f.txt", None, None, "ok")]
    assert ("write", "f.txt", None, 1, "ok") in log and ("seek", "f.txt", None, None, "ok") in log


def test_open_supports_opener_fd_and_closefd(sandbox):
    path = os.path.join(sandbox, "o")
    with bound(sandbox) as (shim, h):
        with open(path, "w", opener=lambda p, fl: os.open(p, fl, 0o600)) as f:
            f.write("x")
        fd = os.open(path, os.O_RDONLY)
        with open(fd, "rb", closefd=False) as f:
            assert f.read() == b"x"
        os.close(fd)
    assert tree(sandbox)["o"] == b"x"
    assert [r.call for r in h.fs_ops()].count("close") == 3


def test_outside_sandbox_and_unbound_threads_are_not_recorded(sandbox):
    outside = os.path.join(os.path.dirname(sandbox), "outside")
    history = History()
    with installed(sandbox=sandbox, history=history) as shim:
        put(sandbox, "unbound")  # main thread, unbound
        with shim.processor(1):
            with open(outside, "w") as f:
                f.write("x")
            os.stat(outside)
            os.unlink(outside)
            worker = threading.Thread(target=put, args=(sandbox, "thread"))
            worker.start()
            worker.join()
    assert history.fs_ops() == [] and shim.ops == 0
    assert set(tree(sandbox)) == {"unbound", "thread"}


def test_pathlib_goes_through_the_shim(sandbox):
    base = pathlib.Path(sandbox)
    with bound(sandbox) as (shim, h):
        (base / "d").mkdir()
        (base / "d" / "t").write_text("hi")
        assert (base / "d" / "t").read_text() == "hi"
        assert (base / "d" / "t").exists()
        (base / "d" / "t").rename(base / "d" / "u")
        (base / "d" / "u").replace(base / "d" / "v")
        assert [p.name for p in (base / "d").iterdir()] == ["v"]
        with (base / "d" / "v").open("rb") as f:
            f.read()
        (base / "d" / "v").unlink()
        assert os.path.exists(os.path.join(sandbox, "d"))
    kinds = [r.call for r in h.fs_ops()]
    for kind in ("mkdir", "open", "write", "read", "stat", "replace", "listdir", "unlink"):
        assert kind in kinds
    assert ("replace", "d/t", "d/u", None, "ok") in fs_log(h)


# -- actions ---------------------------------------------------------------------------


def _ops(sandbox, leftovers):
    j = lambda *p: os.path.join(sandbox, *p)  # noqa: E731

    def with_fd(fn, flags=os.O_RDWR):
        def run():
            fd = os.open(j("a"), flags)
            try:
                fn(fd)
            finally:
                os.close(fd)
        return run

    def buffered():
        f = open(j("a"), "ab")  # noqa: SIM115 - closed by the test
        leftovers.append(f)  # closed by the test once it has looked at the disk
        f.write(b"new")
        f.flush()
    return {
        "open": lambda: open(j("new"), "w"),
        "write": with_fd(lambda fd: os.write(fd, b"xyz")),
        "flush": buffered,
        "read": with_fd(lambda fd: os.read(fd, 10)),
        "truncate": with_fd(lambda fd: os.ftruncate(fd, 0)),
        "fsync": with_fd(os.fsync),
        "seek": with_fd(lambda fd: os.lseek(fd, 2, 0)),
        "lock": with_fd(lambda fd: fcntl.flock(fd, fcntl.LOCK_EX)),
        "close": with_fd(lambda fd: None),
        "stat": lambda: os.stat(j("a")),
        "replace": lambda: os.replace(j("a"), j("b")),
        "unlink": lambda: os.unlink(j("a")),
        "mkdir": lambda: os.mkdir(j("d2")),
        "rmdir": lambda: os.rmdir(j("d")),
        "listdir": lambda: os.listdir(j("d")),
        "copy": lambda: shutil.copy(j("a"), j("b")),
    }


@pytest.mark.parametrize("kind", list(_ops("/x", [])))
def test_raise_fails_the_call_before_it_does_anything(sandbox, kind):
    put(sandbox, "a")
    os.mkdir(os.path.join(sandbox, "d"))
    before = tree(sandbox)
    plan = Plan(kind, Raise(fault="F()", kind="permission_denied", errno=errno.EACCES))
    leftovers = []
    with bound(sandbox, plan=plan) as (shim, h), pytest.raises(OSError) as info:
        _ops(sandbox, leftovers)[kind]()
    assert info.value.errno == errno.EACCES
    names = {"open": "new", "rmdir": "d", "listdir": "d", "mkdir": "d2"}
    assert info.value.filename == os.path.join(sandbox, names.get(kind, "a"))
    assert tree(sandbox) == before
    for f in leftovers:
        f.raw.close()
    failed = [r for r in h.fs_ops() if r.outcome == "EACCES"]
    assert [(r.call, r.fault) for r in failed] == [(kind, "F()")] and shim.faults_fired == 1


def test_short_write_lands_exactly_the_prefix(sandbox):
    path = os.path.join(sandbox, "j")
    plan = Plan("write", ShortWrite(fault="DiskFull()", kind="disk_full", keep=4,
                                    errno=errno.ENOSPC))
    with bound(sandbox, plan=plan) as (shim, h):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT)
        assert os.write(fd, b"0123456789") == 4  # write(2)'s short count, no error
        os.close(fd)
    assert tree(sandbox)["j"] == b"0123"
    assert ("write", "j", None, 4, "ok") in fs_log(h)


def test_kill_mid_write_lands_prefix_and_the_processor_stays_dead(sandbox):
    put(sandbox, "other", b"")
    path = os.path.join(sandbox, "j")
    plan = Plan("write", Kill(fault="KillMidWrite()", kind="killed_mid_write", keep=3))
    history = History()
    with installed(sandbox=sandbox, history=history, plan=plan) as shim:
        with shim.processor(2):
            other = os.open(os.path.join(sandbox, "other"), os.O_RDONLY)
            lazy = open(os.path.join(sandbox, "lazy"), "w")  # noqa: SIM115 - left to gc
            lazy.write("never")  # unflushed: must never reach the disk
            fd = os.open(path, os.O_WRONLY | os.O_CREAT)
            caught = None
            try:
                os.write(fd, b"abcdefgh")
            except Exception as exc:  # noqa: BLE001 - proves Exception does not catch it
                caught = exc
            except ProcessorKilled as killed:
                assert killed.process == 2
            assert caught is None and shim.is_dead(2)
            with pytest.raises(ProcessorKilled):
                os.stat(path)
            with pytest.raises(ProcessorKilled):
                open(path)  # noqa: SIM115 - raises
        del lazy
        gc.collect()
        for dead_fd in (fd, other):
            assert_buried(shim, dead_fd)
        shim.revive(2)
        with shim.processor(2):
            os.stat(path)
    for dead_fd in (fd, other):  # closed for good when the shim went
        with pytest.raises(OSError):
            os.fstat(dead_fd)
    disk = tree(sandbox)
    assert disk["j"] == b"abc" and disk["lazy"] == b""
    (event,) = history.faults()
    assert (event.process, event.kind, event.crashed) == (2, "killed_mid_write", (2,))
    assert event.effect == "processor 2 killed during write to j (3 of 8 bytes landed)"
    assert ("write", "j", None, 3, "killed") in fs_log(history)


def test_kill_before_a_non_write_call(sandbox):
    put(sandbox, "a")
    plan = Plan("replace", Kill(fault="K()", kind="killed_mid_write"))
    with bound(sandbox, plan=plan) as (shim, h), pytest.raises(ProcessorKilled):
        os.replace(os.path.join(sandbox, "a"), os.path.join(sandbox, "b"))
    assert set(tree(sandbox)) == {"a"}
    assert h.faults()[0].effect == "processor 1 killed before replace of a -> b"


def _other_calls(sandbox, keep_alive):
    j = lambda *p: os.path.join(sandbox, *p)  # noqa: E731

    def on_fd(fn, path=None):
        def run():
            fd = os.open(path or j("a"), os.O_RDONLY if path else os.O_RDWR)
            try:
                fn(fd)
            finally:
                os.close(fd)  # from the dead processor: a no-op, never recorded
        return run

    def flush():
        f = open(j("a"), "ab")  # noqa: SIM115 - its processor dies holding it
        keep_alive.append(f)
        f.write(b"new")
        f.flush()
    return {"replace": lambda: os.replace(j("a"), j("b")), "unlink": lambda: os.unlink(j("a")),
            "mkdir": lambda: os.mkdir(j("d")), "open_write": lambda: open(j("n"), "w"),
            "fsync": on_fd(os.fsync), "dirsync": on_fd(os.fsync, sandbox),
            "truncate": on_fd(lambda fd: os.ftruncate(fd, 0)), "flush": flush,
            "copy": lambda: shutil.copy(j("a"), j("c"))}


@pytest.mark.parametrize("kind", list(_other_calls("/x", [])))
def test_kill_mid_write_on_other_calls_kills_before_the_call_takes_effect(sandbox, kind):
    put(sandbox, "a", b"old")
    model, history, keep_alive = Model(), History(), []
    plan = FaultPlan(faults=(KillMidWrite(calls=(kind,), keep=2),)).arm(random.Random(1))
    with installed(sandbox=sandbox, history=history, plan=plan, model=model) as shim:
        with shim.processor(1), pytest.raises(ProcessorKilled):
            _other_calls(sandbox, keep_alive)[kind]()
        keep_alive.clear()
        gc.collect()  # the dead buffered file: its bytes never land
    assert tree(sandbox) == {"a": b"old"}  # not renamed, not removed, nothing created
    assert model.calls == []  # no fsync reached the disk
    (event,) = history.faults()
    call = "open" if kind == "open_write" else kind
    assert event.effect.startswith(f"processor 1 killed before {call} of ")
    assert [r.outcome for r in history.fs_ops()].count("killed") == 1  # keep was ignored
    assert all(r.outcome in ("ok", "killed") for r in history.fs_ops())


def test_disk_full_refuses_new_entries_not_existing_files(sandbox):
    put(sandbox, "lock", b"")
    put(sandbox, "log", b"abc")
    j = lambda *p: os.path.join(sandbox, *p)  # noqa: E731
    armed, asked = FaultPlan(faults=(DiskFull(),)).arm(random.Random(1)), []

    class Spy:
        def decide(self, call):
            asked.append(call)
            return armed.decide(call)

    with bound(sandbox, plan=Spy()) as (shim, h):
        os.close(os.open(j("lock"), os.O_RDWR | os.O_CREAT))  # a lock file that exists
        for mode in ("a", "w", "r+b"):  # append; truncate (frees space); update
            with open(j("log"), mode):
                pass
        for make in (lambda: os.open(j("new"), os.O_RDWR | os.O_CREAT),
                     lambda: open(j("new2"), "w"),  # noqa: SIM115 - raises
                     lambda: os.mkdir(j("d")),
                     lambda: open(j("new3"), "xb")):  # noqa: SIM115 - raises
            with pytest.raises(OSError) as info:
                make()
            assert info.value.errno == errno.ENOSPC
        with pytest.raises(FileNotFoundError):  # as the kernel says: no such directory
            open(j("nodir", "f"), "w")  # noqa: SIM115 - raises
    made = [(c.path, c.creates) for c in asked if c.kind in ("open", "mkdir")]
    assert made == [("lock", False), ("log", False), ("log", False), ("log", False),
                    ("new", True), ("new2", True), ("d", True), ("new3", True),
                    ("nodir/f", False)]
    assert tree(sandbox) == {"lock": b"", "log": b""} and armed.fired == 4


@pytest.mark.parametrize("mode", ["w", "wb"])
def test_one_injected_error_is_recorded_and_counted_once(sandbox, mode):
    armed = FaultPlan(faults=(DiskFull(after_bytes=10),)).arm(random.Random(1))
    with bound(sandbox, plan=armed) as (shim, h), pytest.raises(OSError) as info, open(
            os.path.join(sandbox, "x"), mode) as f:
        f.write("a" * 30 if mode == "w" else b"a" * 30)
    # a text file flushes twice as it closes (TextIOWrapper, then its buffer); the
    # buffer's flush wraps the failed write: neither is a second ENOSPC
    assert info.value.errno == errno.ENOSPC
    # write(2) on a filling disk: the short count (10 of 30), then ENOSPC for the rest
    assert fs_log(h) == [("open", "x", None, None, "ok"), ("write", "x", None, 10, "ok"),
                         ("write", "x", None, 20, "ENOSPC"), ("close", "x", None, None, "ok")]
    # two firings: the short write and the ENOSPC; the repeated flush is not a third
    assert armed.fired == 2 and shim.faults_fired == 2 and tree(sandbox)["x"] == b"a" * 10


def test_a_retry_after_other_calls_is_a_new_failure(sandbox):
    armed = FaultPlan(faults=(DiskFull(),)).arm(random.Random(1))
    path = put(sandbox, "y", b"")
    with bound(sandbox, plan=armed) as (shim, h):
        f = open(path, "r+b")  # noqa: SIM115 - an existing file opens on a full disk
        f.write(b"abc")
        with pytest.raises(OSError):
            f.flush()
        os.stat(sandbox)  # the target did something else, then tries again: a new error
        with pytest.raises(OSError):
            f.flush()
        with pytest.raises(OSError):
            f.close()  # flushes the same bytes straight away: the same error
    assert [r.outcome for r in h.fs_ops() if r.call == "write"] == ["ENOSPC", "ENOSPC"]
    assert armed.fired == 2 and shim.faults_fired == 2


def test_power_loss_names_eager_reaches_the_model(sandbox):
    model = Model()
    plan = Plan("stat", PowerCut(fault="PowerLoss(names='eager')", kind="power_loss",
                                 names="eager"))
    with bound(sandbox, plan=plan, model=model) as (shim, h), pytest.raises(ProcessorKilled):
        os.stat(sandbox)
    assert model.calls == [("power_loss", None, "eager")]


@pytest.mark.parametrize("names, left", [("strict", b"old"), ("eager", b"")])
def test_rename_before_fsync_through_the_shim(sandbox, names, left):
    put(sandbox, "q/queue.json", b"old")
    j = lambda *p: os.path.join(sandbox, *p)  # noqa: E731
    plan = FaultPlan(faults=(PowerLoss(calls=("fsync",), names=names),)).arm(random.Random(1))
    with installed(sandbox=sandbox, history=History(), plan=plan, rng=random.Random(2)) as shim:
        shim.model = DurabilityModel(sandbox, shim.real)
        shim.model.snapshot_all()
        with shim.processor(1), pytest.raises(ProcessorKilled):
            with open(j("q", "queue.json.tmp"), "wb") as f:
                f.write(b"new")
            os.replace(j("q", "queue.json.tmp"), j("q", "queue.json"))
            fd = os.open(j("q", "queue.json"), os.O_RDONLY)
            os.fsync(fd)  # too late: the power goes here
    assert tree(sandbox) == {"q": "dir", "q/queue.json": left}


def test_remove_directory_removes_the_tree_then_goes_on(sandbox):
    put(sandbox, "q/x")
    put(sandbox, "q/sub/y")
    model = Model()
    plan = Plan("open", RemoveDirectory(fault="MissingDirectory()", kind="missing_directory",
                                        path="q"))
    with bound(sandbox, plan=plan, model=model) as (shim, h), pytest.raises(FileNotFoundError):
        open(os.path.join(sandbox, "q", "x"))  # noqa: SIM115 - raises
    assert tree(sandbox) == {}
    (event,) = h.faults()
    assert event.effect == "removed directory q/ with 2 files" and event.destroyed
    assert model.calls == [("removed_by_fault", os.path.join(sandbox, "q"))]
    assert fs_log(h)[-1] == ("open", "q/x", None, None, "ENOENT")


def test_power_cut_kills_everyone_and_asks_the_model(sandbox):
    model = Model()
    plan = Plan("write", PowerCut(fault="PowerLoss()", kind="power_loss", torn="prefix",
                                  keep=2))
    history = History()
    with installed(sandbox=sandbox, history=history, plan=plan, model=model) as shim:
        with shim.processor(1):
            fd1 = os.open(os.path.join(sandbox, "one"), os.O_WRONLY | os.O_CREAT)
        with shim.processor(2), pytest.raises(ProcessorKilled):
            fd = os.open(os.path.join(sandbox, "two"), os.O_WRONLY | os.O_CREAT)
            os.write(fd, b"abcd")
        assert shim.is_dead(1) and shim.is_dead(2)
        assert_buried(shim, fd1)
    assert model.calls == [("power_loss", "prefix")]
    (event,) = history.faults()
    assert (event.process, event.kind, event.crashed) == (NEMESIS, "power_loss", (1, 2))
    assert "rolled back q/a" in event.effect and tree(sandbox)["two"] == b"ab"


def test_fsync_of_a_directory_calls_dir_synced_of_a_file_file_synced(sandbox):
    model = Model()
    with bound(sandbox, model=model) as (shim, h):
        dfd = os.open(sandbox, os.O_RDONLY | os.O_DIRECTORY)
        os.fsync(dfd)
        with open(os.path.join(sandbox, "f"), "wb") as f:
            f.write(b"x")
            f.flush()
            os.fsync(f.fileno())
            ffd = f.fileno()
        os.close(dfd)
    assert model.calls == [("dir_synced", dfd), ("file_synced", ffd)]
    assert [r.call for r in h.fs_ops() if "sync" in r.call] == ["dirsync", "fsync"]


def test_drain_is_recorded_but_never_asks_the_plan(sandbox):
    plan = Plan("stat", Raise(fault="F()", kind="x", errno=errno.EIO))
    with bound(sandbox, p=DRAIN, plan=plan) as (shim, h):
        os.stat(sandbox)
    assert plan.calls == [] and shim.ops == 0 and fs_log(h) == [("stat", ".", None, None, "ok")]


def test_sleep_yields_in_bound_threads_only(sandbox):
    class Scheduler:
        points = []

        def switch_point(self, p):
            self.points.append(p)

    with bound(sandbox, p=4, scheduler=Scheduler()) as (shim, h):
        start = time.monotonic()
        time.sleep(30)
        assert time.monotonic() - start < 1 and Scheduler.points == [4]
        os.stat(sandbox)
    assert Scheduler.points == [4, 4]


# -- installation ------------------------------------------------------------------------


def test_patches_are_removed_even_after_keyboard_interrupt(sandbox):
    originals = [(os, n, getattr(os, n)) for n in ("open", "write", "fsync", "replace")]
    originals += [(builtins, "open", builtins.open), (io, "open", io.open),
                  (shutil, "move", shutil.move), (time, "sleep", time.sleep),
                  (fcntl, "flock", fcntl.flock)]
    with pytest.raises(KeyboardInterrupt), installed(sandbox=sandbox, history=History()):
        assert os.open is not originals[0][2]
        raise KeyboardInterrupt
    for module, name, fn in originals:
        if isinstance(module, types.ModuleType):
            assert getattr(module, name) is fn, name
        else:  # a pyfakefs module object: our instance attribute is gone again
            assert name not in vars(module), name


def test_nesting_is_refused(sandbox):
    with installed(sandbox=sandbox, history=History()), pytest.raises(ShimError), installed(
            sandbox=sandbox, history=History()):
        pass
    with installed(sandbox=sandbox, history=History()):
        pass
