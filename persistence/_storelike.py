"""What the generation helpers need of a Store: its interface, as a typing Protocol.

``_publish.py``, ``_recovery.py`` and ``_vanished.py`` each take the handle's
:class:`~persistence._store.Store` as an argument and work through it; ``_store.py``
imports them, so they name its type through this Protocol instead of importing it back
(which made ``persistence`` an import cycle). :class:`Store` satisfies it structurally;
``tests/persistence/test_static.py`` checks that it has every member listed here and
that the helpers use no other. Nothing here runs: it only describes.

Owns the ``StoreLike`` Protocol; may import only _directory, _reserve, _state, journal, errors.
"""

from __future__ import annotations

from typing import Protocol

from . import _directory
from . import journal as _j
from ._reserve import Reserve
from ._state import State
from .errors import CorruptionError, StorageMissingError

__all__ = ["StoreLike"]


class StoreLike(Protocol):
    """The members of ``_store.Store`` that the helpers below it read, set or call."""

    dir: str
    token: str
    state: State
    retain: int
    journal: _j.Journal | None
    gen: int
    ckpt_size: int
    fsyncs: int
    checkpoints: int
    report: dict
    att: _directory.Attachment | None
    reserve: Reserve
    stopped: str | None

    def path(self, name: str) -> str: ...

    def names(self) -> list[str]: ...

    def commit(self, records: list[bytes], recs: list[tuple], sync: bool,
               spend_reserve: bool = True) -> None: ...

    def write(self, journal: _j.Journal, records: list[bytes], sync: bool,
              spend_reserve: bool) -> None: ...

    def catch_up(self, follow: bool = True) -> None: ...

    def publish(self, seal: bool, gen: int | None = None) -> None: ...

    def load_generation(self, gen: int) -> None: ...

    def open_journal(self, gen: int) -> _j.Journal: ...

    def switch(self, new: _j.Journal, gen: int) -> None: ...

    def set_ckpt_size(self, size: int) -> None: ...

    def sync_dir(self) -> None: ...

    def unlink_quietly(self, path: str) -> bool: ...

    def corrupt(self, path: str, why: str) -> CorruptionError: ...

    def gone(self, what: str, why: str) -> StorageMissingError: ...
