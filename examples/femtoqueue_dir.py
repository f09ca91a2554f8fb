"""Adapter: femtoqueue's ``FemtoQueue`` (a directory-per-state queue), unmodified.

Run it: ``harness run --target examples.femtoqueue_dir:open_queue``. Tried with femtoqueue
0.4.2.

What the library promises (its summary and docstrings): a "filesystem-backed, lock-free,
durable, concurrent, retrying task queue". ``push`` writes ``creating/<id>`` (a version
byte, an md5 of the data, the data), optionally fsyncs it (``sync_after_write``, "useful
if you're worried about sudden power loss") and renames it to ``pending/<id>``; ``pop``
renames the oldest pending file into the node's own directory ``<node_id>/`` and reads
it, skipping a file whose md5 does not match ("integrity checks will discard invalid
writes"); ``done`` renames it to ``done/``. A node first re-pops what its own directory
holds (tasks it had when it crashed); other nodes move a node's in-progress tasks back to
``pending/`` once they are ``timeout_stale_ms`` (30 s) old.

The mapping to the five-method contract:

- ``enqueue`` = ``push`` on a node named ``producer`` (which never pops), with
  ``sync_after_write=True``, the library's setting for power-loss durability;
- ``claim(worker)`` = ``pop`` on a node of that worker. femtoqueue wants one stable
  ``node_id`` per concurrent worker, and a node's ``pop`` first hands out again whatever
  its own directory holds (the crash retry), so a node may hold one task at a time: a
  harness processor that holds k claims is k nodes, ``<worker>-<slot>`` with the lowest
  slot holding nothing (``p0-0``, ``p0-1``, ...; the same names after a restart, so the
  restarted processor retries what its slots held). The task id is the entry id; ``ack``
  = ``done`` on the node that popped it;
- ``recover`` = the library's own stale-task release (``_release_stale_tasks``, a private
  method) run with its clock moved past every timeout: what any node does once a dead
  node's tasks are ``timeout_stale_ms`` old. It also releases tasks live nodes hold, which
  the contract allows;
- ``close`` does nothing (no file is kept open).

Promises: many processes, at-least-once delivery, power-loss durability (with
``sync_after_write``). Note for the harness: femtoqueue imports ``rename``, ``listdir``,
``fsync`` and ``urandom`` with ``from os import ...``; at 8d9ccde (the first trial) the
shim saw none of those calls, since f62bc60 it rebinds such names and sees them all.

No promises declared to the harness: femtoqueue promises the whole contract. Its
summary says "durable, concurrent, retrying"; ``sync_after_write`` is "useful if you're
worried about sudden power loss" (the adapter turns it on); ``pop`` "will return that
incomplete task" after a process "was terminated unexpectedly" (at-least-once).
"""

from __future__ import annotations

from typing import Any

from femtoqueue import FemtoQueue, FemtoTask

__all__ = ["Femto", "open_queue"]

_PAST_EVERY_TIMEOUT_US = 10**15  # ~31 years: older than any timeout_stale_ms


class Femto:
    """The harness's five methods over femtoqueue nodes sharing one directory."""

    def __init__(self, directory: str) -> None:
        self._dir = directory
        self._producer = FemtoQueue(directory, node_id="producer", sync_after_write=True)
        self._nodes: dict[str, FemtoQueue] = {}
        self._holder: dict[str, FemtoQueue] = {}

    def _node(self, node_id: str) -> FemtoQueue:
        if node_id not in self._nodes:
            self._nodes[node_id] = FemtoQueue(self._dir, node_id=node_id, sync_after_write=True)
        return self._nodes[node_id]

    def _free_slot(self, worker: str) -> FemtoQueue:
        busy = {node.node_id for node in self._holder.values()}
        slot = 0
        while f"{worker}-{slot}" in busy:
            slot += 1
        return self._node(f"{worker}-{slot}")

    def enqueue(self, payload: bytes) -> str:
        return self._producer.push(bytes(payload))

    def claim(self, worker: str) -> tuple[str, bytes] | None:
        node = self._free_slot(worker)
        task = node.pop()
        if task is None:
            return None
        self._holder[task.id] = node
        return task.id, task.data

    def ack(self, entry_id: str) -> None:
        node = self._holder.pop(entry_id, None)
        if node is None:
            raise ValueError(f"ack({entry_id!r}): not handed out by this queue object")
        node.done(FemtoTask(id=entry_id, data=b""))

    def recover(self) -> None:
        node = self._node("recovery")
        node.latest_stale_check_ts_us = None
        node._release_stale_tasks(node._monotonic_time_now_us() + _PAST_EVERY_TIMEOUT_US)

    def close(self) -> None:
        """Nothing to do: femtoqueue keeps no file open between calls."""


def open_queue(directory: str) -> Any:
    """The harness's target factory: ``--target examples.femtoqueue_dir:open_queue``."""
    return Femto(directory)
