"""Adapter: litequeue's ``LiteQueue`` (a queue in one SQLite table), unmodified, under the harness.

Run it: ``harness run --target examples.litequeue_sqlite:open_queue``. Tried with
litequeue 0.9 (the whole library is one file, ``litequeue.py``) on SQLite 3.40.1.

What the library promises (its README): "a persistent queue"; after ``pop`` a message
must be marked done with its ``message_id``; "Messages are always passed as strings".
It says nothing about power loss, fsync or several processes, but ``_pop_transaction``'s
comment speaks of stopping "another process" from locking the same row, and SQLite's
own file locks let several processes share the database.

The SQLite settings it uses by default, read from ``litequeue.py`` (0.9):

- ``sqlite3.connect(..., isolation_level=None, check_same_thread=False)`` (lines
  189-194): autocommit, so every ``put`` (line 286), ``done`` (line 415) and ``retry``
  (line 486) is its own transaction, committed when the statement ends; ``pop`` runs
  ``BEGIN IMMEDIATE`` ... ``COMMIT`` (lines 307, 571-580). The busy timeout is
  ``sqlite3``'s default, 5 s.
- ``PRAGMA journal_mode = WAL`` and ``PRAGMA synchronous = NORMAL`` (lines 233 and 235,
  under the comment ``# if fast:``), set *after* the ``CREATE TABLE`` transaction
  (lines 209-230), which therefore runs in the build's default mode (DELETE journal,
  synchronous FULL on this machine's SQLite).
- A live connection it opened reports ``journal_mode=wal``, ``synchronous=1`` (NORMAL),
  ``locking_mode=normal``, ``busy_timeout=5000`` (examples/repro/sqlite_power_loss.py
  prints them).

What SQLite promises with those settings (https://www.sqlite.org/pragma.html#pragma_synchronous):
"WAL mode is always consistent with synchronous=NORMAL, but WAL mode does lose
durability. A transaction committed in WAL mode with synchronous=NORMAL might roll back
following a power loss or system crash. Transactions are durable across application
crashes regardless of the synchronous setting or journal mode." In WAL mode with NORMAL
"no sync operations occur during most transactions": a commit is not fsynced, the WAL
is synced only before a checkpoint (https://www.sqlite.org/wal.html). So: a SIGKILL
loses nothing committed; a power loss may take back the last commits (enqueues *and*
acks: an acked entry may come back, an enqueued one may vanish), never a torn one.

The mapping to the five-method contract:

- ``enqueue`` = ``put``: litequeue takes ``str``, so the payload goes in as its latin-1
  text (one character per byte, lossless) and comes back encoded the same way; the
  entry id is litequeue's ``message_id`` (a UUIDv7 string);
- ``claim`` = ``pop`` (LOCKED); ``ack`` = ``done`` (DONE), after ``get`` checked the id
  exists (``done`` returns the connection's ``lastrowid``, which an UPDATE does not set,
  so it cannot say whether a row matched);
- ``recover``: litequeue has no recovery step. Its own tools for one are ``list_locked
  (threshold_seconds)`` and ``retry(message_id)``; this adapter retries every LOCKED
  message (threshold 0), which also releases rows another live process holds (the
  contract allows it). ``retry`` sets READY without checking the row is still LOCKED,
  so a ``done`` landing between the listing and the retry would be undone: the harness
  runs ``recover`` while no other processor is inside a call, so it cannot happen here;
- ``states`` reads the status column (READY, LOCKED, DONE, FAILED).

Why the shim sees almost nothing: SQLite's reads, writes, fsyncs and locks happen in C
inside ``sqlite3``; only this adapter's ``os.makedirs`` passes through Python (litequeue
takes a file name and does not create its directory). File faults report "no fault
fired"; process kills (``--mode process``) and soak runs apply.

Promises declared: none. litequeue says "persistent" and nothing narrower; that its
``synchronous=NORMAL`` gives up durability across a power loss is SQLite's documented
consequence of the library's choice, which the verdicts should show, not hide.
"""

from __future__ import annotations

import os
from typing import Any

from litequeue import LiteQueue, MessageStatus

from examples._dirs import durable_makedirs

__all__ = ["LiteQueueSQLite", "open_queue", "DB_NAME"]

DB_NAME = "queue.sqlite3"

_STATE = {MessageStatus.READY.value: "PENDING", MessageStatus.LOCKED.value: "PROCESSING",
          MessageStatus.DONE.value: "DELIVERED", MessageStatus.FAILED.value: "FAILED"}


class LiteQueueSQLite:
    """The harness's five methods (and ``states``) over one ``LiteQueue``."""

    def __init__(self, directory: str) -> None:
        # litequeue opens a file name; sqlite3 cannot create its missing directory
        durable_makedirs(directory)  # the directory is ours to make, and to make durable
        self._q = LiteQueue(os.path.join(directory, DB_NAME))

    def enqueue(self, payload: bytes) -> str:
        return self._q.put(bytes(payload).decode("latin-1")).message_id

    def claim(self, worker: str) -> tuple[str, bytes] | None:
        message = self._q.pop()
        if message is None:
            return None
        return message.message_id, message.data.encode("latin-1")

    def ack(self, entry_id: str) -> None:
        if self._q.get(entry_id) is None:
            raise KeyError(f"ack({entry_id!r}): no such message")
        self._q.done(entry_id)

    def recover(self) -> None:
        # list first: retrying while the generator's cursor is open would change what it reads
        locked = [m.message_id for m in self._q.list_locked(0)]
        for message_id in locked:
            self._q.retry(message_id)

    def states(self) -> dict[str, str]:
        rows = self._q.conn.execute(  # the library has no public "every row" call
            f"SELECT message_id, status FROM {self._q.table}").fetchall()
        return {mid: _STATE.get(status, str(status)) for mid, status in rows}

    def close(self) -> None:
        self._q.close()


def open_queue(directory: str) -> Any:
    """The harness's target factory: ``--target examples.litequeue_sqlite:open_queue``."""
    return LiteQueueSQLite(directory)
