"""The queue directory on disk: the commit lock, generations, catching up, fail-stop.

Files in the queue directory (0700; files 0600):

``checkpoint.<gen>``  full live state at the start of generation ``gen``
``journal.<gen>``     state changes since that checkpoint (``_records.py``)
``owners/<token>``    one per open handle, flock-held for its lifetime: liveness (with
                      the handle's lock on one byte of the directory, ``_liveness.py``,
                      which outlives the file's removal by another program)
``reserve``           allocated space that lets a full queue drain (``_reserve.py``)
``.tmp-<pid>-<hex>``  a checkpoint being written; a leftover one is a crash's debris
``*.corrupt-<n>``     copies of damaged files, kept as evidence, never read

The commit lock is flock(2) on the directory's own descriptor (``_directory.py``).

:meth:`Store.locked` runs an operation under the lock after catching up: reading our
journal from our offset to EOF and applying it. A journal ends in one of three ways,
and catching up follows each until it reaches the live generation:
(1) a seal record naming generation n: load the newest checkpoint, whose generation is
>= n; if there is none, its sealer died between sealing and renaming, and we finish the
publication from our state, identical to its state since we applied the same records;
(2) our journal has no name any more (``linked()``) and carries no seal: its writer
moved on without one (its journal could no longer be trusted after an fsync error) or
someone deleted it: load the newest checkpoint if it is newer than ours, else publish
our state, which holds every record, as a new generation;
(3) neither: it is the live journal, and appending to it is safe.
A handle never publishes an old generation again: a new one is numbered past every
generation present, and any number of checkpoints by others while it idles is harmless.

Checkpoint (publish, in ``_publish.py``), under the lock, when the journal outgrows
max(compact_min_bytes, 2 x last checkpoint): (1) write the state to a unique temp
file and fsync it (a full disk fails here, with nothing else touched); (2) create
the empty ``journal.<n+1>`` (O_EXCL); (3) append a seal naming n+1 to the old journal
and fsync: no one appends to it again; (4) rename the temp file to ``checkpoint.<n+1>``
and fsync the directory (a rename is only durable once its directory is); (5) unlink
the old generation. A crash after (3) leaves a sealed journal, finished by whoever
reads the seal next; after (2) only an empty journal, which is debris.

fsync failure (fsyncgate). After an fsync error the kernel may have dropped the dirty
pages and will report the next fsync as a success, so the file can never be trusted
again: the failed call raises, the journal is abandoned and the state in memory (which
never held the failed record) is published as a new generation. If that fails too, or
a directory fsync fails, the handle stops: every later call raises CorruptionError.
The abandoned journal is not sealed (it is not trusted with one): other handles see it
unlinked and load the new generation. A crash in the microseconds between the new
checkpoint's rename and that unlink, after an fsync error, is the one double fault in
which a handle of another, still running process could append once more to the old
journal before the next open removes it.

Owns :class:`Store` (the lock, catching up, generations, fail-stop); may import only
_directory, _os, _publish, _recovery, _reserve, _state, _vanished, journal, errors.
"""

from __future__ import annotations

import errno
import logging
import os.path
import weakref
from collections.abc import Callable

from . import _directory, _os
from . import journal as _j
from ._publish import publish
from ._recovery import RecoveryReport, load_and_recover, recover
from ._reserve import Reserve
from ._state import State
from ._vanished import reestablish
from .errors import CorruptionError, DiskFullError, PersistenceError, StorageMissingError

__all__ = ["Store"]

_log = logging.getLogger("persistence")
_VANISH_TRIES = 5
_OPEN: weakref.WeakSet[Store] = weakref.WeakSet()  # for the fork hook below


def _after_fork_in_child() -> None:
    # A child that never touches an inherited handle must not keep its parent's locks
    # alive: a parent SIGKILLed holding the commit lock, or holding claims, would
    # otherwise block every process, or keep its claims PROCESSING, until the child exits.
    for store in list(_OPEN):
        store.detach()


_os.at_fork_in_child(_after_fork_in_child)


