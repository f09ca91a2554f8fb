"""Every operating-system call the queue makes, in one place (SQLite's VFS idea).

Owns them all; may import only errors. Why one module:

* the fault-injection shim patches ``os.*`` and ``fcntl.flock`` at run time, so each
  call here goes through the module attribute (``os.write(...)``, never a name bound
  at import time) and the shim sees every byte the queue writes;
* each function turns an :class:`OSError` into the typed
  :class:`~persistence.errors.PersistenceError` naming the operation, the path and
  the errno. Nothing is swallowed: a caller that decides an error is harmless says so
  in its own code, next to the reason;
* the durability rules live here as named steps (:func:`fsync`, :func:`fsync_dir`,
  :func:`write_all`) so the queue's recipe reads as a list of them.

Only exceptions derived from :class:`OSError` are caught. A simulated processor crash
(a ``BaseException`` raised from inside a call) passes through untouched.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat as _stat

from .errors import from_oserror

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "chmod_fd",
    "at_fork_in_child",
    "close",
    "detach_after_fork",
    "fallocate",
    "flock",
    "fstat",
    "geteuid",
    "getpid",
    "fsync",
    "fsync_dir",
    "listdir",
    "lseek",
    "lstat_or_none",
    "mkdir",
    "open_dir",
    "open_file",
    "pread",
    "read_all",
    "read_from",
    "read_rest",
    "realpath",
    "replace",
    "stat",
    "stat_or_none",
    "truncate",
    "try_flock",
    "unlink",
    "unlink_if_present",
    "write_all",
]

#: queue data is private to its owner: other local users must not read payloads
DIR_MODE = 0o700
FILE_MODE = 0o600

_READ_CHUNK = 1 << 20


def open_file(path: str, flags: int, mode: int = FILE_MODE) -> int:
    """os.open with the queue's private mode; O_CLOEXEC so children do not inherit fds,
    O_NOFOLLOW so a symbolic link planted at one of the queue's names is refused (ELOOP)
    instead of followed to a file outside the queue."""
    try:
        return os.open(path, flags | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    except OSError as exc:
        raise from_oserror(exc, "open", path)


def open_dir(path: str) -> int:
    """A descriptor on the directory itself (never through a symbolic link at its name).

    The queue holds one for its lifetime: flock(2) on it is the commit lock (a directory
    cannot be removed "as a stale lock" the way a lock file can), fsync(2) on it makes
    names durable, and while it is open the kernel cannot give the directory's inode
    number to a new directory, so a re-created one is always told apart.
    """
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise from_oserror(exc, "open directory", path)


def chmod_fd(fd: int, mode: int, path: str) -> None:
    try:
        os.fchmod(fd, mode)
    except OSError as exc:
        raise from_oserror(exc, "fchmod", path)


def realpath(path: str) -> str:
    """The path with every symbolic link in it resolved, once, when the queue opens."""
    try:
        return os.path.realpath(path, strict=False)
    except OSError as exc:
        raise from_oserror(exc, "resolve", path)


def geteuid() -> int:
    return os.geteuid()


def fallocate(fd: int, size: int, path: str) -> None:
    """Allocate the file's blocks up to ``size`` bytes now (ENOSPC if the disk cannot
    hold them), so that space is the queue's to give back later (``_reserve.py``)."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        raise from_oserror(exc, "fallocate", path)


def close(fd: int, path: str) -> None:
    try:
        os.close(fd)
    except OSError as exc:
        raise from_oserror(exc, "close", path)


def lseek(fd: int, offset: int, path: str) -> int:
    try:
        return os.lseek(fd, offset, os.SEEK_SET)
    except OSError as exc:
        raise from_oserror(exc, "lseek", path)


def read_from(fd: int, offset: int, path: str) -> bytes:
    """Everything from ``offset`` to end of file (lseek + read until EOF)."""
    try:
        os.lseek(fd, offset, os.SEEK_SET)
    except OSError as exc:
        raise from_oserror(exc, "lseek", path)
    return read_rest(fd, path)


def pread(fd: int, size: int, offset: int, path: str) -> bytes:
    """``size`` bytes at ``offset`` (fewer only at end of file); the fd's offset stays."""
    try:
        data = os.pread(fd, size, offset)
        while data and len(data) < size:  # a short read before EOF: read on
            more = os.pread(fd, size - len(data), offset + len(data))
            if not more:
                break
            data += more
        return data
    except OSError as exc:
        raise from_oserror(exc, "pread", path)


def read_rest(fd: int, path: str) -> bytes:
    """Everything from the fd's current offset to end of file.

    When nothing is there this is a single read(2) returning nothing, which is what
    the queue's per-commit look at other processes' journal records costs.
    """
    try:
        chunk = os.read(fd, _READ_CHUNK)
        if not chunk:
            return chunk
        chunks = [chunk]
        while chunk:
            chunk = os.read(fd, _READ_CHUNK)
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise from_oserror(exc, "read", path)


def read_all(path: str) -> bytes:
    fd = open_file(path, os.O_RDONLY)
    try:
        return read_from(fd, 0, path)
    finally:
        close(fd, path)


def write_all(fd: int, data: bytes | memoryview, path: str) -> int:
    """Write every byte or raise; return the count.

    A full disk may first accept part of the buffer (a short write) and fail only on
    the next call, so we loop until done and let that second call raise ENOSPC. The
    caller owns the rollback of whatever prefix reached the file.
    """
    view = memoryview(data)
    done = 0
    try:
        if len(view):
            # The common case, one complete write, needs no slicing.
            done = os.write(fd, data)
            if done <= 0:
                raise OSError(errno.EIO, "write made no progress")
        while done < len(view):
            n = os.write(fd, view[done:])
            if n <= 0:
                # write(2) returning 0 for a non-empty buffer means no progress is
                # possible; looping would spin forever.
                raise OSError(errno.EIO, "write made no progress")
            done += n
    except OSError as exc:
        raise from_oserror(exc, "write", path)
    return done


