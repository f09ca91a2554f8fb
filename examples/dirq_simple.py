"""Adapter: python-dirq's ``QueueSimple`` (a directory queue), unmodified, under the harness.

Run it: ``harness run --target examples.dirq_simple:open_queue``. Tried with dirq 1.8
(the PyPI package ``dirq``, a port of Perl's Directory::Queue::Simple).

What the library promises (its docstrings): a queue shared by any number of processes
through the file system alone. ``add`` writes the element to ``<dir>/<name>.tmp`` and
publishes it with ``os.link`` to ``<dir>/<name>`` (then unlinks the temp name);
``lock(name)`` is ``os.link(name, name.lck)`` (atomic: one process wins) plus
``os.utime``; ``get`` reads ``name.lck``; ``remove`` unlinks the element and its lock;
``purge(maxtemp, maxlock)`` deletes old ``.tmp`` files and unlocks locks older than
``maxlock`` seconds (stale locks of dead consumers). It never fsyncs.

The mapping to the five-method contract:

- ``enqueue`` = ``add`` (its element name is the id);
- ``claim`` = walk the names in order and return the first one ``lock`` wins, with
  ``get``; ``ack`` = ``remove``;
- ``recover`` = ``purge`` with both ages at almost zero: what the library's own purge
  does to a crashed consumer's lock once it is ``maxlock`` (600 s by default) old; the
  contract calls ``recover`` while no other processor is inside a call, so no ``.tmp``
  of a live ``add`` is removed. It also unlocks claims other live processors hold,
  which the contract allows;
- ``close`` does nothing (the library keeps no file open).

Promises: many processes, at-least-once delivery (a claim outlives its holder only
until a purge), no power-loss durability (no fsync anywhere). Note for the harness:
at 8d9ccde (the first trial) ``os.link`` and ``os.utime`` were not intercepted, so no
fault reached the publish or the lock step; since f62bc60 they are.

No promises declared to the harness: dirq's documentation states none of the reduced
ones. It says "This module allows multiple concurrent readers and writers to interact
with the same queue" and that it focuses "on simplicity, robustness and scalability";
it says nothing about fsync or power loss (it never fsyncs, but does not say so), and
its locks outlive a dead consumer until ``purge``, which is at-least-once.
"""

from __future__ import annotations

from typing import Any

from dirq.QueueSimple import QueueSimple

__all__ = ["DirqSimple", "open_queue"]

_NOW = 1e-9  # seconds: purge everything older than "now"


class DirqSimple:
    """The harness's five methods over one ``dirq.QueueSimple``."""

    def __init__(self, directory: str) -> None:
        self._q = QueueSimple(directory)

    def enqueue(self, payload: bytes) -> str:
        return self._q.add(bytes(payload))

    def claim(self, worker: str) -> tuple[str, bytes] | None:
        name = self._q.first()
        while name:
            if self._q.lock(name):
                return name, self._q.get(name)
            name = self._q.next()
        return None

    def ack(self, entry_id: str) -> None:
        self._q.remove(entry_id)

    def recover(self) -> None:
        self._q.purge(maxtemp=_NOW, maxlock=_NOW)

    def close(self) -> None:
        """Nothing to do: QueueSimple keeps no file open between calls."""


def open_queue(directory: str) -> Any:
    """The harness's target factory: ``--target examples.dirq_simple:open_queue``."""
    return DirqSimple(directory)
