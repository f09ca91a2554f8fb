"""A queue that locks an entry with a hard link and skips entries another claim holds.

Shows a misattributed cause: ``os.link(name, name + ".lck")`` answering EEXIST is how a
link-based lock (dirq, Perl's Directory::Queue, NFS-safe lock files) learns that the
entry is held; the claim then tries the next name. The checker does not count
``link``/EEXIST among the expected answers (it does count ``open``/EEXIST, the
``O_CREAT|O_EXCL`` lock), so when a later power loss loses the entry that claim
returned, the loss is labelled ``silent_error`` ("the error was swallowed", citing the
EEXIST on *another* entry's lock) instead of ``lost`` explained by the power loss. The
twin locks with ``O_CREAT|O_EXCL`` and is otherwise identical:

    harness run --target examples.harness_gaps.link_lock_skip:open_queue --scenario power-loss
    harness run --target examples.harness_gaps.link_lock_skip:open_queue_excl --scenario power-loss

Nothing is fsynced (like dirq), so a power loss loses entries either way; only the label
differs. One file per entry in ``q/``; ``recover`` drops every lock (a crashed holder's).
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["open_queue", "open_queue_excl"]


class _Queue:
    def __init__(self, directory: str, excl: bool) -> None:
        self.dir, self._excl, self._n = directory, excl, 0
        os.makedirs(directory, exist_ok=True)

    def _lock(self, path: str) -> bool:
        try:
            if self._excl:
                os.close(os.open(path + ".lck", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            else:
                os.link(path, path + ".lck")
        except (FileExistsError, FileNotFoundError):
            return False  # held by another claim, or acked meanwhile
        return True

    def enqueue(self, payload: bytes) -> str:
        name = f"{os.getpid()}-{id(self)}-{self._n:08d}"
        self._n += 1
        with open(os.path.join(self.dir, name + ".tmp"), "wb") as f:
            f.write(payload)
        os.replace(os.path.join(self.dir, name + ".tmp"), os.path.join(self.dir, name))
        return name

    def claim(self, worker: str) -> tuple[str, bytes] | None:
        for name in sorted(os.listdir(self.dir)):
            path = os.path.join(self.dir, name)
            if name.endswith((".lck", ".tmp")) or not self._lock(path):
                continue
            try:
                with open(path, "rb") as f:
                    return name, f.read()
            except FileNotFoundError:
                continue
        return None

    def ack(self, entry_id: str) -> None:
        path = os.path.join(self.dir, entry_id)
        os.unlink(path)
        os.unlink(path + ".lck")

    def recover(self) -> None:
        for name in os.listdir(self.dir):
            if name.endswith(".lck"):
                os.unlink(os.path.join(self.dir, name))

    def close(self) -> None:
        """Nothing is kept open."""


def open_queue(directory: str) -> Any:
    """Locks with ``os.link`` (EEXIST when held)."""
    return _Queue(directory, excl=False)


def open_queue_excl(directory: str) -> Any:
    """Locks with ``open(O_CREAT|O_EXCL)`` (EEXIST when held); otherwise the same."""
    return _Queue(directory, excl=True)
