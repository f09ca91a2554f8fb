"""Recovery of a queue directory: load the newest state, remove debris, requeue the dead.

Runs under the commit lock, at open, on :meth:`Queue.recover` and after a vanished
directory was re-created. Nothing is repaired silently: every torn tail cut, temp file
removed, file quarantined and entry requeued appears in the :class:`RecoveryReport`.

Liveness: a claim records the claimer's owner token, and every open Queue holds, for
its lifetime, the flock of ``owners/<token>`` and a lock on its token's byte of the
directory (``_liveness.py``). The kernel drops both when the handle closes or its
process dies (SIGKILL included), and a power loss leaves neither. An owner is dead, and
its PROCESSING entries go back to PENDING, only when neither is held: its owner file
missing or unlocked AND its byte unlocked. A missing file alone proves nothing: any
program can remove it (a tmp cleaner, an operator deleting a "stale lock"), and taking
its live handle for dead would hand its claims to another processor, which delivers them
a second time. The byte cannot be removed; only its handle's end releases it.

Not covered: where OFD locks do not exist (macOS, the BSDs) or the filesystem refuses
them, a missing owner file still reads as dead, so removing a live handle's file
releases its claims (delivered again, never lost; its stale ack raises
ClaimMismatchError); the handle re-creates its file at its next claim. Claims written
by versions before liveness bytes (no byte held) read as before.

Owns loading, recovery and :class:`RecoveryReport`; may import only _liveness, _os,
_records, journal, _storelike, errors (never _store: the Store is passed in).
"""

from __future__ import annotations

import errno
import logging
import os.path
from dataclasses import dataclass

from . import _liveness, _os
from . import _records as _r
from . import journal as _j
from ._storelike import StoreLike
from .errors import PersistenceError, UnsafeDirectoryError

__all__ = ["RecoveryReport", "load_and_recover", "owner_held", "recover"]

_log = logging.getLogger("persistence")


@dataclass(frozen=True)
class RecoveryReport:
    """What recovery found and repaired; nothing is repaired without appearing here."""

    torn_bytes_cut: int = 0
    requeued: tuple[str, ...] = ()
    temp_files_removed: tuple[str, ...] = ()
    # Kept for callers of earlier versions; always empty now: a damaged file is no longer
    # moved aside at open, it raises CorruptionError (with a copy kept) instead.
    quarantined: tuple[str, ...] = ()
    owners_removed: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # generations finished or republished, and why

    @property
    def clean(self) -> bool:
        return not (self.torn_bytes_cut or self.requeued or self.temp_files_removed
                    or self.quarantined or self.notes)


def load_and_recover(store: StoreLike) -> RecoveryReport:
    """Load the live generation (creating the queue in an empty directory), follow its
    journal to the end, then :func:`recover`. Under the commit lock.

    What may be found, and what is done:
    - no checkpoint and no journal: a new queue; generation 0 is created;
    - no checkpoint, an empty ``journal.0``: a creation that died; finished;
    - the newest checkpoint and its journal: loaded; older generations are debris of
      a crash between publishing and unlinking, and are removed;
    - an empty journal one generation past the newest checkpoint: a publication that
      died before its seal or rename; the seal, if any, finishes it, else it is debris;
    - anything else (a bad newest checkpoint, its journal missing, a journal with
      records but no checkpoint, a journal of format version 1) raises CorruptionError:
      opening as empty, or from an older generation, would lose acknowledged entries.
    """
    names = _os.listdir(store.dir)
    ckpts = _j.generations(names, "checkpoint")
    journals = _j.generations(names, "journal")
    if not ckpts:
        if journals and (journals != [0] or _size(store, "journal.0")):
            path = store.path(f"journal.{journals[-1]}")
            raise store.corrupt(path, _why_no_checkpoint(path))
        store.state.reset()
        store.publish(False, 0)
    else:
        gen = ckpts[0]
        for later in journals:
            if later > gen and _size(store, f"journal.{later}"):
                raise store.corrupt(store.path(f"journal.{later}"), "a journal with "
                                    f"records for generation {later}, which has no "
                                    "checkpoint")
        store.load_generation(gen)
        for later in journals:
            if later > gen + 1:  # empty (checked above): an abandoned publication
                store.unlink_quietly(store.path(f"journal.{later}"))
    store.catch_up()
    # The live journal is not sealed: an empty one of the next generation is the start
    # of a publication that died before its seal.
    following = f"journal.{store.gen + 1}"
    if _size(store, following):
        raise store.corrupt(store.path(following), "a journal with records for a "
                            "generation that has no checkpoint")
    store.unlink_quietly(store.path(following))
    return recover(store)


