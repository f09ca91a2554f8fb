"""The queue directory on disk: files, the commit lock, owners, checkpoints, recovery.

Files in the queue directory (0700; files 0600):

``checkpoint.<gen>``  full live state at the start of generation ``gen`` (absent for 0)
``journal.<gen>``     state changes since that checkpoint (journal.py has the format)
``lock``              flock(2) serialising commits of every process and instance
``owners/<token>``    one per open Queue, flock-held for its lifetime: liveness
``.tmp-<pid>-<hex>``  a checkpoint being written; a leftover one is a crash's debris

:meth:`Store.locked` runs an operation under the lock after (1) one stat of the
directory and one fstat of our lock file: still the directory we opened, else
re-establish it from memory (and so does a commit whose record it lost); (2) reading
the journal from our offset to EOF and applying it, cutting a torn tail (its writer
is dead: it could not have let go of the lock otherwise). :meth:`Store.commit` then
appends in one write, fsyncs when asked, and only then applies the records.

Checkpoint (compaction), under the lock, when the journal outgrows
max(compact_min_bytes, 2 x last checkpoint), so every byte is rewritten O(1) times:
(1) write the state to a unique temp file and fsync it (a full disk fails here, with
nothing else touched); (2) append a seal record naming generation n+1 to the journal
and fsync: no one appends to it again; (3) rename the temp file to
``checkpoint.<n+1>`` and fsync the directory, as a rename is only durable once its
directory is; (4) create ``journal.<n+1>`` and fsync the directory; (5) unlink the
old generation and fsync the directory. A crash after (2) leaves a sealed journal:
whoever reads the seal next finishes steps (3)-(5) from its own identical state.

Loading at open, removing debris and requeueing the claims of dead owners (the
``owners/`` files) are in ``_recovery.py``; this module keeps the files consistent.
"""

from __future__ import annotations

import errno
import logging
import os.path
from collections.abc import Callable

from . import _os
from . import journal as _j
from ._recovery import RecoveryReport, load_and_recover, recover
from ._state import State
from .errors import CorruptionError, PersistenceError, StorageMissingError

__all__ = ["Store"]

_log = logging.getLogger("persistence")
_ATTACH_TRIES = 5  # a directory replaced this often while we open it is not settling


