"""A queue whose claim never returns once it runs in the final drain (one file call per turn).

Shows a hang of the harness: the shim counts no op of the drain processor, so the op
budget that turns an endless loop into ``stuck`` during the workload never applies to the
drain, and ``harness run`` never ends (no report, no verdict). femtoqueue 0.4.2's ``pop``
loops like this on a damaged task file; a scratch power-loss scenario left one behind.

    timeout 60 harness run --target examples.harness_gaps.spin_in_drain:open_queue \
        --scenario permission-denied                  # killed by timeout, exit 124
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["open_queue"]


class _Files:
    def __init__(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)
        self._dir = directory

    def enqueue(self, payload: bytes) -> str:
        name = os.path.join(self._dir, payload.split(b"|")[0].decode())
        with open(name, "wb") as f:
            f.write(payload)
        return name

    def claim(self, worker: str) -> tuple[str, bytes] | None:
        while worker == "drain":
            os.stat(self._dir)  # a file call per turn, as femtoqueue's open() of the file
        names = sorted(os.listdir(self._dir))
        if not names:
            return None
        with open(os.path.join(self._dir, names[0]), "rb") as f:
            return os.path.join(self._dir, names[0]), f.read()

    def ack(self, entry_id: str) -> None:
        os.unlink(entry_id)

    def recover(self) -> None:
        """Nothing to do."""

    def close(self) -> None:
        """Nothing is kept open."""


def open_queue(directory: str) -> Any:
    return _Files(directory)
