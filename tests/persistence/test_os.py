import errno
import os
import stat

import pytest

from persistence import _os
from persistence.errors import (
    CorruptionError,
    DiskFullError,
    PermissionDeniedError,
    StorageMissingError,
)


def test_write_all_finishes_short_writes(tmp_path, monkeypatch):
    path = str(tmp_path / "f")
    fd = _os.open_file(path, os.O_RDWR | os.O_CREAT)
    real = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real(fd, bytes(data[:3])))
    assert _os.write_all(fd, b"0123456789", path) == 10
    monkeypatch.undo()
    assert _os.read_from(fd, 0, path) == b"0123456789"
    _os.close(fd, path)


def test_short_write_then_enospc_raises_disk_full_with_path(tmp_path, monkeypatch):
    path = str(tmp_path / "f")
    fd = _os.open_file(path, os.O_RDWR | os.O_CREAT)
    real = os.write
    calls = []

    def full(fd, data):
        calls.append(len(data))
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, bytes(data[:4]))

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(DiskFullError) as info:
        _os.write_all(fd, b"0123456789", path)
    assert info.value.filename == path and info.value.errno == errno.ENOSPC
    assert "errno=ENOSPC" in str(info.value)


@pytest.mark.parametrize(
    ("name", "code", "cls"),
    [("fsync", errno.EIO, CorruptionError), ("fsync", errno.EACCES, PermissionDeniedError)],
)
def test_fsync_errors_are_typed(tmp_path, monkeypatch, name, code, cls):
    path = str(tmp_path / "f")
    fd = _os.open_file(path, os.O_RDWR | os.O_CREAT)

    def boom(*args):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, name, boom)
    with pytest.raises(cls) as info:
        _os.fsync(fd, path)
    assert info.value.filename == path


def test_missing_paths_raise_storage_missing(tmp_path):
    with pytest.raises(StorageMissingError):
        _os.open_file(str(tmp_path / "nope" / "f"), os.O_RDONLY)
    with pytest.raises(StorageMissingError):
        _os.fsync_dir(str(tmp_path / "nope"))
    assert _os.stat_or_none(str(tmp_path / "nope")) is None


def test_modes_are_private(tmp_path):
    _os.mkdir(str(tmp_path / "d"))
    fd = _os.open_file(str(tmp_path / "d" / "f"), os.O_RDWR | os.O_CREAT)
    _os.close(fd, "f")
    assert stat.S_IMODE(os.stat(tmp_path / "d").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "d" / "f").st_mode) == 0o600


def test_try_flock_is_exclusive_per_open_file(tmp_path):
    path = str(tmp_path / "lock")
    a = _os.open_file(path, os.O_RDWR | os.O_CREAT)
    b = _os.open_file(path, os.O_RDWR)
    assert _os.try_flock(a, path) is True
    assert _os.try_flock(b, path) is False
    _os.close(a, path)  # closing drops the lock, as a dying process does
    assert _os.try_flock(b, path) is True
    _os.close(b, path)


def test_crash_exceptions_pass_through_untouched(tmp_path, monkeypatch):
    class Crash(BaseException):
        pass

    def crash(*args):
        raise Crash()

    monkeypatch.setattr(os, "fsync", crash)
    fd = _os.open_file(str(tmp_path / "f"), os.O_RDWR | os.O_CREAT)
    with pytest.raises(Crash):
        _os.fsync(fd, "f")


def test_detach_after_fork_skips_a_descriptor_closed_behind_its_back():
    # found by the harness: a queue handle whose descriptors another component closed
    # (a harness uninstalling, a careless caller) made the at-fork handler of every later
    # fork raise EINVAL (dup3 of a descriptor onto itself), leaving locks shared
    from persistence import _os

    fd = os.open(os.devnull, os.O_RDONLY)
    os.close(fd)  # the number is free
    _os.detach_after_fork([fd], "/nonexistent")
    with pytest.raises(OSError):
        os.fstat(fd)  # still free: nothing was opened in its place


def test_detach_after_fork_leaves_a_reused_number_alone(tmp_path):
    # found by the suite hanging: a handle left unclosed kept its descriptor numbers after
    # they were closed; one came back as the write end of multiprocessing's exit-sentinel
    # pipe in a forked child, which the handler pointed at /dev/null (lseek on a pipe
    # fails): the parent saw the child "exit" and waited for it forever
    from persistence import _os

    r, w = os.pipe()
    mine = tmp_path / "q"
    mine.mkdir()
    other = os.open(tmp_path / "elsewhere", os.O_RDWR | os.O_CREAT)
    try:
        _os.detach_after_fork([w, other], str(mine))
        os.write(w, b"x")  # still the pipe
        assert os.read(r, 1) == b"x"
        assert os.path.samestat(os.fstat(other), os.stat(tmp_path / "elsewhere"))
    finally:
        for fd in (r, w, other):
            os.close(fd)


def test_detach_after_fork_gives_our_files_their_own_description(tmp_path):
    import fcntl

    from persistence import _os

    (tmp_path / "q").mkdir()
    fd = os.open(tmp_path / "q" / "journal.0", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _os.detach_after_fork([fd], str(tmp_path / "q"))
        other = os.open(tmp_path / "q" / "journal.0", os.O_RDONLY)
        try:  # the lock stayed with the old description, which is closed now
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(other)
    finally:
        os.close(fd)
