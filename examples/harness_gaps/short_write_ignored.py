"""A log queue that appends each record with one ``os.write`` and ignores the count returned.

queuelib 1.10.0's bug, in 40 lines. On an almost full disk write(2) stores what fits and
returns that count; it raises ENOSPC only when nothing fits. So the enqueue returns ok and
its record is torn. The thread-mode shim instead lands a prefix *and* raises ENOSPC (issue
11, item 2), so the history says the enqueue failed:

    harness run --target examples.harness_gaps.short_write_ignored:open_queue \
        --scenario disk-full --seed 1
    # corrupt e7: entry e7: enqueue ended info ... truncated   (the kernel: "returned ok")

With queuelib the shim's version is a false pass: the failed push never advances the
head, so thread mode passes disk-full while process mode (a real tmpfs) finds the torn
item; see docs/third-party.md.
"""

from __future__ import annotations

import hashlib
import os
import struct
from typing import Any

__all__ = ["open_queue"]


class _Log:
    def __init__(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)
        self._path = os.path.join(directory, "log")
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self._posfile = os.path.join(directory, "pos")
        try:
            with open(self._posfile) as f:
                self._pos = int(f.read())
        except (FileNotFoundError, ValueError):
            self._pos = 0
        self._next: dict[str, int] = {}

    def enqueue(self, payload: bytes) -> str:
        os.write(self._fd, struct.pack(">L", len(payload)) + payload)  # the count is ignored
        return hashlib.md5(payload).hexdigest()

    def claim(self, worker: str) -> tuple[str, bytes] | None:
        with open(self._path, "rb") as f:
            f.seek(self._pos)
            head = f.read(4)
            if len(head) < 4:
                return None
            payload = f.read(struct.unpack(">L", head)[0])
        self._pos += 4 + len(payload)
        entry_id = hashlib.md5(payload).hexdigest()
        self._next[entry_id] = self._pos
        return entry_id, payload

    def ack(self, entry_id: str) -> None:
        """Save the read position (one consumer, acks in order)."""
        with open(self._posfile + ".tmp", "w") as f:
            f.write(str(self._next.pop(entry_id)))
        os.replace(self._posfile + ".tmp", self._posfile)

    def recover(self) -> None:
        """Nothing to do."""

    def close(self) -> None:
        os.close(self._fd)


def open_queue(directory: str) -> Any:
    return _Log(directory)
