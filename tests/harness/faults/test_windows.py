"""``--platform windows``: each rule of harness.faults.windows, on the real disk and under pyfakefs
(runs, process mode, the option and the scenario key: test_windows_runs.py)."""

from __future__ import annotations

import contextlib
import errno
import os
import platform
import random
import shutil

import pytest

from harness.check.history import History
from harness.faults.actions import PowerCut
from harness.faults.durability import DurabilityModel
from harness.intercept.shim import ProcessorKilled, ShimError, installed

SHARING = "[WinError 32] The process cannot access the file because it is being used by " \
          "another process"


@contextlib.contextmanager
def windows(sandbox, **kw):
    history = History()
    with installed(sandbox=sandbox, history=history, platform="windows", **kw) as shim:
        yield shim, history


def put(sandbox, rel, data=b"old"):
    path = os.path.join(sandbox, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


def read(path):
    with open(path, "rb") as f:
        return f.read()


def last(history):
    return history.fs_ops()[-1]


def refused(history):
    return [r for r in history.fs_ops() if r.outcome != "ok"]


# -- W1, W2: delete ----------------------------------------------------------------------


def test_delete_of_a_file_another_processor_holds_open_is_winerror_32(sandbox):
    path = put(sandbox, "q/a")
    with windows(sandbox) as (shim, h):
        with shim.processor(1):
            held = open(path, "rb")  # noqa: SIM115 - held across the other's call
        with shim.processor(2), pytest.raises(PermissionError) as info:
            os.unlink(path)
        exc = info.value
        assert (exc.winerror, exc.errno) == (32, errno.EACCES)
        assert str(exc) == f"{SHARING}: {path!r}"
        assert os.path.exists(path)
        rec = last(h)
        assert (rec.call, rec.process, rec.outcome) == ("unlink", 2, "EACCES")
        assert rec.fault.startswith("Windows semantics (WinError 32: delete of a file")
        with shim.processor(1):
            held.close()
        with shim.processor(2):
            os.remove(path)  # nobody holds it now
    assert not os.path.exists(path)
    # the platform's answer, not a fault of the scenario
    assert shim.faults_fired == 0 and shim.platform_refusals == 1


def test_a_processors_own_handle_blocks_its_own_delete(sandbox):
    path = put(sandbox, "q/a")
    with windows(sandbox) as (shim, _h), shim.processor(1):
        fd = os.open(path, os.O_RDONLY)
        with pytest.raises(PermissionError) as info:
            os.remove(path)
        os.close(fd)
        os.remove(path)
    assert info.value.winerror == 32


def test_the_same_calls_pass_on_linux(sandbox):
    path = put(sandbox, "q/a")
    other = put(sandbox, "q/b")
    with installed(sandbox=sandbox, history=History()) as shim, shim.processor(1):
        with open(path, "rb"), open(other, "rb"):
            os.replace(other, path)
            os.unlink(path)
        assert platform.system() == "Linux"
    assert shim.platform_refusals == 0 and not os.path.exists(path)


def test_delete_of_a_read_only_file_is_winerror_5_after_the_sharing_check(sandbox):
    path = put(sandbox, "q/a")
    os.chmod(path, 0o444)
    with windows(sandbox) as (shim, _h), shim.processor(1):
        with pytest.raises(PermissionError) as alone:
            os.unlink(path)
        with open(path, "rb"), pytest.raises(PermissionError) as held:
            os.unlink(path)
    assert alone.value.winerror == 5 and str(alone.value).startswith("[WinError 5] Access is")
    assert held.value.winerror == 32  # the open for delete access fails first
    assert os.path.exists(path)


# -- W3-W5: rename and replace ------------------------------------------------------------


@pytest.mark.parametrize("name", ["rename", "replace"])
def test_rename_or_replace_of_a_source_another_handle_holds_is_winerror_32(sandbox, name):
    src, dst = put(sandbox, "q/tmp", b"new"), os.path.join(sandbox, "q", "state")
    with windows(sandbox) as (shim, h):
        with shim.processor(1):
            held = open(src, "rb")  # noqa: SIM115
        with shim.processor(2), pytest.raises(PermissionError) as info:
            getattr(os, name)(src, dst)  # looked up now: the shim patched it
        with shim.processor(1):
            held.close()
    assert info.value.winerror == 32
    assert str(info.value) == f"{SHARING}: {src!r} -> {dst!r}"
    assert os.path.exists(src) and not os.path.exists(dst)
    (rec,) = refused(h)
    assert rec.fault.startswith("Windows semantics (WinError 32: rename of a file")


def test_os_rename_onto_an_existing_name_is_winerror_183(sandbox):
    src, dst = put(sandbox, "q/tmp", b"new"), put(sandbox, "q/state", b"old")
    with windows(sandbox) as (shim, h), shim.processor(1), pytest.raises(FileExistsError) as e:
        os.rename(src, dst)
    assert (e.value.winerror, e.value.errno) == (183, errno.EEXIST)
    assert str(e.value).startswith("[WinError 183] Cannot create a file when that file")
    assert read(dst) == b"old" and read(src) == b"new"
    assert last(h).outcome == "EEXIST"


def test_os_replace_onto_a_target_another_handle_holds_is_winerror_5(sandbox):
    src, dst = put(sandbox, "q/tmp", b"new"), put(sandbox, "q/state", b"old")
    with windows(sandbox) as (shim, h):
        with shim.processor(1):
            reader = open(dst, "rb")  # noqa: SIM115
        with shim.processor(2), pytest.raises(PermissionError) as info:
            os.replace(src, dst)
        assert read(dst) == b"old" and read(src) == b"new"
        with shim.processor(1):
            reader.close()
        with shim.processor(2):
            os.replace(src, dst)  # closed: the replace goes through
    assert info.value.winerror == 5
    assert str(info.value) == f"[WinError 5] Access is denied: {src!r} -> {dst!r}"
    assert read(dst) == b"new" and not os.path.exists(src)
    (rec,) = refused(h)
    assert (rec.call, rec.path, rec.path2) == ("replace", "q/tmp", "q/state")
    assert rec.fault == ("Windows semantics (WinError 5: replace onto a file another "
                                "handle holds open)")


def test_os_replace_onto_a_read_only_target_is_winerror_5(sandbox):
    src, dst = put(sandbox, "q/tmp", b"new"), put(sandbox, "q/state", b"old")
    os.chmod(dst, 0o444)
    with windows(sandbox) as (shim, _h), shim.processor(1), pytest.raises(PermissionError) as e:
        os.replace(src, dst)
    assert e.value.winerror == 5 and read(dst) == b"old"


def test_shutil_move_onto_an_existing_file_copies_as_cpython_does_on_windows(sandbox):
    src, dst = put(sandbox, "q/tmp", b"new"), put(sandbox, "q/state", b"old")
    with windows(sandbox) as (shim, h), shim.processor(1):
        shutil.move(src, dst)  # os.rename refuses (183); shutil.move copies, then deletes
    assert read(dst) == b"new" and not os.path.exists(src)
    assert [(r.call, r.outcome) for r in h.fs_ops()] == [("replace", "ok")]
    assert shim.windows.copied == 1 and shim.platform_refusals == 0


def test_shutil_move_of_a_source_another_handle_holds_copies_then_fails_to_delete(sandbox):
    src, dst = put(sandbox, "q/tmp", b"new"), os.path.join(sandbox, "q", "state")
    with windows(sandbox) as (shim, h):
        with shim.processor(1):
            writer = open(src, "ab")  # noqa: SIM115 - another processor still writes it
        with shim.processor(2), pytest.raises(PermissionError) as info:
            shutil.move(src, dst)
        with shim.processor(1):
            writer.close()
    assert info.value.winerror == 32 and str(info.value) == f"{SHARING}: {src!r}"
    assert read(dst) == b"new" and read(src) == b"new"  # copied, source left behind
    (rec,) = refused(h)
    assert (rec.call, rec.path, rec.path2) == ("replace", "q/tmp", "q/state")
    assert "shutil.move's delete (after its copy)" in rec.fault


# -- W6, W7: directories and fsync -------------------------------------------------------


def test_a_directory_cannot_be_opened_so_never_fsynced(sandbox):
    q = os.path.dirname(put(sandbox, "q/a"))
    with windows(sandbox) as (shim, h), shim.processor(1):
        with pytest.raises(PermissionError) as raw:
            os.open(q, os.O_RDONLY)
        with pytest.raises(PermissionError) as builtin:
            open(q, "rb")  # noqa: SIM115 - raises
    for exc in (raw.value, builtin.value):
        assert (exc.errno, exc.strerror, exc.filename) == (errno.EACCES, "Permission denied", q)
        assert not hasattr(exc, "winerror")  # through the C runtime: an errno only
    assert [r.fault for r in h.fs_ops()] == [
        "Windows semantics (EACCES: a directory cannot be opened)"] * 2
    assert not [fd for fd, info in shim._fds.items() if info.is_dir]


def test_fsync_needs_a_descriptor_open_for_writing(sandbox):
    path = put(sandbox, "q/a")
    with windows(sandbox) as (shim, h), shim.processor(1):
        fd = os.open(path, os.O_RDONLY)
        with pytest.raises(OSError) as info:
            os.fsync(fd)
        os.close(fd)
        with open(path, "rb") as f, pytest.raises(OSError):
            os.fsync(f.fileno())
        with open(path, "ab") as f:
            os.fsync(f.fileno())
    assert info.value.errno == errno.EBADF
    assert [r.outcome for r in h.fs_ops() if r.call == "fsync"] == ["EBADF", "EBADF", "ok"]


# -- whose handles count ------------------------------------------------------------------


def test_a_killed_processors_handles_no_longer_block(sandbox):
    path = put(sandbox, "q/a")
    with windows(sandbox) as (shim, _h):
        with shim.processor(1):
            open(path, "rb")  # noqa: SIM115 - never closed: its processor dies
        shim.kill(1, "test")
        with shim.processor(2):
            os.unlink(path)  # Windows closed the dead process's handles
    assert not os.path.exists(path)


def test_rmtree_walks_by_name_and_meets_the_open_file(sandbox):
    put(sandbox, "q/d/a")
    inner = put(sandbox, "q/d/e/b")
    with windows(sandbox) as (shim, h), shim.processor(1):
        with open(inner, "rb"), pytest.raises(PermissionError) as info:
            shutil.rmtree(os.path.join(sandbox, "q", "d"))
        shutil.rmtree(os.path.join(sandbox, "q", "d"))
    assert info.value.winerror == 32 and not os.path.exists(os.path.join(sandbox, "q", "d"))
    assert not [r for r in h.fs_ops() if r.call == "open" and r.outcome != "ok"]


def test_platform_system_answers_windows_to_a_processor_only(sandbox):
    with windows(sandbox) as (shim, _h):
        assert platform.system() == "Linux"
        with shim.processor(1):
            assert platform.system() == "Windows"
    assert platform.system() == "Linux"


def test_an_unknown_platform_is_refused(sandbox):
    with (pytest.raises(ShimError, match="platform='mac'; expected one of linux, windows"),
          installed(sandbox=sandbox, history=History(), platform="mac")):
        pass


# -- durability: names as of the call --------------------------------------------------------


class _Once:
    def __init__(self, kind, action):
        self.kind, self.action = kind, action

    def decide(self, call):
        if self.action is not None and call.kind == self.kind:
            action, self.action = self.action, None
            return action
        return None


@pytest.mark.parametrize("fsynced, left", [(True, b"new"), (False, b"")])
def test_a_power_loss_keeps_names_made_before_it(sandbox, fsynced, left):
    """No directory can be fsynced: the rename survives (NTFS journals names), the data
    only as fsynced."""
    put(sandbox, "q/queue.json", b"old")
    j = lambda *p: os.path.join(sandbox, *p)  # noqa: E731
    plan = _Once("stat", PowerCut(fault="PowerLoss()", kind="power_loss"))
    with windows(sandbox, plan=plan, rng=random.Random(2)) as (shim, _h):
        shim.model = DurabilityModel(sandbox, shim.real)
        shim.model.snapshot_all()
        with shim.processor(1), pytest.raises(ProcessorKilled):
            with open(j("q", "queue.json.tmp"), "wb") as f:
                f.write(b"new")
                f.flush()
                if fsynced:
                    os.fsync(f.fileno())
            os.replace(j("q", "queue.json.tmp"), j("q", "queue.json"))
            os.stat(j("q", "queue.json"))  # the power goes here
    assert sorted(os.listdir(j("q"))) == ["queue.json"] and read(j("q", "queue.json")) == left