def _size(store: StoreLike, name: str) -> int:
    st = _os.lstat_or_none(store.path(name))
    return st.st_size if st is not None else 0


def _why_no_checkpoint(path: str) -> str:
    try:
        head = _os.read_all(path)[:1]
    except PersistenceError as exc:
        return f"no checkpoint, and the journal cannot be read: {exc}"
    if head and head[0] in _r.OLD_MARKS:
        return ("written in queue format version 1, which this version does not read; "
                "drain it with the version that wrote it")
    return "a journal with records but no checkpoint: the checkpoint was removed"


def recover(store: StoreLike) -> RecoveryReport:
    """Remove temp debris and requeue claims of dead owners; under the lock."""
    temps = []
    for name in _os.listdir(store.dir):
        # Temp files are only written under the lock we hold: any found is debris.
        if name.startswith(_j.TEMP_PREFIX) and store.unlink_quietly(store.path(name)):
            temps.append(name)
    if temps:
        store.sync_dir()
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
    st = _os.lstat_or_none(owners)
    if st is None or not _os.S_ISDIR(st.st_mode):
        # Never list or unlink through a link planted here (it could point anywhere).
        raise UnsafeDirectoryError(errno.EPERM, "owners is not a directory", owners,
                                   f"recover failed: path={owners!r} (not a directory); "
                                   f"{UnsafeDirectoryError.hint}")
    for name in _os.listdir(owners):
        if name not in alive:
            alive[name] = _owner_alive(store, name)
    if dead:
        store.commit([_r.rec_id("R", i) for i in dead], [("R", i) for i in dead], True)
    rep, store.report = store.report, {"torn": 0, "notes": []}
    report = RecoveryReport(
        torn_bytes_cut=rep["torn"],
        requeued=tuple(dead),
        temp_files_removed=tuple(temps),
        notes=tuple(rep["notes"]),
        owners_removed=tuple(sorted(k for k, v in alive.items() if not v and k)),
    )
    if not report.clean:
        _log.warning("recovery repaired: directory=%r %s", store.dir, report)
    return report


def owner_held(directory: str, token: str, dir_fd: int) -> bool:
    """Is the handle of ``token`` open? Yes if the flock of its owner file is held or,
    the file missing or unlocked, if its byte of the directory is locked (asked through
    ``dir_fd``, our own descriptor of the directory): see the module doc."""
    if _file_held(directory, token):
        return True
    offset = _liveness.owner_byte(token)
    return offset is not None and _liveness.byte_locked(dir_fd, offset, 1, directory)


def _file_held(directory: str, token: str) -> bool:
    if not token.isalnum():
        return False  # not a token we could have written: never open a path from it
    path = os.path.join(directory, "owners", token)
    try:
        fd = _os.open_file(path, _os.O_RDWR)
    except PersistenceError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise
    try:
        return not _os.try_flock(fd, path)
    finally:
        _os.close(fd, path)


def _owner_alive(store: StoreLike, token: str) -> bool:
    """Like :func:`owner_held`, removing the file of a dead owner."""
    if owner_held(store.dir, token, store.att.dir_fd):
        return True
    if token.isalnum():
        store.unlink_quietly(os.path.join(store.dir, "owners", token))
    return False
