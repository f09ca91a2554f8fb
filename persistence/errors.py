"""Typed errors of the queue, so a caller can tell a full disk from a lost directory.

The incident's loader turned every read error into "empty queue", which made each
transient fault a silent total loss. Here every OS failure surfaces as a
:class:`PersistenceError` (an :class:`OSError`, so existing ``except OSError`` code
still sees it) carrying the errno, the path and a message in ``name=value`` form that
says what failed and what to do next. :func:`from_oserror` is the one place that maps
an errno to its typed child.

Errors that are not I/O (a payload too large, an unknown id, a transition the state
machine forbids, a closed queue) are :class:`PersistenceError` children too, so one
``except PersistenceError`` catches everything the queue raises; they have no errno and
also derive from the builtin a caller would expect (``ValueError``, ``KeyError``).

Every class pickles with its class, errno, path and message intact, because the
multi-process harness ships them between processes.

Owns the exception classes; may import nothing of ``persistence`` (the bottom layer).
"""

from __future__ import annotations

import errno as _errno
import os.path

__all__ = [
    "ClaimMismatchError",
    "CorruptionError",
    "DiskFullError",
    "ForkedHandleError",
    "InvalidArgumentError",
    "InvalidTransitionError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PersistenceError",
    "QueueClosedError",
    "StorageMissingError",
    "UnknownEntryError",
    "UnsafeDirectoryError",
    "from_oserror",
]


class PersistenceError(OSError):
    """Base of every error the queue raises.

    ``errno``, ``filename`` and ``strerror`` behave as on :class:`OSError`;
    ``message`` is the full sentence, which is also what ``str()`` returns.
    """

    #: what the caller should do; the subclasses say it more precisely
    hint = "the operation was not applied"

    def __init__(
        self,
        errno: int | None = None,
        strerror: str | None = None,
        filename: str | None = None,
        message: str | None = None,
    ) -> None:
        super().__init__(errno, strerror, filename)
        self.message = message if message is not None else _default_message(self)

    def __str__(self) -> str:
        return f"{type(self).__name__}: {self.message}"

    def __reduce__(self) -> tuple[object, ...]:
        # OSError's own reduce drops `message`; naming every field keeps the round trip
        # exact whatever the subclass.
        return (type(self), (self.errno, self.strerror, self.filename, self.message))


class DiskFullError(PersistenceError):
    """No space (ENOSPC) or quota exhausted (EDQUOT)."""

    hint = "free space, then retry: the queue is unchanged"


class PermissionDeniedError(PersistenceError):
    """The process may not read or write a queue file (EACCES, EPERM)."""

    hint = "restore read/write permission on the queue directory, then retry"


class StorageMissingError(PersistenceError):
    """The queue directory (or a file in it) is gone and could not be re-created."""

    hint = "re-create the queue directory or its parent, then retry"


class CorruptionError(PersistenceError):
    """The device reported an I/O error (EIO) or a file could not be decoded (EBADMSG).

    ``offset`` is the byte offset of the damage in ``filename`` when known, and ``kept``
    the name of the copy kept aside as evidence (``<name>.corrupt-<n>``), if one was made.
    """

    hint = ("check the device; a damaged file is left in place with a copy kept aside, and "
            "persistence.salvage(directory) rebuilds the queue from every intact record")

    def __init__(self, errno: int | None = None, strerror: str | None = None,
                 filename: str | None = None, message: str | None = None,
                 offset: int | None = None, kept: str | None = None) -> None:
        super().__init__(errno, strerror, filename, message)
        self.offset, self.kept = offset, kept

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.errno, self.strerror, self.filename, self.message,
                             self.offset, self.kept))


class UnsafeDirectoryError(PersistenceError):
    """The queue directory (or a name in it) is not safe to use: owned by another user,
    a symbolic link, or not a directory. Nothing was read or written through it."""

    hint = ("use a directory owned by this user that no other user can write, and never "
            "put symbolic links inside it")


class PayloadTooLargeError(PersistenceError, ValueError):
    """A payload exceeds ``max_payload_bytes``; nothing was written."""

    hint = "split the payload or raise max_payload_bytes; nothing was written"


class UnknownEntryError(PersistenceError, KeyError):
    """No entry with this id exists in the queue."""

    hint = "the id was never enqueued here, or was dropped after delivery"

    # KeyError quotes its argument in str(); keep the readable message instead.
    __str__ = PersistenceError.__str__


class InvalidTransitionError(PersistenceError, ValueError):
    """The entry's state does not allow this operation (e.g. ack of a PENDING entry)."""

    hint = "nothing was changed"


class ClaimMismatchError(InvalidTransitionError):
    """An ack or fail for an entry this handle does not hold: another claim holds it now
    (this handle's claim was released by recover(), or it never claimed the entry)."""

    hint = ("nothing was changed; only the handle that claimed an entry may ack or fail "
            "it, and a claim released by recover() is answered by its new holder")


class InvalidArgumentError(PersistenceError, ValueError):
    """An argument is out of its documented range (an empty directory path, a worker
    name or failure reason over its limit, text that is not valid Unicode)."""

    hint = "nothing was written"


class ForkedHandleError(PersistenceError):
    """A queue handle was used in a process other than the one that opened it (after
    ``fork``): its locks and file offsets are shared with the parent, so it cannot work."""

    hint = "open the queue again in the child process (as SQLite requires of connections)"


class QueueClosedError(PersistenceError):
    """The queue was used after :meth:`Queue.close`."""

    hint = "open the queue again"


_BY_ERRNO: dict[int, type[PersistenceError]] = {
    _errno.ENOSPC: DiskFullError,
    _errno.EDQUOT: DiskFullError,
    _errno.EACCES: PermissionDeniedError,
    _errno.EPERM: PermissionDeniedError,
    _errno.EROFS: PermissionDeniedError,
    _errno.ENOENT: StorageMissingError,
    _errno.ENOTDIR: StorageMissingError,
    _errno.EIO: CorruptionError,
    _errno.EBADMSG: CorruptionError,
    _errno.ELOOP: UnsafeDirectoryError,
}


def _errno_name(code: int | None) -> str:
    return _errno.errorcode.get(code, str(code)) if code is not None else "None"


def _default_message(err: PersistenceError) -> str:
    parts = []
    if err.filename is not None:
        parts.append(f"path={err.filename!r}")
    if err.errno is not None:
        parts.append(f"errno={_errno_name(err.errno)} ({err.strerror})")
    elif err.strerror:
        parts.append(err.strerror)
    return f"{' '.join(parts)}; {err.hint}"


def from_oserror(exc: OSError, op: str, path: str | None = None) -> PersistenceError:
    """Return the typed error for ``exc`` raised by operation ``op`` on ``path``.

    An exception that already is a :class:`PersistenceError` is returned unchanged so
    that wrapping twice never loses the original path.
    """
    if isinstance(exc, PersistenceError):
        return exc
    cls = _BY_ERRNO.get(exc.errno, PersistenceError)
    path = path if path is not None else exc.filename
    if path is not None:
        path = os.path.abspath(os.fsdecode(path))
    strerror = exc.strerror or (str(exc) if exc.args else "unknown error")
    message = (
        f"{op} failed: path={path!r} errno={_errno_name(exc.errno)} ({strerror}); {cls.hint}"
    )
    return cls(exc.errno, strerror, path, message)


def usage_error(cls: type[PersistenceError], message: str) -> PersistenceError:
    """Build a non-I/O error (no errno) whose message ends with the class's hint."""
    return cls(None, None, None, f"{message}; {cls.hint}")
