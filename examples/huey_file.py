"""Adapter: huey's ``FileStorage`` (the task queue's file-system storage), unmodified.

Run it: ``harness run --target examples.huey_file:open_queue``. Tried with huey 3.5.4.

What the library promises (its docstring): a simple file-system storage, "should NOT be
used in production"; every operation holds an exclusive ``flock`` on ``<dir>/.lock``, so
several processes may share it. ``enqueue(data)`` writes the task to a new file
``queue/<priority>-<ms timestamp>[.NNN]`` in place (no temp file, no fsync);
``dequeue()`` renames the oldest file to ``.tmp``, reads it and unlinks it, all under the
lock. huey's storage has no acknowledgement: a dequeued task is gone (huey's consumers
run it afterwards), which is at-most-once delivery.

The mapping to the five-method contract:

- ``enqueue`` = ``enqueue``; the id is a digest of the payload (the storage has none);
- ``claim`` = ``dequeue``; ``ack`` only checks the id (the task left the storage when it
  was dequeued);
- ``recover`` does nothing (huey has no recovery: a ``.tmp`` left by a crash inside
  ``dequeue`` is skipped forever); ``close`` does nothing (the lock file is opened per
  operation).

Promises: many processes, at-most-once delivery, no power-loss durability. A crash
inside or after a ``dequeue`` may lose that task (outside the promise); an entry lost
without such a crash, a duplicate, or a task handed out with other bytes than were
enqueued is inside it.

Declared to the harness (``open_queue.promises``), from huey 3.5.4's own docstrings:

- ``delivery: "at-most-once"``: ``BaseStorage.dequeue``, which ``FileStorage``
  implements: "Atomically remove data from the queue"; the storage API has no
  acknowledgement, so a task is gone once it is dequeued.

Not declared: huey says nothing about fsync or power loss for ``FileStorage`` (its
docstring only says it "should NOT be used in production", because of its locking),
and its ``flock`` is there for several processes, so ``processes`` and ``power_loss``
stay at the contract.
"""

from __future__ import annotations

import hashlib
from typing import Any

from huey.storage import FileStorage

__all__ = ["HueyFile", "open_queue"]


def _id(payload: bytes) -> str:
    return hashlib.blake2b(payload, digest_size=8).hexdigest()


class HueyFile:
    """The harness's five methods over one ``huey.storage.FileStorage``."""

    def __init__(self, directory: str) -> None:
        self._s = FileStorage("harness", directory)
        self._taken: set[str] = set()

    def enqueue(self, payload: bytes) -> str:
        self._s.enqueue(bytes(payload))
        return _id(payload)

    def claim(self, worker: str) -> tuple[str, bytes] | None:
        data = self._s.dequeue()
        if data is None:
            return None
        entry_id = _id(data)
        self._taken.add(entry_id)
        return entry_id, data

    def ack(self, entry_id: str) -> None:
        if entry_id not in self._taken:
            raise ValueError(f"ack({entry_id!r}): not handed out by this queue object")
        self._taken.discard(entry_id)

    def recover(self) -> None:
        """Nothing to do: huey's FileStorage has no recovery step."""

    def close(self) -> None:
        """Nothing to do: the storage opens its lock file per operation."""


def open_queue(directory: str) -> Any:
    """The harness's target factory: ``--target examples.huey_file:open_queue``."""
    return HueyFile(directory)


open_queue.promises = {"delivery": "at-most-once"}  # type: ignore[attr-defined]
