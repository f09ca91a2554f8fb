"""The queue directory as a place we can trust: resolved once, owned by us, no links.

Threat model. The queue's files decide what is delivered, so nobody but the queue's
own user may be able to change them, and nothing inside the directory may point
outside it:

- the path is resolved once, when the queue opens (``realpath``); later calls use the
  resolved path, so a symbolic link swapped in above it later changes nothing;
- the directory must be a real directory owned by the effective user: one owned by
  someone else (pre-created in a shared /tmp, say) is refused with
  :class:`UnsafeDirectoryError`, since its owner could replace any file in it; one of
  ours that others can write (0777, a umask of 000) is tightened to 0700 and logged;
- every file is opened with ``O_NOFOLLOW`` (``_os.open_file``) and files the queue
  writes are checked to be regular files of ours, so a link planted at a journal name
  is refused (ELOOP) instead of followed to, say, a root-owned file elsewhere;
- ``owners`` must be a real directory: recovery unlinks files in it;
- removing a file must not make a live handle look dead: besides its owner file, each
  handle locks one byte of the directory itself (``_liveness.py``), which only its
  close or its death releases.

The commit lock is flock(2) on a descriptor of the directory itself, held open for the
handle's lifetime. There is no lock *file*: removing one (a tmp cleaner, an operator
deleting a "stale lock") used to make the next commit re-create it and then wait on a
lock its own process held through the old descriptor, for ever. A directory cannot be
removed while it holds the queue's files, and while our descriptor is open the kernel
cannot give its inode number to another directory, so a re-created directory is always
told apart from the one we hold.

Owns attaching to the directory (its lock, owner file, checks); may import only
_liveness, _os, errors.
"""

from __future__ import annotations

import errno
import logging
import os
import os.path
from dataclasses import dataclass

from . import _liveness, _os
from .errors import (
    InvalidArgumentError,
    PersistenceError,
    StorageMissingError,
    UnsafeDirectoryError,
    usage_error,
)

__all__ = ["Attachment", "attach", "check_file", "make_dirs", "open_owner", "owner_path",
           "resolve"]

_log = logging.getLogger("persistence")
_ATTACH_TRIES = 5  # a directory replaced this often while we open it is not settling
# What a filesystem without record locks answers an OFD lock with (NFS mounted nolock
# says ENOLCK): the handle then has only its owner file, as before liveness locks.
_NO_RECORD_LOCKS = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL})


def resolve(directory: object) -> str:
    """The absolute path, every symbolic link resolved; bad input raises a typed error."""
    if isinstance(directory, bytes | bytearray):
        raise TypeError(f"directory={directory!r}: expected str or os.PathLike[str], "
                        "got bytes; decode it first")
    try:
        path = os.fspath(directory)
    except TypeError:
        raise TypeError(f"directory={directory!r}: expected str or os.PathLike[str], "
                        f"got {type(directory).__name__}") from None
    if not isinstance(path, str):
        raise TypeError(f"directory={directory!r}: expected a path of str, got bytes")
    if not path.strip() or "\0" in path:
        raise usage_error(InvalidArgumentError,
                          f"open failed: directory={directory!r}: expected a non-empty path "
                          "without NUL bytes (an empty one would silently mean the current "
                          "directory)")
    return _os.realpath(os.path.abspath(path))


def owner_path(directory: str, token: str) -> str:
    return os.path.join(directory, "owners", token)


def make_dirs(path: str) -> int:
    """Create ``path`` and its missing parents, each made durable in its parent; returns
    the number of directory fsyncs done."""
    missing, probe = [], path
    while _os.stat_or_none(probe) is None and os.path.dirname(probe) != probe:
        missing.append(probe)
        probe = os.path.dirname(probe)
    syncs = 0
    for step in reversed(missing):
        try:
            _os.mkdir(step)
        except PersistenceError as exc:
            if exc.errno != errno.EEXIST:  # another process won the race: fine
                raise
        _os.fsync_dir(os.path.dirname(step))
        syncs += 1
    return syncs


def _unsafe(path: str, why: str) -> UnsafeDirectoryError:
    return UnsafeDirectoryError(errno.EPERM, "unsafe queue directory", path,
                                f"open failed: path={path!r} ({why}); "
                                f"{UnsafeDirectoryError.hint}")


def check_file(fd: int, path: str) -> None:
    """Refuse a file the queue writes that is not a regular file of ours (a hard link
    to someone else's file planted at one of our names, a device, a FIFO)."""
    st = _os.fstat(fd, path)
    if not _os.S_ISREG(st.st_mode):
        raise _unsafe(path, "not a regular file")
    if st.st_uid != _os.geteuid():
        raise _unsafe(path, f"owned by uid {st.st_uid}, not by this user "
                      f"(uid {_os.geteuid()})")


def _check_dir(fd: int, path: str) -> None:
    st = _os.fstat(fd, path)
    if st.st_uid != _os.geteuid():
        raise _unsafe(path, f"owned by uid {st.st_uid}, not by this user "
                      f"(uid {_os.geteuid()}): its owner could replace any file in it")
    mode = _os.S_IMODE(st.st_mode)
    if mode & 0o077:
        # Others could plant or swap files in it; ours to fix, so fix it and say so.
        _os.chmod_fd(fd, _os.DIR_MODE, path)
        _log.warning("queue directory was mode %04o, tightened to %04o: path=%r",
                     mode, _os.DIR_MODE, path)


