"""A correct one-process queue that reaches ``fsync`` through ``from os import fsync``.

Shows a false alarm: the shim patches ``os.fsync`` but a name bound at import time keeps
the original, so the durability model never hears of these fsyncs and a power loss
"rolls back" data the kernel did make durable. Two factories, the same code otherwise:

    harness run --target examples.harness_gaps.fsync_by_from_import:open_queue \
        --scenario power-loss power-loss-eager                 # passes
    harness run --target examples.harness_gaps.fsync_by_from_import:open_queue_from_import \
        --scenario power-loss power-loss-eager                 # "lost", "never fsynced"

Recipe per entry: write ``tmp/<n>``, flush, fsync, rename into ``q/<n>``, fsync both
directories; ack unlinks and fsyncs. Claims live in memory (one process).
"""

from __future__ import annotations

import os
from os import fsync as _fsync_bound_at_import  # what femtoqueue 0.4.2 does
from typing import Any

__all__ = ["open_queue", "open_queue_from_import"]


class _Queue:
    def __init__(self, directory: str, fsync: Any) -> None:
        self._fsync = fsync
        self.dir, self.tmp = directory, os.path.join(directory, "tmp")
        for d in (directory, self.tmp):
            if not os.path.isdir(d):
                os.makedirs(d, exist_ok=True)
                self._sync_dir(os.path.dirname(os.path.abspath(d)))
        self._held: set[str] = set()

    def _sync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            self._fsync(fd)
        finally:
            os.close(fd)

    def enqueue(self, payload: bytes) -> str:
        name = f"{os.urandom(8).hex()}"
        with open(os.path.join(self.tmp, name), "wb") as f:
            f.write(payload)
            f.flush()
            self._fsync(f.fileno())
        os.rename(os.path.join(self.tmp, name), os.path.join(self.dir, name))
        self._sync_dir(self.dir)
        self._sync_dir(self.tmp)
        return name

    def claim(self, worker: str) -> tuple[str, bytes] | None:
        for name in sorted(os.listdir(self.dir)):
            if name != "tmp" and name not in self._held:
                with open(os.path.join(self.dir, name), "rb") as f:
                    data = f.read()
                self._held.add(name)
                return name, data
        return None

    def ack(self, entry_id: str) -> None:
        os.unlink(os.path.join(self.dir, entry_id))
        self._sync_dir(self.dir)
        self._held.discard(entry_id)

    def recover(self) -> None:
        self._held.clear()

    def close(self) -> None:
        """Nothing is kept open."""


def open_queue(directory: str) -> Any:
    """fsync looked up on ``os`` at each call: the shim sees it."""
    return _Queue(directory, lambda fd: os.fsync(fd))


def open_queue_from_import(directory: str) -> Any:
    """fsync bound when the module was imported: the shim cannot see it."""
    return _Queue(directory, _fsync_bound_at_import)
