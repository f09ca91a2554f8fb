"""Recovery of a queue directory: load the newest state, remove debris, requeue the dead.

Runs under the commit lock, at open, on :meth:`Queue.recover` and after a vanished
directory was re-created. Nothing is repaired silently: every torn tail cut, temp file
removed, file quarantined and entry requeued appears in the :class:`RecoveryReport`.

Liveness: a claim records the claimer's owner token, and every open Queue holds the
flock of ``owners/<token>`` for its lifetime. The kernel drops a flock when its
holder dies, so an owner file whose flock can be taken (or that is missing) belongs
to a dead owner, and its PROCESSING entries go back to PENDING.
"""

from __future__ import annotations

import errno
import logging
import os.path
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import _os
from . import journal as _j
from .errors import CorruptionError, PersistenceError

if TYPE_CHECKING:
    from ._store import Store

__all__ = ["RecoveryReport", "load_and_recover", "recover"]

_log = logging.getLogger("persistence")


@dataclass(frozen=True)
class RecoveryReport:
    """What recovery found and repaired; nothing is repaired without appearing here."""

    torn_bytes_cut: int = 0
    requeued: tuple[str, ...] = ()
    temp_files_removed: tuple[str, ...] = ()
    quarantined: tuple[str, ...] = ()
    owners_removed: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        return not (self.torn_bytes_cut or self.requeued or self.temp_files_removed
                    or self.quarantined)


def load_and_recover(store: Store) -> RecoveryReport:
    """Load the newest valid checkpoint and its journal, then :func:`recover`."""
    names = _os.listdir(store.dir)
    loaded = None
    for gen in _j.generations(names, "checkpoint"):
        path = store.path(f"checkpoint.{gen}")
        try:
            found = _j.read_checkpoint(path)
        except CorruptionError:
            store.report["quarantined"].append(os.path.basename(_j.quarantine(path)))
            continue
        if found is not None:
            loaded = (gen, found)
            break
    if loaded is None:
        if any(n.startswith("checkpoint.") for n in _os.listdir(store.dir)) or any(
            g > 0 for g in _j.generations(names, "journal")
        ):
            # Opening as empty would be the incident's silent total loss.
            raise CorruptionError(
                errno.EBADMSG, "no valid checkpoint", store.dir,
                f"open failed: path={store.dir!r} errno=EBADMSG (no valid checkpoint; "
                f"unreadable ones kept as *.corrupt-*); {CorruptionError.hint}",
            )
        store.state.reset()
        store.set_ckpt_size(0)
        gen = 0
    else:
        gen, (_, body, size) = loaded
        store.state.load(body)
        store.set_ckpt_size(size)
    store.switch_journal(gen)
    store.catch_up()
    return recover(store)


def recover(store: Store) -> RecoveryReport:
    """Remove temp debris and requeue claims of dead owners; under the lock."""
    temps = []
    for name in _os.listdir(store.dir):
        # Temp files are only written under the lock we hold: any found is debris.
        if name.startswith(_j.TEMP_PREFIX) and store.unlink_quietly(store.path(name)):
            temps.append(name)
    if temps:
        store.sync_dir(store.dir)
    alive = {store.token: True}
    dead = []
    entries = store.state.entries
    for entry_id in list(store.state.processing):
        owner = entries[entry_id].owner
        if owner not in alive:
            alive[owner] = _owner_alive(store, owner)
        if not alive[owner]:
            dead.append(entry_id)
    owners = store.path("owners")
    for name in _os.listdir(owners):
        if name not in alive:
            alive[name] = _owner_alive(store, name)
    if dead:
        store.commit(b"".join(map(_j.rec_requeue, dead)), [("R", i) for i in dead], True)
    rep, store.report = store.report, {"torn": 0, "temps": [], "quarantined": []}
    report = RecoveryReport(
        torn_bytes_cut=rep["torn"],
        requeued=tuple(dead),
        temp_files_removed=tuple(rep["temps"] + temps),
        quarantined=tuple(rep["quarantined"]),
        owners_removed=tuple(sorted(k for k, v in alive.items() if not v and k)),
    )
    if not report.clean:
        _log.warning("recovery repaired: directory=%r %s", store.dir, report)
    return report


def _owner_alive(store: Store, token: str) -> bool:
    """Dead when its owner file is missing or nobody holds the file's flock."""
    if not token.isalnum():
        return False  # not a token we could have written: never open a path from it
    path = os.path.join(store.dir, "owners", token)
    try:
        fd = _os.open_file(path, _os.O_RDWR)
    except PersistenceError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise
    try:
        if not _os.try_flock(fd, path):
            return True
        store.unlink_quietly(path)
        return False
    finally:
        _os.close(fd, path)
