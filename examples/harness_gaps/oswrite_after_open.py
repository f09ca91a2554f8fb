"""A queue that opens its log with ``open()`` and appends with ``os.write(f.fileno(), ...)``.

Shows a false pass (issue 11, item 1, still present at 8d9ccde): the shim tracks a
descriptor made by its ``open`` with ``flags=None``, and its ``os.write`` wrapper then
computes ``None & O_SYNC`` *after* the bytes were written: ``TypeError``, recorded as the
target's enqueue failing. With every enqueue "failed", scenarios pass.
queuelib's FifoDiskQueue writes exactly this way.

    harness run --target examples.harness_gaps.oswrite_after_open:open_queue \
        --scenario disk-full permission-denied   # PASS; NO FAULT FIRED, "25x TypeError on write"
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

__all__ = ["open_queue"]


class _Log:
    def __init__(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)
        self._f = open(os.path.join(directory, "log"), "ab+")  # noqa: SIM115
        self._items: list[bytes] = []  # claims come from memory: only the write matters

    def enqueue(self, payload: bytes) -> str:
        os.write(self._f.fileno(), payload)
        self._items.append(payload)
        return hashlib.md5(payload).hexdigest()

    def claim(self, worker: str) -> tuple[str, bytes] | None:
        if not self._items:
            return None
        payload = self._items.pop(0)
        return hashlib.md5(payload).hexdigest(), payload

    def ack(self, entry_id: str) -> None:
        """In memory: nothing to do."""

    def recover(self) -> None:
        """In memory: nothing to do."""

    def close(self) -> None:
        self._f.close()


def open_queue(directory: str) -> Any:
    return _Log(directory)
