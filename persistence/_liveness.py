"""Liveness locks: a byte of the queue directory locked by each open handle.

Why a second mark besides ``owners/<token>``: a file can be removed by anyone (a tmp
cleaner, an operator deleting what looks like a stale lock file), and a missing owner
file used to read as a dead owner, so another process's recovery handed a live handle's
claims out again. A lock on the directory cannot be removed that way: it belongs to
the directory's inode, not to a name, and lasts as long as the handle's descriptor (a
handle that finds its whole directory replaced locks its byte of the new one when it
re-attaches, ``_vanished.py``).

Each handle takes an open file description (OFD) read lock, ``fcntl(F_OFD_SETLK)``, on
one byte of its directory descriptor, at an offset taken from its owner token
(:func:`owner_byte`). Like flock(2), and unlike classic POSIX locks, it belongs to that
descriptor's open file description: other opens of the directory in the same process
(``fsync_dir``) leave it alone, and the kernel drops it when the handle closes that
descriptor or its process dies, including by SIGKILL; nothing survives a power loss.
A forked child's copy is re-opened (``detach_after_fork``) and so holds no lock.

Where OFD locks do not exist (macOS, the BSDs), or the filesystem refuses them, no byte
is locked and a missing owner file reads as dead, as before this mark existed. Every
call here follows ``_os.py``'s rules (each goes through the module attribute, so a
shim can patch it; every OSError is raised typed, with path and errno); they live apart
only to keep ``_os.py`` within its size.

Owns the liveness-byte locks; may import only errors.
"""

from __future__ import annotations

import fcntl
import os
import struct

from .errors import from_oserror

__all__ = ["ANY", "lock_byte", "byte_locked", "owner_byte"]

# struct flock: l_type, l_whence, l_start, l_len, l_pid (native alignment, as in C);
# the padding covers the tail some ABIs add, which the kernel copies back.
_FLOCK = struct.Struct("@hhqqi")
_PAD = bytes(16)
_SPAN = 1 << 62  # offsets drawn from tokens lie below this; a lock there fits off_t
#: (start, length) covering the byte of every possible token
ANY = (0, _SPAN)


def owner_byte(token: str) -> int | None:
    """The byte a handle with owner token ``token`` locks; None for a string that is
    not a token we write (16 hex digits): such an owner holds no byte."""
    if len(token) != 16 or not all(c in "0123456789abcdef" for c in token):
        return None
    return int(token, 16) % _SPAN


def lock_byte(fd: int, offset: int, path: str) -> bool:
    """Take a read OFD lock on byte ``offset`` of the file open as ``fd`` (a directory
    is open read-only, which a read lock needs); False where there are no OFD locks."""
    cmd = getattr(fcntl, "F_OFD_SETLK", None)
    if cmd is None:
        return False
    try:
        fcntl.fcntl(fd, cmd, _FLOCK.pack(fcntl.F_RDLCK, os.SEEK_SET, offset, 1, 0) + _PAD)
    except OSError as exc:
        raise from_oserror(exc, "lock liveness byte", path)
    return True


def byte_locked(fd: int, start: int, length: int, path: str) -> bool:
    """Does an open file description other than ``fd``'s hold a read lock in
    [start, start + length) of its file (F_OFD_GETLK)? False where there are no OFD
    locks.

    Handles take read locks only, so only an answer naming a read lock counts: the
    kernel answers F_UNLCK when nothing conflicts, and an emulated fcntl that does
    nothing (pyfakefs's) hands the request, a write lock, back unchanged."""
    cmd = getattr(fcntl, "F_OFD_GETLK", None)
    if cmd is None:
        return False
    ask = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, start, length, 0) + _PAD
    try:
        got = fcntl.fcntl(fd, cmd, ask)
    except OSError as exc:
        raise from_oserror(exc, "test liveness byte", path)
    return isinstance(got, bytes) and _FLOCK.unpack_from(got)[0] == fcntl.F_RDLCK
