"""Adapter: persist-queue's ``SQLiteAckQueue``, unmodified, under the harness.

Run it: ``harness run --target examples.persistqueue_sqlite:open_queue``.

What the library promises: a SQLite-backed FIFO with acks. ``put`` inserts a row
(committed at once: ``auto_commit`` is forced on for the ack queue); ``get`` marks the
row *unack* and hands it out with its row id (``raw=True``); ``ack`` marks it *acked*;
``resume_unack_tasks`` puts every unacked row back to *ready*. SQLite itself runs in WAL
mode with its default ``synchronous=FULL``, and SQLite's own locking lets several
processes share the file.

The mapping to the five-method contract:

- ``enqueue`` = ``put`` (the row id is the entry id); ``claim`` = ``get(block=False,
  raw=True)``; ``ack`` = ``ack(id=...)``;
- ``recover`` = ``resume_unack_tasks``. That resets *every* unacked row, including one
  another live process holds: the library assumes one consumer process per file. The
  harness calls ``recover()`` after a crash, as the contract says, and reports what
  follows; ``auto_resume`` is off so that opening alone does not do it as well;
- ``states`` maps the status column to the harness's names.

Why the shim sees almost nothing here: SQLite's reads, writes, fsyncs and locks happen
in C inside the ``sqlite3`` module, not through Python's ``open``/``os`` calls, so the
file-level faults (disk full, permission denied, a torn write, a power loss rolled back
by the durability model) cannot reach it. Only the library's own ``os.makedirs`` and
``os.path.exists`` on open pass through the shim. Scenarios whose fault never fires
report "no fault fired", which is never a pass. What does apply without the shim:
process kills (a process dies between calls, with SQLite's journal on disk) and soak
runs, in the harness's process mode.
"""

from __future__ import annotations

from typing import Any

from persistqueue import SQLiteAckQueue
from persistqueue.exceptions import Empty
from persistqueue.sqlackqueue import AckStatus

__all__ = ["PersistQueueSQLite", "open_queue"]

_STATE = {AckStatus.inited: "PENDING", AckStatus.ready: "PENDING",
          AckStatus.unack: "PROCESSING", AckStatus.acked: "DELIVERED",
          AckStatus.ack_failed: "FAILED"}


class PersistQueueSQLite:
    """The harness's five methods (and ``states``) over one ``SQLiteAckQueue``."""

    def __init__(self, directory: str) -> None:
        self._q = SQLiteAckQueue(directory, auto_resume=False)

    def enqueue(self, payload: bytes) -> str:
        return str(self._q.put(bytes(payload)))

    def claim(self, worker: str) -> tuple[str, bytes] | None:
        try:
            item = self._q.get(block=False, raw=True)
        except Empty:
            return None
        return str(item["pqid"]), item["data"]

    def ack(self, entry_id: str) -> None:
        if self._q.ack(id=int(entry_id)) is None:
            raise KeyError(f"ack({entry_id!r}): no such entry")

    def recover(self) -> None:
        self._q.resume_unack_tasks()

    def states(self) -> dict[str, str]:
        rows = self._q._getter.execute(  # the library has no public "every row" call
            f"SELECT _id, status FROM {self._q._table_name}").fetchall()
        return {str(rowid): _STATE.get(status, str(status)) for rowid, status in rows}

    def close(self) -> None:
        self._q.close()


def open_queue(directory: str) -> Any:
    """The harness's target factory: ``--target examples.persistqueue_sqlite:open_queue``."""
    return PersistQueueSQLite(directory)