def fsync(fd: int, path: str) -> None:
    """Force file data to the device: until this returns a power loss may drop it."""
    try:
        os.fsync(fd)
    except OSError as exc:
        raise from_oserror(exc, "fsync", path)


def fsync_dir(path: str) -> None:
    """Make the directory's entries durable (a created, renamed or removed name).

    fsync(2) on the file covers its data only; on Linux the name that points at it
    lives in the directory, which needs its own fsync (see the ext4 and XFS notes on
    rename durability, and SQLite's unix VFS `unixSync` with `full_fsync` for dirs).
    """
    fd = open_dir(path)
    try:
        os.fsync(fd)
    except OSError as exc:
        raise from_oserror(exc, "fsync directory", path)
    finally:
        try:
            os.close(fd)
        except OSError as exc:
            raise from_oserror(exc, "close directory", path)


def truncate(fd: int, size: int, path: str) -> None:
    try:
        os.ftruncate(fd, size)
    except OSError as exc:
        raise from_oserror(exc, "ftruncate", path)


def fstat(fd: int, path: str) -> os.stat_result:
    try:
        return os.fstat(fd)
    except OSError as exc:
        raise from_oserror(exc, "fstat", path)


def stat(path: str) -> os.stat_result:
    try:
        return os.stat(path)
    except OSError as exc:
        raise from_oserror(exc, "stat", path)


def stat_or_none(path: str) -> os.stat_result | None:
    """os.stat, with "does not exist" as an answer (None) rather than an error."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise from_oserror(exc, "stat", path)


def lstat_or_none(path: str) -> os.stat_result | None:
    """os.lstat (a symbolic link is reported as itself), None if nothing has the name."""
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise from_oserror(exc, "lstat", path)


def replace(src: str, dst: str) -> None:
    """Atomic rename(2): readers see the old file or the new one, never a gap.

    The incident deleted the target and then moved the temp file in, leaving a window
    with no file at all, which its loader read as an empty queue.
    """
    try:
        os.replace(src, dst)
    except OSError as exc:
        raise from_oserror(exc, "replace", f"{src} -> {dst}")


def unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError as exc:
        raise from_oserror(exc, "unlink", path)


def unlink_if_present(path: str) -> bool:
    """os.unlink with "already gone" as an answer (False) rather than an error."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise from_oserror(exc, "unlink", path)
    return True


def mkdir(path: str, *, parents: bool = False) -> None:
    try:
        if parents:
            os.makedirs(path, DIR_MODE)
        else:
            os.mkdir(path, DIR_MODE)
    except OSError as exc:
        raise from_oserror(exc, "mkdir", path)


def listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError as exc:
        raise from_oserror(exc, "listdir", path)


def flock(fd: int, op: int, path: str) -> None:
    """Blocking flock(2). The kernel drops the lock when its holder dies."""
    try:
        fcntl.flock(fd, op)
    except OSError as exc:
        raise from_oserror(exc, "flock", path)


def try_flock(fd: int, path: str) -> bool:
    """Exclusive flock without waiting: True if taken, False if someone holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        raise from_oserror(exc, "flock", path)
    return True


LOCK_EX = fcntl.LOCK_EX
LOCK_UN = fcntl.LOCK_UN
O_RDONLY = os.O_RDONLY
O_RDWR = os.O_RDWR
O_CREAT = os.O_CREAT
O_EXCL = os.O_EXCL
O_APPEND = os.O_APPEND
O_WRONLY = os.O_WRONLY
S_ISDIR = _stat.S_ISDIR
S_ISREG = _stat.S_ISREG
S_IMODE = _stat.S_IMODE


def at_fork_in_child(fn: object) -> None:
    os.register_at_fork(after_in_child=fn)


def detach_after_fork(fds: list[int], directory: str) -> None:
    """In a forked child: give each descriptor an open file description of its own (the
    same file, at the same offset), so that locks taken by the parent, which belong to
    the description fork shares, die with the parent and not with this child. Where
    /proc is missing the descriptor is pointed at /dev/null instead (its number stays
    taken, so a later close cannot hit a descriptor someone else opened).

    Only a file or directory under ``directory`` is touched: a handle left unclosed keeps
    numbers the program may have closed and reused (multiprocessing's exit-sentinel pipe:
    replaced, its parent waited forever for a child that still ran)."""
    mine = os.path.realpath(directory)
    for fd in fds:
        if fd < 0:
            continue
        try:  # closed, or no /proc: a descriptor we cannot name is left alone
            st, where = os.fstat(fd), os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if not (_stat.S_ISDIR(st.st_mode) or _stat.S_ISREG(st.st_mode)) or (
                where != mine and not where.startswith(mine + os.sep)):
            continue
        try:
            flags = fcntl.fcntl(fd, fcntl.F_GETFL) & (os.O_ACCMODE | os.O_APPEND)
            if _stat.S_ISDIR(st.st_mode):
                new = os.open(f"/proc/self/fd/{fd}", flags | os.O_DIRECTORY | os.O_CLOEXEC)
            else:
                pos = os.lseek(fd, 0, os.SEEK_CUR)
                new = os.open(f"/proc/self/fd/{fd}", flags | os.O_CLOEXEC)
                os.lseek(new, pos, os.SEEK_SET)
        except OSError:
            new = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        os.dup2(new, fd, inheritable=False)
        os.close(new)


def getpid() -> int:
    return os.getpid()