class Store:
    """One handle's hold on the directory; keeps ``state`` in step with the disk."""

    def __init__(self, directory: str, token: str, state: State, retain: int,
                 compact_min: int) -> None:
        self.dir, self.token, self.state = directory, token, state
        self.retain, self.compact_min = retain, compact_min
        self.journal: _j.Journal | None = None
        self.gen = self.ckpt_size = 0
        self.fsyncs = self.bytes_written = self.checkpoints = 0
        self.torn_repairs = self.torn_bytes = 0
        self.report: dict = {"torn": 0, "notes": []}  # for the next RecoveryReport
        self.att: _directory.Attachment | None = None
        self.reserve = Reserve(directory)
        self.stopped: str | None = None  # why this handle no longer writes
        self._compact_at = compact_min
        _OPEN.add(self)

    def open(self, create: bool) -> RecoveryReport:
        """Attach to (by default create) the directory, load it and recover."""
        self.att = _directory.attach(self.dir, self.token, create)
        self.fsyncs += self.att.syncs
        return self.locked(load_and_recover, self)

    def recover(self) -> RecoveryReport:
        """Requeue claims of dead owners and remove debris (run it under :meth:`locked`)."""
        return recover(self)

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    # -- the commit path ------------------------------------------------------------

    def locked(self, fn: Callable, *args: object) -> object:
        """Run ``fn`` holding the commit lock, after catching up with the journal."""
        if self.stopped:
            raise CorruptionError(errno.EIO, "queue handle stopped", self.dir,
                                  f"operation refused: path={self.dir!r} errno=EIO (this "
                                  f"handle stopped after {self.stopped}); close it and open "
                                  f"the queue again; {CorruptionError.hint}")
        if self._vanished():
            reestablish(self)
        fd = self.att.dir_fd
        _os.flock(fd, _os.LOCK_EX, self.dir)
        try:
            if self.journal is not None:
                self.catch_up()
            return fn(*args)
        finally:
            # Re-establishing a vanished directory closed the old descriptor (which
            # released its lock): only a lock still ours is ours to release.
            if self.att is not None and fd == self.att.dir_fd:
                _os.flock(fd, _os.LOCK_UN, self.dir)

    def commit(self, records: list[bytes], recs: list[tuple], sync: bool,
               spend_reserve: bool = True) -> None:
        """Append one commit of ``records`` (encoded ``recs``), then apply ``recs``;
        under the lock. ``spend_reserve``: on ENOSPC give back reserved space and retry
        (everything but an enqueue, which must never eat the space drains rely on)."""
        self._append(records, recs, sync, spend_reserve)
        if not self.journal.linked() and not self._vanished():
            # Removed by another program while we wrote (no peer supersedes it while we
            # hold the lock; a vanished directory is handled below): the record went to a
            # file with no name. Memory holds it: publish from there before returning.
            self._superseded()
        if self.journal.end > self._compact_at:
            try:
                self.publish(True)
            except PersistenceError as exc:
                if self.stopped:
                    raise
                # The commit itself is durable; try again after as many bytes again.
                self._compact_at = self.journal.end + max(self.compact_min, self.ckpt_size)
                _log.warning("automatic checkpoint failed, will retry later: %s", exc)
        # A directory removed while we wrote leaves the record in an unlinked file:
        # re-create it from memory, which holds it, before returning.
        for _ in range(_VANISH_TRIES):
            if not self._vanished():
                return
            if not reestablish(self):
                return  # published from memory, this record included
            # We took the state of a queue another process made there: our record is in
            # neither. Only an enqueue can be written again (a claim decided on a gone
            # state would resurrect an acked entry).
            if any(rec[0] != "E" for rec in recs):
                raise self.gone("commit", "the directory vanished while this change was "
                                 "written, and the one there now holds another state")
            self.locked(self._append, records, recs, sync, spend_reserve)
        raise self.gone("commit", f"the directory vanished {_VANISH_TRIES} times meanwhile")

    def _append(self, records: list[bytes], recs: list[tuple], sync: bool,
                spend_reserve: bool) -> None:
        journal = self.journal
        try:
            self.write(journal, records, sync, spend_reserve)
        except PersistenceError as exc:
            if journal.poisoned:
                self._abandon(exc)
            raise
        apply = self.state.apply
        for rec in recs:
            apply(rec)

    def write(self, journal: _j.Journal, records: list[bytes], sync: bool,
               spend_reserve: bool) -> None:
        try:
            journal.append(records, sync)
        except DiskFullError:
            if not spend_reserve or journal.poisoned:
                raise
            if not self.reserve.release(sum(map(len, records)) + 64):
                raise
            journal.append(records, sync)

    def _abandon(self, exc: PersistenceError) -> None:
        """fsync of the journal failed: never trust it again (see the module doc)."""
        _log.error("fsync failed, moving the queue to a new generation: %s", exc)
        try:
            self.publish(False)
        except PersistenceError as again:
            self.stopped = f"fsync of {self.journal.path!r} failed ({exc.strerror}) and " \
                           f"publishing a new generation failed too ({again})"
            exc.message += "; this handle is stopped: reopen the queue"
            return
        exc.message += (f"; the change was not applied and the queue moved to generation "
                        f"{self.gen}, written from memory")

    def _vanished(self) -> bool:
        """Is the directory we hold gone (removed, or replaced by another one)?"""
        st = _os.lstat_or_none(self.dir)
        if st is None or (st.st_dev, st.st_ino) != self.att.dir_id:
            return True
        # A removed directory has no links; checked as well as the identity since a
        # filesystem without stable inode numbers (FUSE, some network ones) may reuse it.
        return _os.fstat(self.att.dir_fd, self.dir).st_nlink == 0

    def set_ckpt_size(self, size: int) -> None:
        # The compaction threshold only changes with a checkpoint: compute it once here.
        self.ckpt_size = size
        self._compact_at = max(self.compact_min, 2 * size)

    def catch_up(self, follow: bool = True) -> None:
        """Apply what other processes appended and follow the journal to the live
        generation (see the module doc); ``follow=False`` only reads (the directory is
        gone: there is nothing to follow)."""
        while True:
            journal = self.journal
            recs, cut = journal.read_tail()
            if cut:
                self.torn_repairs += 1
                self.torn_bytes += cut
                self.report["torn"] += cut
            if recs:
                apply = self.state.apply
                for rec in recs:
                    if rec[0] != "S":
                        apply(rec)
            if not follow:
                return
            if journal.sealed_to is not None:
                self._follow_seal(journal.sealed_to)
            elif not journal.linked():
                self._superseded()
            else:
                return

    # -- generations ------------------------------------------------------------------

    def names(self) -> list[str]:
        return _os.listdir(self.dir)

    def _newest_checkpoint(self) -> int:
        return max(_j.generations(self.names(), "checkpoint"), default=-1)

    def _follow_seal(self, gen: int) -> None:
        newest = self._newest_checkpoint()
        if newest >= gen:
            self.load_generation(newest)
        elif self._journal_named():
            # Its sealer died between the seal and the rename: finish for it.
            self.report["notes"].append(f"finished publishing generation {gen}")
            self.publish(False, gen)
        else:
            raise self.corrupt(self.journal.path, f"sealed to generation {gen}, but no "
                                "checkpoint of it or later exists and the journal was removed")

    def _superseded(self) -> None:
        path = self.journal.path
        newest = self._newest_checkpoint()
        if newest > self.gen:
            self.load_generation(newest)
            return
        # Removed by someone else: memory holds every record of it.
        _log.warning("live journal removed by another program: path=%r; publishing the "
                     "state from memory as a new generation", path)
        self.report["notes"].append(f"{os.path.basename(path)} was removed; republished")
        self.publish(False)

    def _journal_named(self) -> bool:
        journal = self.journal
        st = _os.lstat_or_none(journal.path)
        return st is not None and (st.st_dev, st.st_ino) == journal.identity

    def load_generation(self, gen: int) -> None:
        """Replace our state with generation ``gen``: its checkpoint and its journal."""
        path = self.path(f"checkpoint.{gen}")
        found = _j.read_checkpoint(path)
        if found is None:
            raise self.corrupt(path, "the checkpoint of the live generation is missing")
        journal = self.open_journal(gen)
        self.state.load(found[1])
        self.set_ckpt_size(found[2])
        self.switch(journal, gen)

    def open_journal(self, gen: int) -> _j.Journal:
        path = self.path(f"journal.{gen}")
        try:
            journal = _j.Journal.open(path, gen)
        except PersistenceError as exc:
            if exc.errno == errno.ENOENT:
                raise self.corrupt(path, "the journal of the live generation is missing; "
                                    "its records cannot be recovered") from exc
            raise
        try:
            _directory.check_file(journal.fd, path)
        except PersistenceError:
            journal.close()
            raise
        return journal

    def corrupt(self, path: str, why: str) -> CorruptionError:
        return CorruptionError(errno.EBADMSG, "queue files inconsistent", path,
                               f"read failed: path={path!r} errno=EBADMSG ({why}); "
                               f"{CorruptionError.hint}")

    def publish(self, seal: bool, gen: int | None = None) -> None:
        """Write our state as generation ``gen`` (default: past every one present) and
        make it the live one (``_publish.py``)."""
        publish(self, seal, gen)

    def switch(self, new: _j.Journal, gen: int) -> None:
        """Make ``new`` our journal and remove every older generation's files. No
        directory fsync: one that comes back after a power loss is debris (older than
        the newest checkpoint) and is removed again at the next open."""
        old, self.journal, self.gen = self.journal, new, gen
        if old is not None:
            self.fsyncs += old.fsyncs
            self.bytes_written += old.bytes_written
            old.close()
        for kind in ("journal", "checkpoint"):
            for old_gen in _j.generations(self.names(), kind):
                if old_gen < gen:
                    self.unlink_quietly(self.path(f"{kind}.{old_gen}"))

    def sync_dir(self) -> None:
        self.fsyncs += 1
        _os.fsync_dir(self.dir)

    def unlink_quietly(self, path: str) -> bool:
        return _os.unlink_if_present(path)  # already gone is the outcome we wanted

    def ensure_owner(self) -> None:
        """Re-create our owner file if someone removed it (before a claim: a claim
        whose owner file is missing looks orphaned to every other handle)."""
        att = self.att
        if _os.fstat(att.owner_fd, self.token).st_nlink:
            return
        fd, syncs = _directory.open_owner(self.dir, self.token)
        self.fsyncs += syncs
        _os.close(att.owner_fd, self.token)
        att.owner_fd = fd
        _log.warning("owner file was removed by another program; re-created: %s", self.token)

    # -- a vanished directory (``_vanished.py``), and release ---------------------------

    def gone(self, what: str, why: str) -> StorageMissingError:
        return StorageMissingError(errno.ENOENT, "directory vanished", self.dir,
                                   f"{what} failed: path={self.dir!r}: {why}; "
                                   f"{StorageMissingError.hint}")

    def detach(self) -> None:
        """In a forked child: stop sharing the parent's open file descriptions."""
        att, journal = self.att, self.journal
        _os.detach_after_fork([att.dir_fd if att else -1, att.owner_fd if att else -1,
                               journal.fd if journal else -1, self.reserve.fd], self.dir)

    def release(self, forked: bool = False) -> None:
        """Close every file and remove our owner file (not in a forked child: the
        parent's handle still uses them); the first error is raised last."""
        first: PersistenceError | None = None
        journal, self.journal = self.journal, None
        if journal is not None:
            self.fsyncs += journal.fsyncs
            self.bytes_written += journal.bytes_written
            try:
                journal.close()
            except PersistenceError as exc:
                first = exc
        try:
            self.reserve.close()
        except PersistenceError as exc:
            first = first or exc
        if self.att is not None:
            err = self.att.close(self.dir, self.token, remove_owner=not forked)
            first = first or err
        _OPEN.discard(self)
        if first is not None:
            raise first
