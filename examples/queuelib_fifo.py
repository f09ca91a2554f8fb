"""Adapter: queuelib's ``FifoDiskQueue`` (Scrapy's disk queue), unmodified, under the harness.

Run it: ``harness run --target examples.queuelib_fifo:open_queue``. Tried with queuelib
1.10.0.

What the library promises (its README): a FIFO "persisted to disk": items pushed and
not popped are there again when the queue is closed and opened again. ``push`` appends
a length-prefixed record to a chunk file with one ``os.write`` on the chunk's
descriptor; ``pop`` reads the next record; the head and tail positions live in memory
and are written to ``info.json`` by ``close()`` only. It never fsyncs, has no lock, no
ids and no acknowledgement.

The mapping to the five-method contract, kept honest:

- ``enqueue`` = ``push``; the id is a digest of the payload (the library has none);
- ``claim`` = ``pop``: the item leaves the queue when it is handed out, so ``ack`` has
  nothing left to do (it only checks the id). Delivery is at most once;
- ``recover`` does nothing (the library has no recovery); ``close`` = ``close``, which
  saves ``info.json`` (and removes the directory when the queue is empty).

So the promises are: one open object per directory (one process, one handle), state
durable across a clean ``close()`` only, no crash or power-loss safety, at-most-once
delivery. Scenarios that kill a processor, cut the power or open several processors on
one directory test outside those promises; disk full, permission errors and a removed
directory with one processor test inside them (an error must surface, and what was
pushed and not popped must still come out).

Declared to the harness (``open_queue.promises``), from queuelib 1.10.0's README:

- ``processes: 1``: "Use one queue object per path at a time": "a given path must not
  be used by more than one open queue object at a time, in the same process or not"
  (and "Queuelib collections are not thread-safe");
- ``power_loss: False``: "Always close disk queues": "Queuelib never calls ``fsync()``".

Not declarable with the harness's keys: the same README section says that a process
that ends without ``close()`` leaves the queue "unsafe" (pushes since the last close
unreachable, popped items returned again); a kill is not a power loss, so killing
scenarios with one processor stay graded. The README says nothing about delivery
after a crash beyond that, so ``delivery`` is left at the contract.
"""

from __future__ import annotations

import hashlib
from typing import Any

from queuelib import FifoDiskQueue

__all__ = ["QueuelibFifo", "open_queue"]


def _id(payload: bytes) -> str:
    return hashlib.blake2b(payload, digest_size=8).hexdigest()


class QueuelibFifo:
    """The harness's five methods over one ``queuelib.FifoDiskQueue``."""

    def __init__(self, directory: str) -> None:
        self._q = FifoDiskQueue(directory)
        self._taken: set[str] = set()

    def enqueue(self, payload: bytes) -> str:
        self._q.push(bytes(payload))
        return _id(payload)

    def claim(self, worker: str) -> tuple[str, bytes] | None:
        item = self._q.pop()
        if item is None:
            return None
        entry_id = _id(item)
        self._taken.add(entry_id)
        return entry_id, item

    def ack(self, entry_id: str) -> None:
        if entry_id not in self._taken:
            raise ValueError(f"ack({entry_id!r}): not handed out by this queue object")
        self._taken.discard(entry_id)

    def recover(self) -> None:
        """Nothing to do: queuelib has no recovery step."""

    def close(self) -> None:
        self._q.close()


def open_queue(directory: str) -> Any:
    """The harness's target factory: ``--target examples.queuelib_fifo:open_queue``."""
    return QueuelibFifo(directory)


open_queue.promises = {"processes": 1, "power_loss": False}  # type: ignore[attr-defined]