class Store:
    """One instance's handle on the directory; keeps ``state`` in step with the disk."""

    def __init__(self, directory: str, token: str, state: State, retain: int,
                 compact_min: int) -> None:
        self.dir, self.token, self.state = directory, token, state
        self.retain, self.compact_min = retain, compact_min
        self.journal: _j.Journal | None = None
        self.gen = self.ckpt_size = 0
        self.fsyncs = self.bytes_written = self.checkpoints = 0
        self.torn_repairs = self.torn_bytes = 0
        self.report: dict = {"torn": 0, "temps": [], "quarantined": []}
        self._lock_fd = self._owner_fd = -1
        # Joined once: the hot path must not rebuild them for every operation.
        self._lock_path = os.path.join(directory, "lock")
        self._owners = os.path.join(directory, "owners")
        self._owner_path = os.path.join(self._owners, token)
        self._dir_id: tuple[int, int] | None = None
        self._compact_at = compact_min

    def open(self, create: bool) -> RecoveryReport:
        """Attach to (by default create) the directory, load it and recover."""
        self._attach(create)
        return self.locked(load_and_recover, self)

    def recover(self) -> RecoveryReport:
        """Requeue claims of dead owners and remove debris (run it under :meth:`locked`)."""
        return recover(self)

    # -- the commit path ------------------------------------------------------------

    def locked(self, fn: Callable, *args: object) -> object:
        """Run ``fn`` holding the commit lock, after catching up with the journal."""
        if self._vanished():
            self._reestablish()
        lock_fd, lock_path = self._lock_fd, self._lock_path
        _os.flock(lock_fd, _os.LOCK_EX, lock_path)
        try:
            if self.journal is not None:
                self.catch_up()
            return fn(*args)
        finally:
            # A commit that found the directory gone re-created it and closed the old lock
            # file (which released it): only a lock still ours is ours to release.
            if lock_fd == self._lock_fd:
                _os.flock(lock_fd, _os.LOCK_UN, lock_path)

    def commit(self, data: bytes, recs: list[tuple], sync: bool) -> None:
        """Append ``data`` (the encoded ``recs``), then apply ``recs``; under the lock."""
        self._append(data, recs, sync)
        if self.journal.end > self._compact_at:
            try:
                self.publish(True)
            except PersistenceError as exc:
                # The commit itself is durable; a failed checkpoint is retried by the
                # next commit (a sealed journal forces it), so report, do not raise.
                _log.warning("automatic checkpoint failed, will retry: %s", exc)
        # A directory removed while we wrote (or checkpointed) leaves the record in an
        # unlinked file: re-create it from memory, which holds it, before returning.
        for _ in range(_ATTACH_TRIES):
            if not self._vanished():
                return
            if not self._reestablish():
                return  # published from memory, this record included
            # We took the state of a queue another process made there: our record is in
            # neither. Only an enqueue can be written again (a claim was decided on a gone
            # state: re-writing one resurrected an acked entry).
            if any(rec[0] != "E" for rec in recs):
                raise self._gone("commit", "the directory vanished while this change was "
                                 "written, and the one there now holds another state")
            self.locked(self._append, data, recs, sync)
        raise self._gone("commit", f"the directory vanished {_ATTACH_TRIES} times meanwhile")

    def _vanished(self) -> bool:
        """Is the directory we attached gone? Its identity alone cannot say (ext4 may give
        a re-created one the same inode number); our lock file then has no name left."""
        st = _os.stat_or_none(self.dir)
        if st is None or (st.st_dev, st.st_ino) != self._dir_id:
            return True
        return _os.fstat(self._lock_fd, self._lock_path).st_nlink == 0

    def _append(self, data: bytes, recs: list[tuple], sync: bool) -> None:
        self.journal.append(data, sync)
        for rec in recs:
            self.state.apply(rec)

    def set_ckpt_size(self, size: int) -> None:
        # The compaction threshold only changes with a checkpoint: compute it once here.
        self.ckpt_size = size
        self._compact_at = max(self.compact_min, 2 * size)

    def catch_up(self, follow: bool = True) -> None:
        """Apply what other processes appended; ``follow``: also finish a compaction a
        sealed journal points to (not while re-establishing: that directory is gone)."""
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
            if journal.sealed_to is None or not follow:
                return
            self._follow_seal(journal.sealed_to)

    # -- checkpoints and generations --------------------------------------------------

    def _follow_seal(self, gen: int) -> None:
        path = self.path(f"checkpoint.{gen}")
        try:
            found = _j.read_checkpoint(path)
        except CorruptionError:
            self.report["quarantined"].append(os.path.basename(_j.quarantine(path)))
            found = None
        if found is None:
            self.publish(False, gen)  # its sealer died before publishing: finish for it
        else:
            self.state.load(found[1])
            self.set_ckpt_size(found[2])
            self.switch_journal(gen)

    def publish(self, seal: bool, gen: int | None = None) -> None:
        """Write the checkpoint of generation ``gen`` and start its journal (see top)."""
        gen = self.gen + 1 if gen is None else gen
        data = _j.encode_checkpoint(gen, self.state.snapshot(self.retain))

        def seal_journal() -> None:
            if seal:
                self.journal.append(_j.rec_seal(gen), True)
                self.journal.sealed_to = gen

        self.fsyncs += _j.write_file_atomically(
            self.dir, f"checkpoint.{gen}", data, before_replace=seal_journal
        )
        self.state.drop_delivered(self.retain)
        self.set_ckpt_size(len(data))
        self.checkpoints += 1
        stale = self.path(f"journal.{gen}")
        st = _os.stat_or_none(stale)
        if st is not None and st.st_size:
            # Left by a generation whose checkpoint was quarantined: not ours to replay.
            self.report["quarantined"].append(os.path.basename(_j.quarantine(stale)))
        self.switch_journal(gen)

    def switch_journal(self, gen: int) -> None:
        new, created = _j.Journal.open(self.path(f"journal.{gen}"), gen)
        if created:
            self.sync_dir(self.dir)
        old, self.journal, self.gen = self.journal, new, gen
        if old is not None:
            self.fsyncs += old.fsyncs
            self.bytes_written += old.bytes_written
            old.close()
        names = _os.listdir(self.dir)
        removed = False
        for kind in ("journal", "checkpoint"):
            for old_gen in _j.generations(names, kind):
                if old_gen < gen:
                    self.unlink_quietly(self.path(f"{kind}.{old_gen}"))
                    removed = True
        if removed:
            self.sync_dir(self.dir)

    # -- the directory: create, attach, re-establish, release ---------------------------

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def sync_dir(self, path: str) -> None:
        self.fsyncs += 1
        _os.fsync_dir(path)

    def unlink_quietly(self, path: str) -> bool:
        try:
            _os.unlink(path)
        except PersistenceError as exc:
            if exc.errno != errno.ENOENT:  # already gone is the outcome we wanted
                raise
            return False
        return True

    def _missing(self, exc: PersistenceError) -> StorageMissingError:
        err = StorageMissingError(
            exc.errno, exc.strerror, self.dir,
            f"re-create queue directory failed: path={self.dir!r} "
            f"errno={errno.errorcode.get(exc.errno, exc.errno)} ({exc.strerror}); "
            f"{StorageMissingError.hint}",
        )
        err.__cause__ = exc
        return err

    def _gone(self, what: str, why: str) -> StorageMissingError:
        return StorageMissingError(errno.ENOENT, "directory vanished", self.dir,
                                   f"{what} failed: path={self.dir!r}: {why}; "
                                   f"{StorageMissingError.hint}")

    def _make_dirs(self) -> None:
        """Create the directory and missing parents, each made durable in its parent."""
        missing, path = [], self.dir
        while _os.stat_or_none(path) is None and os.path.dirname(path) != path:
            missing.append(path)
            path = os.path.dirname(path)
        for path in reversed(missing):
            try:
                _os.mkdir(path)
            except PersistenceError as exc:
                if exc.errno != errno.EEXIST:  # another process won the race: fine
                    raise
            self.sync_dir(os.path.dirname(path))

    def _attach(self, create: bool) -> tuple[int, int]:
        """Open the lock and our flock-held owner file; return the identity of the
        directory that holds them (one replaced meanwhile made every commit take ours for
        vanished, and re-establishing flock a lock we held: a deadlock with ourselves)."""
        for _ in range(_ATTACH_TRIES):
            st = _os.stat_or_none(self.dir)
            if st is None:
                if not create:
                    raise StorageMissingError(
                        errno.ENOENT, "No such file or directory", self.dir,
                        f"open failed: path={self.dir!r} errno=ENOENT (create=False); "
                        f"{StorageMissingError.hint}",
                    )
                self._make_dirs()
            try:
                if _os.stat_or_none(self._owners) is None:
                    try:
                        _os.mkdir(self._owners)
                    except PersistenceError as exc:
                        if exc.errno != errno.EEXIST:
                            raise
                    self.sync_dir(self.dir)
                lock_fd, owner_fd = self._open_lock_and_owner()
            except PersistenceError as exc:
                if exc.errno != errno.ENOENT:
                    raise
                continue  # removed under us: look again (and create it again if we may)
            dir_id = self._identity(lock_fd, owner_fd)
            if dir_id is not None:
                self._lock_fd, self._owner_fd, self._dir_id = lock_fd, owner_fd, dir_id
                return dir_id
            _os.close(owner_fd, self._owner_path)
            _os.close(lock_fd, self._lock_path)
            _log.warning("queue directory replaced while opening: path=%r; retrying", self.dir)
        raise self._gone("open", f"the directory was replaced {_ATTACH_TRIES} times meanwhile")

    def _open_lock_and_owner(self) -> tuple[int, int]:
        # Lock and owner files carry no data, so they need no fsync: after a power
        # loss every holder is dead anyway, and a missing owner file reads as dead.
        lock_fd = _os.open_file(self._lock_path, _os.O_RDWR | _os.O_CREAT)
        try:
            # Under the commit lock, because recover() runs under it: between our
            # open and our flock the owner file looks dead, and a recover() in that
            # window would unlink it, making all our later claims look orphaned.
            _os.flock(lock_fd, _os.LOCK_EX, self._lock_path)
            try:
                owner_fd = _os.open_file(self._owner_path, _os.O_RDWR | _os.O_CREAT)
                _os.flock(owner_fd, _os.LOCK_EX, self._owner_path)
            finally:
                _os.flock(lock_fd, _os.LOCK_UN, self._lock_path)
        except PersistenceError:
            _os.close(lock_fd, self._lock_path)
            raise
        return lock_fd, owner_fd

    def _identity(self, lock_fd: int, owner_fd: int) -> tuple[int, int] | None:
        """The directory's (st_dev, st_ino) if both files are still the ones its paths name
        (looked at after it: a replacement in between shows as files not ours), else None."""
        st = _os.stat_or_none(self.dir)
        for fd, path in ((lock_fd, self._lock_path), (owner_fd, self._owner_path)):
            named, held = _os.stat_or_none(path), _os.fstat(fd, path)
            if st is None or named is None or (
                    (named.st_dev, named.st_ino) != (held.st_dev, held.st_ino)):
                return None
        return st.st_dev, st.st_ino

    def _reestablish(self) -> bool:
        """The directory vanished: re-create it from memory instead of writing into it.
        Instances of the old directory queue up on its open lock file; the first re-creates,
        the others load its state: True when we loaded one found there, dropping ours."""
        _log.warning("queue directory vanished: path=%r; re-establishing", self.dir)
        old_lock, old_owner = self._lock_fd, self._owner_fd
        _os.flock(old_lock, _os.LOCK_EX, self._lock_path)
        try:
            if self.journal is not None:
                self.catch_up(follow=False)  # the last records of the vanished journal
            try:
                _os.mkdir(self.dir)
                self.sync_dir(os.path.dirname(self.dir))
            except PersistenceError as exc:
                if exc.errno != errno.EEXIST:
                    raise self._missing(exc)
            # A try that failed after attaching (its checkpoint met a full disk) left us the
            # new directory's files: attaching again would flock a lock we hold, for ever.
            dir_id = self._identity(old_lock, old_owner)
            if dir_id is None:
                try:
                    dir_id = self._attach(create=False)
                except PersistenceError as exc:
                    raise self._missing(exc)
            self._dir_id = None  # not usable until it holds our state
            _os.flock(self._lock_fd, _os.LOCK_EX, self._lock_path)
            try:
                names = _os.listdir(self.dir)
                found = bool(_j.generations(names, "checkpoint")
                             or _j.generations(names, "journal"))
                if found:
                    load_and_recover(self)
                else:
                    self.publish(False, self.gen + 1)
                self._dir_id = dir_id
                return found
            finally:
                _os.flock(self._lock_fd, _os.LOCK_UN, self._lock_path)
        finally:
            if self._lock_fd == old_lock:  # re-creation failed: keep them for a retry
                _os.flock(old_lock, _os.LOCK_UN, self._lock_path)
            else:
                _os.close(old_owner, self.token)
                _os.close(old_lock, self._lock_path)

    def release(self) -> None:
        """Close every file and remove our owner file; the first error is raised last."""
        first: PersistenceError | None = None
        journal, self.journal = self.journal, None
        steps = [
            (lambda: journal.close()) if journal is not None else None,
            (lambda: self.unlink_quietly(self._owner_path)) if self._owner_fd >= 0 else None,
            (lambda: _os.close(self._owner_fd, self._owner_path)) if self._owner_fd >= 0
            else None,
            (lambda: _os.close(self._lock_fd, self._lock_path)) if self._lock_fd >= 0 else None,
        ]
        if journal is not None:
            self.fsyncs += journal.fsyncs
            self.bytes_written += journal.bytes_written
        for step in steps:
            if step is None:
                continue
            try:
                step()
            except PersistenceError as exc:
                first = first or exc
        self._owner_fd = self._lock_fd = -1
        if first is not None:
            raise first