@dataclass
class Attachment:
    """What a handle holds open in the directory for its lifetime."""

    dir_fd: int
    owner_fd: int
    dir_id: tuple[int, int]
    syncs: int = 0

    def close(self, directory: str, token: str, remove_owner: bool) -> PersistenceError | None:
        """Close both; remove our owner file first if asked. Returns the first error."""
        first = None
        steps = []
        if remove_owner and self.owner_fd >= 0:
            steps.append(lambda: _os.unlink_if_present(owner_path(directory, token)))
        if self.owner_fd >= 0:
            steps.append(lambda: _os.close(self.owner_fd, owner_path(directory, token)))
        if self.dir_fd >= 0:
            steps.append(lambda: _os.close(self.dir_fd, directory))
        for step in steps:
            try:
                step()
            except PersistenceError as exc:
                first = first or exc
        self.owner_fd = self.dir_fd = -1
        return first


def attach(directory: str, token: str, create: bool) -> Attachment:
    """Open the directory (creating it if allowed), check it, lock our liveness byte of
    it (``_liveness.py``) and take our owner file.

    Both are taken under the commit lock: recover() runs under it, and between our open
    and our flock the file would look dead to it.
    """
    syncs = 0
    parent_synced = False  # our make_dirs fsynced the parent after creating the directory
    for _ in range(_ATTACH_TRIES):
        st = _os.lstat_or_none(directory)
        if st is None:
            if not create:
                raise StorageMissingError(
                    errno.ENOENT, "No such file or directory", directory,
                    f"open failed: path={directory!r} errno=ENOENT (create=False); "
                    f"{StorageMissingError.hint}")
            made = make_dirs(directory)
            syncs += made
            parent_synced = parent_synced or made > 0
            continue
        if not _os.S_ISDIR(st.st_mode):
            raise _unsafe(directory, "not a directory (or a symbolic link put there after "
                          "the path was resolved)")
        try:
            dir_fd = _os.open_dir(directory)
        except PersistenceError as exc:
            if exc.errno == errno.ENOENT:
                continue
            raise
        try:
            _check_dir(dir_fd, directory)
            _os.flock(dir_fd, _os.LOCK_EX, directory)
            try:
                # First the byte: it goes with dir_fd, which every failure below closes.
                _lock_liveness(dir_fd, directory, token)
                owner_fd, made = open_owner(directory, token)
                syncs += made
                if not made:
                    # The names in it (the generation files) may come from an open whose
                    # fsync of the directory failed (EIO): make them durable before we
                    # rely on them; open_owner did when it made owners/.
                    _os.fsync_dir(directory)
                    syncs += 1
            finally:
                _os.flock(dir_fd, _os.LOCK_UN, directory)
        except PersistenceError as exc:
            _os.close(dir_fd, directory)
            if exc.errno == errno.ENOENT:
                continue  # removed under us: look again (and create it again if we may)
            raise
        held = _os.fstat(dir_fd, directory)
        named = _os.lstat_or_none(directory)
        if named is not None and (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino):
            if not parent_synced:
                # Another process may have made the directory and not yet made its name
                # durable (it fsyncs the parent just after its mkdir): do it ourselves,
                # or a power loss could take the directory and all we commit in it.
                _os.fsync_dir(os.path.dirname(directory))
                syncs += 1
            return Attachment(dir_fd, owner_fd, (held.st_dev, held.st_ino), syncs)
        _os.close(owner_fd, owner_path(directory, token))
        _os.close(dir_fd, directory)
        _log.warning("queue directory replaced while opening: path=%r; retrying", directory)
    raise StorageMissingError(errno.ENOENT, "directory vanished", directory,
                              f"open failed: path={directory!r}: the directory was replaced "
                              f"{_ATTACH_TRIES} times meanwhile; {StorageMissingError.hint}")


def _lock_liveness(dir_fd: int, directory: str, token: str) -> None:
    """Lock our token's byte of the directory: while it is held, recovery takes us for
    alive even if our owner file was removed. Where the filesystem has no record locks,
    say so and go on with the owner file alone (a handle there loses its claims to the
    next recover() if its owner file is removed, as before these locks existed)."""
    try:
        _liveness.lock_byte(dir_fd, _liveness.owner_byte(token), directory)
    except PersistenceError as exc:
        if exc.errno not in _NO_RECORD_LOCKS:
            raise
        _log.warning("no liveness lock on this filesystem, the owner file alone says this "
                     "handle is alive: %s", exc)


def open_owner(directory: str, token: str) -> tuple[int, int]:
    """Create ``owners/`` if needed and open + flock our owner file (under the commit
    lock). Owner files carry no data and need no fsync: after a power loss every holder
    is dead anyway. A missing owner file alone does not read as dead: recovery then asks
    the owner's liveness byte of the directory (``attach``), which dies with its handle
    and which no program can remove. Returns (fd, dir fsyncs)."""
    owners = os.path.join(directory, "owners")
    syncs = 0
    st = _os.lstat_or_none(owners)
    if st is None:
        try:
            _os.mkdir(owners)
        except PersistenceError as exc:
            if exc.errno != errno.EEXIST:
                raise
        _os.fsync_dir(directory)
        syncs += 1
        st = _os.lstat_or_none(owners)
    if st is None or not _os.S_ISDIR(st.st_mode):
        raise _unsafe(owners, "not a directory: recovery removes files in it, so a link "
                      "here would let it remove files elsewhere")
    path = owner_path(directory, token)
    fd = _os.open_file(path, _os.O_RDWR | _os.O_CREAT)
    try:
        check_file(fd, path)
        _os.flock(fd, _os.LOCK_EX, path)
    except PersistenceError:
        _os.close(fd, path)
        raise
    return fd, syncs
