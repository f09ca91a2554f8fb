"""A durable multi-process file queue: nothing acknowledged is ever lost.

Open one with :func:`open_queue`; every state change is a CRC-framed record appended
to a journal and fsynced before the call returns, commits are serialised across
processes with flock(2), and a crashed processor's claims return to PENDING on
:meth:`Queue.recover`. The modules' docstrings hold the durability recipe.
"""

from .errors import (
    CorruptionError,
    DiskFullError,
    InvalidTransitionError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PersistenceError,
    QueueClosedError,
    StorageMissingError,
    UnknownEntryError,
)
from .queue import DELIVERED, FAILED, PENDING, PROCESSING, Queue, RecoveryReport, open_queue

__all__ = [
    "DELIVERED",
    "FAILED",
    "PENDING",
    "PROCESSING",
    "CorruptionError",
    "DiskFullError",
    "InvalidTransitionError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PersistenceError",
    "Queue",
    "QueueClosedError",
    "RecoveryReport",
    "StorageMissingError",
    "UnknownEntryError",
    "open_queue",
]
