"""A durable multi-process file queue: nothing acknowledged is ever lost.

Open one with :func:`open_queue`; every state change is a CRC-framed record appended
to a journal and fsynced before the call returns, commits are serialised across
processes with flock(2), and a crashed processor's claims return to PENDING on
:meth:`Queue.recover`. The modules' docstrings hold the durability recipe.

Supported environment: a local filesystem (not NFS: its flock emulation and
close-to-open caching break the lock-then-read protocol), one handle per process (a
handle used after fork raises :class:`ForkedHandleError`), a directory owned by the
user. Damage is never repaired silently: :func:`open_queue` raises
:class:`CorruptionError` and keeps a copy; :func:`salvage` rebuilds from what is intact.

Layers, bottom to top; a module imports only from layers below it (each module's
docstring names its own imports; helpers that act on a Store get it passed in and name
its type through ``_storelike``, so nothing imports ``_store`` but ``queue``):
errors, _records, _state | _os, _liveness | journal, _directory | _reserve | _storelike |
_recovery, _publish | _vanished | _store | queue, _salvage | this package | demo.
``legacy`` (the incident's design) imports none of them.
"""

from ._salvage import SalvageReport, salvage
from .errors import (
    ClaimMismatchError,
    CorruptionError,
    DiskFullError,
    ForkedHandleError,
    InvalidArgumentError,
    InvalidTransitionError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PersistenceError,
    QueueClosedError,
    StorageMissingError,
    UnknownEntryError,
    UnsafeDirectoryError,
)
from .queue import (
    DELIVERED,
    FAILED,
    PENDING,
    PROCESSING,
    FailedEntry,
    Queue,
    RecoveryReport,
    open_queue,
)

__all__ = [
    "DELIVERED",
    "FAILED",
    "PENDING",
    "PROCESSING",
    "ClaimMismatchError",
    "CorruptionError",
    "DiskFullError",
    "FailedEntry",
    "ForkedHandleError",
    "InvalidArgumentError",
    "InvalidTransitionError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PersistenceError",
    "Queue",
    "QueueClosedError",
    "RecoveryReport",
    "SalvageReport",
    "StorageMissingError",
    "UnknownEntryError",
    "UnsafeDirectoryError",
    "open_queue",
    "salvage",
]
