"""Adapter: persist-queue's file-based ``persistqueue.Queue``, unmodified, under the harness.

Run it: ``harness run --target examples.persistqueue_file:open_queue``.

What the library promises (its docstring and README): a thread-safe queue on disk
that survives a restart. ``put`` writes the item to a chunk file and atomically
replaces an ``info`` file (temp file + ``os.replace``); ``get`` hands out the next
item, and the read position is saved by ``task_done`` (``autosave=False``, the
default), so an item taken but not marked done comes back after a restart. It has no
ids, no claim per worker and no multi-process locking, and it fsyncs a chunk file only
when the chunk is full (never the ``info`` file or the directory).

The mapping to the five-method contract, kept honest:

- ``enqueue`` = ``put``; the id is a digest of the payload (the library has none);
- ``claim`` = ``get(block=False)``; ``ack`` = ``task_done``. ``task_done`` cannot name
  an item: it saves the read position, which commits *every* item taken so far, acked
  or not. That is the library's semantics and the adapter does not hide it: with two
  claims held, acking one commits both, and a crash then loses the other;
- ``recover`` does nothing: the constructor already trims a torn chunk tail;
- ``close`` closes the two chunk files the queue keeps open.

All of its I/O is plain Python (``open``, ``os.replace``, ``tempfile.mkstemp``), so the
shim sees every call and every fault applies. ``tempdir`` is the queue's own directory,
as the library asks when the default temp directory is on another file system.
"""

from __future__ import annotations

import hashlib
from typing import Any

import persistqueue
from persistqueue.exceptions import Empty

__all__ = ["PersistQueueFile", "open_queue"]


class PersistQueueFile:
    """The harness's five methods over one ``persistqueue.Queue``."""

    def __init__(self, directory: str) -> None:
        self._q = persistqueue.Queue(directory, tempdir=directory)
        self._taken: list[str] = []

    def enqueue(self, payload: bytes) -> str:
        self._q.put(bytes(payload))
        return hashlib.blake2b(payload, digest_size=8).hexdigest()

    def claim(self, worker: str) -> tuple[str, bytes] | None:
        try:
            item = self._q.get(block=False)
        except Empty:
            return None
        if item is None:  # its info says "not empty" but no chunk holds the item
            return None
        entry_id = hashlib.blake2b(item, digest_size=8).hexdigest()
        self._taken.append(entry_id)
        return entry_id, item

    def ack(self, entry_id: str) -> None:
        if entry_id not in self._taken:
            raise ValueError(f"ack({entry_id!r}): not handed out by this queue object")
        self._taken.remove(entry_id)
        self._q.task_done()

    def recover(self) -> None:
        """Nothing to do: ``persistqueue.Queue.__init__`` already repaired the head chunk."""

    def close(self) -> None:
        for f in (self._q.headf, self._q.tailf):
            if f is not None and not f.closed:
                f.close()


def open_queue(directory: str) -> Any:
    """The harness's target factory: ``--target examples.persistqueue_file:open_queue``."""
    return PersistQueueFile(directory)


# Thread-safe, not process-safe (no lock between processes): graded on one process; what
# several processes on one directory do to it is listed apart, as outside its promises.
open_queue.promises = {"processes": 1}  # type: ignore[attr-defined]
