"""A one-process queue whose constructor creates its directory check-then-create.

Shows a verdict outside the target's promises failing the gate: the factory declares
``promises = {"processes": 1}``, yet in process mode a scenario that opens several
processors at once ends as ERROR, "the target could not be opened on a new, empty
directory before any fault had fired ... it breaks the target contract", when two
constructors race ``exists()``/``mkdir()`` and one gets FileExistsError. The directory
was not empty or new by then (another processor had just made it), and running several
processes is outside what the target promises, so its findings there should be listed
under "Outside its promises". queuelib's ``FifoDiskQueue`` (``if not exists: mkdir``)
and huey's ``FileLock`` (``if not exists: makedirs``) do the same:

    harness run --mode process --target examples.harness_gaps.racy_open_one_process:open_queue \
        --scenario concurrent-processors incident stale-locks

One file per entry; correct for one process.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["open_queue"]


class _Queue:
    def __init__(self, directory: str) -> None:
        self.dir, self._n, self._held = directory, 0, set()
        if not os.path.exists(directory):  # the race: check, then create
            os.mkdir(directory)

    def enqueue(self, payload: bytes) -> str:
        name = f"{os.getpid()}-{self._n:08d}"
        self._n += 1
        tmp = os.path.join(self.dir, name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(payload)
        os.replace(tmp, os.path.join(self.dir, name))
        return name

    def claim(self, worker: str) -> tuple[str, bytes] | None:
        for name in sorted(os.listdir(self.dir)):
            if name.endswith(".tmp") or name in self._held:
                continue
            with open(os.path.join(self.dir, name), "rb") as f:
                self._held.add(name)
                return name, f.read()
        return None

    def ack(self, entry_id: str) -> None:
        os.unlink(os.path.join(self.dir, entry_id))
        self._held.discard(entry_id)

    def recover(self) -> None:
        self._held.clear()

    def close(self) -> None:
        """Nothing is kept open."""


def open_queue(directory: str) -> Any:
    """The factory; it promises one process."""
    return _Queue(directory)


open_queue.promises = {"processes": 1}  # type: ignore[attr-defined]
