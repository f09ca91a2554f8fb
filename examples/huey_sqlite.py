"""Adapter: huey's ``SqliteStorage`` (the storage of ``SqliteHuey``), unmodified, under the harness.

Run it: ``harness run --target examples.huey_sqlite:open_queue``. Tried with huey 3.5.4
on SQLite 3.40.1.

What the library promises: ``SqliteHuey`` is "Huey that utilizes sqlite3 for queue and
result storage" and its ``fsync`` argument means "use durable writes. Slower but more
resilient to corruption in the event of sudden power loss. Defaults to false."
(docs/api.rst, https://huey.readthedocs.io/en/latest/api.html#SqliteHuey). A task
queue's storage has no acknowledgement: ``BaseStorage.dequeue`` (huey/storage.py:72-79)
is "Atomically remove data from the queue", so a dequeued task is gone (huey's consumer
runs it afterwards): at-most-once delivery.

The SQLite settings it uses by default, read from huey/storage.py (3.5.4):

- ``SqliteStorage.__init__(..., fsync=None, journal_mode='wal', timeout=5, ...)``
  (lines 876-878);
- ``_create_connection`` (lines 903-913): ``sqlite3.connect(filename, timeout=5,
  check_same_thread=False)``, ``conn.isolation_level = None`` (autocommit), ``pragma
  journal_mode="wal"`` (line 923, retried while "database is locked"), ``pragma
  cache_size``; ``pragma synchronous`` only ``if self._fsync is not None`` (lines
  911-912: 2 (FULL) for a true fsync, 0 (OFF) for a false one). With the default
  ``fsync=None`` huey never sets it, so ``synchronous`` is whatever the SQLite build
  defaults to: FULL (2) on this machine (compile options ``DEFAULT_SYNCHRONOUS=2``,
  ``DEFAULT_WAL_SYNCHRONOUS=2``), other builds may differ. The docs' "Defaults to
  false" is therefore not ``synchronous=OFF``: only an explicit ``fsync=False`` is.
- ``begin_sql = 'begin exclusive'`` (line 852): ``enqueue`` (lines 932-934) and
  ``dequeue`` (lines 936-950: a select, then ``select id, data ... order by priority
  desc, id limit 1`` and ``delete`` in one exclusive transaction) each commit once.
- A live connection it opened reports ``journal_mode=wal``, ``synchronous=2`` (FULL),
  ``locking_mode=normal``, ``busy_timeout=5000`` (examples/repro/sqlite_power_loss.py).

What SQLite promises with those settings (https://www.sqlite.org/pragma.html#pragma_synchronous,
https://www.sqlite.org/wal.html): FULL makes SQLite "ensure that all content is safely
written to the disk surface prior to continuing", and in WAL mode FULL adds a sync of
the WAL after each commit: a commit that returned survives a power loss (given a disk
that honours fsync). Every mode survives a process crash.

The mapping to the five-method contract:

- ``enqueue`` = ``enqueue``; the id is a digest of the payload (the storage returns
  none; the row id stays inside the storage);
- ``claim`` = ``dequeue``; ``ack`` only checks the id (the row was deleted when it was
  dequeued);
- ``recover`` does nothing: there is nothing to recover, a dequeued task is gone;
- ``states`` lists the rows still in the task table (``enqueued_items``), all PENDING:
  the storage keeps no other state;
- ``close`` = ``close`` (the connection).

Why the shim sees almost nothing: SQLite's I/O is C inside ``sqlite3``; only this
adapter's ``os.makedirs`` passes through Python (huey takes a file name and does not
create its directory). File faults report "no fault fired"; process kills
(``--mode process``) and soak runs apply.

Declared to the harness (``open_queue.promises``), from huey's own words:

- ``delivery: "at-most-once"``: the storage API has no acknowledgement (above);
- ``power_loss: False``: the docs call durable writes an opt-in (``fsync``, "Defaults to
  false"). On this build the default happens to be FULL, so a power-loss finding would
  still be SQLite's or the disk's to explain; it is listed, outside the promises.
"""

from __future__ import annotations

import os
from typing import Any

from huey.storage import SqliteStorage

from examples._dirs import durable_makedirs
from examples.huey_file import HueyFile, _id

__all__ = ["HueySQLite", "open_queue", "DB_NAME", "QUEUE_NAME"]

DB_NAME = "huey.db"
QUEUE_NAME = "harness"


class HueySQLite(HueyFile):
    """The harness's five methods (and ``states``) over one ``huey.storage.SqliteStorage``:
    enqueue, claim (``dequeue``) and ack as for huey's FileStorage (`examples.huey_file`)."""

    def __init__(self, directory: str) -> None:
        # huey opens a file name; sqlite3 cannot create its missing directory
        durable_makedirs(directory)  # the directory is ours to make, and to make durable
        self._s = SqliteStorage(QUEUE_NAME, os.path.join(directory, DB_NAME))
        self._taken: set[str] = set()

    def recover(self) -> None:
        """Nothing to do: a dequeued task left the storage; the others are still there."""

    def states(self) -> dict[str, str]:
        return {_id(bytes(data)): "PENDING" for data in self._s.enqueued_items()}

    def close(self) -> None:
        self._s.close()


def open_queue(directory: str) -> Any:
    """The harness's target factory: ``--target examples.huey_sqlite:open_queue``."""
    return HueySQLite(directory)


open_queue.promises = {"delivery": "at-most-once", "power_loss": False}  # type: ignore[attr-defined]
