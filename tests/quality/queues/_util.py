"""Small helpers shared by the quality-suite queues (plain os/fcntl, no threading locks)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import platform
import uuid


def fsync_dir(path: str) -> None:
    """Make the entries of directory ``path`` durable."""
    if platform.system() == "Windows":
        # Python cannot open a directory there (os.open raises PermissionError), so there
        # is nothing to fsync; NTFS journals name changes itself.
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_synced(path: str, data: bytes, *, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` (a new file when ``exclusive``) and fsync it."""
    with open(path, "xb" if exclusive else "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def discarded_on_error(path: str):
    """Unlink ``path`` (a temp file) if the block raises, then let the error go on."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise


# The names this process has seen made durable by an fsync of their directory. A name
# whose directory fsync failed (EIO) is visible but not durable, so it is synced again at
# the next call that relies on it, by this process or any other. Kept by path, not
# stat'ed: a name that went away comes back only through a creator, which syncs it.
_DURABLE: set[str] = set()


def durable_name(path: str, *, created: bool = False) -> None:
    """Make sure the directory entry ``path`` is durable (``created``: this call made it)."""
    path = os.path.abspath(path)
    if created or path not in _DURABLE:
        _DURABLE.discard(path)
        fsync_dir(os.path.dirname(path))
        _DURABLE.add(path)


def ensure_dir(path: str) -> bool:
    """Create ``path`` (and missing parents) durably; True when this call created it."""
    created = False
    if not os.path.isdir(path):
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            ensure_dir(parent)
        try:
            os.mkdir(path)
            created = True
        except FileExistsError:
            pass
    durable_name(path, created=created)
    return created


@contextlib.contextmanager
def _flock_named(path: str, flags: int, ensure=None):
    """Exclusive flock, for the block, on a descriptor of ``path`` opened for this call.

    ``path`` may have been removed (the whole directory deleted) between our open and our
    flock: then we hold a lock nobody else can see, so check the inode and retry.
    ``ensure`` (optional) is called before each attempt to (re)create the directory.
    """
    for _ in range(100):
        if ensure is not None:
            ensure()
        try:
            fd = os.open(path, flags, 0o644)
        except FileNotFoundError:
            continue  # the directory vanished under us: recreate it and try again
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if not same:
            os.close(fd)
            continue
        try:
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock
        return
    raise OSError(f"could not lock {path}: it keeps disappearing")


def flocked(lock_path: str, ensure=None):
    """Exclusive flock on the lock file ``lock_path`` (created if missing) for the block."""
    return _flock_named(lock_path, os.O_RDWR | os.O_CREAT, ensure)


@contextlib.contextmanager
def dir_flocked(directory: str, ensure=None):
    """Exclusive flock on the queue's directory itself for the block.

    No lock file: one removed while held (a tmp cleaner, an operator deleting a "stale"
    lock) lets the next processor create a new one and lock that, and two processors hold
    "the" lock at once (`flocked` has that weakness). ``ensure`` as for `flocked`.

    On Windows a directory cannot be opened (CPython's open has no
    FILE_FLAG_BACKUP_SEMANTICS): portable code locks a file in it instead, with the
    weakness above.
    """
    if platform.system() == "Windows":
        with flocked(os.path.join(directory, "dir.lock"), ensure=ensure):
            yield
        return
    with _flock_named(directory, os.O_RDONLY | os.O_DIRECTORY, ensure):
        yield


def unique(prefix: str) -> str:
    return f"{prefix}.{os.getpid()}.{uuid.uuid4().hex}"
