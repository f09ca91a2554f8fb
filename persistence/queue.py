"""The durable multi-process queue: entry states and transitions over the journal.

Files in the queue directory (0700; files 0600):

``checkpoint.<gen>``  full live state at the start of generation ``gen`` (absent for 0)
``journal.<gen>``     state changes since that checkpoint (journal.py has the format)
``lock``              flock(2) serialising commits of every process and instance
``owners/<token>``    one per open Queue, flock-held for its lifetime: liveness
``.tmp-<pid>-<hex>``  a checkpoint being written; a leftover one is a crash's debris

Commit, under the lock: (1) stat the directory: still the one we opened, else
re-establish it; (2) read the journal from our offset to EOF and apply it, cutting a
torn tail (its writer is dead: it could not have let go of the lock otherwise);
(3) validate against the now-current state; (4) append the records in one write and
fsync (not for claims unless ``durable_claims``: a lost claim only re-delivers);
(5) apply them in memory, only now that they are durable. Hence "durable when it
returns", claims exclusive across processes, and a failed append leaves no trace.

Checkpoint (compaction), under the lock, when the journal outgrows
max(compact_min_bytes, 2 x last checkpoint), so every byte is rewritten O(1) times:
(1) write the state to a unique temp file and fsync it (a full disk fails here, with
nothing else touched); (2) append a seal record naming generation n+1 to the journal
and fsync: no one appends to it again; (3) rename the temp file to
``checkpoint.<n+1>`` and fsync the directory, as a rename is only durable once its
directory is; (4) create ``journal.<n+1>`` and fsync the directory; (5) unlink the
old generation and fsync the directory. A crash after (2) leaves a sealed journal:
whoever reads the seal next finishes steps (3)-(5) from its own identical state.

Liveness: a claim records the claimer's owner token. recover() hands a PROCESSING
entry back to PENDING when its owner file is missing or its flock can be taken.
"""

from __future__ import annotations

import errno
import logging
import os.path
import secrets
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from . import _os
from . import journal as _j
from .errors import (
    CorruptionError,
    InvalidTransitionError,
    PayloadTooLargeError,
    PersistenceError,
    QueueClosedError,
    StorageMissingError,
    UnknownEntryError,
    usage_error,
)

__all__ = [
    "DELIVERED",
    "FAILED",
    "PENDING",
    "PROCESSING",
    "Queue",
    "RecoveryReport",
    "open_queue",
]

PENDING, PROCESSING, DELIVERED, FAILED = "PENDING", "PROCESSING", "DELIVERED", "FAILED"
_log = logging.getLogger("persistence")


_DEFAULTS: dict[str, object] = {
    "max_payload_bytes": 16 * 1024 * 1024,
    "max_attempts": 5,
    "retain_delivered": 0,
    "compact_min_bytes": 1024 * 1024,
    "durable_claims": False,
    "create": True,
}
_MINIMUM = {"max_payload_bytes": 0, "max_attempts": 1, "retain_delivered": 0,
            "compact_min_bytes": 0}


def _validate_options(options: dict[str, object]) -> dict[str, object]:
    unknown = sorted(set(options) - set(_DEFAULTS))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown}: expected one of {sorted(_DEFAULTS)}")
    merged = {**_DEFAULTS, **options}
    for name, value in merged.items():
        if name in _MINIMUM:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name}={value!r}: expected int, got {type(value).__name__}")
            if value < _MINIMUM[name]:
                raise ValueError(f"{name}={value!r}: expected an int >= {_MINIMUM[name]}")
        elif not isinstance(value, bool):
            raise TypeError(f"{name}={value!r}: expected bool, got {type(value).__name__}")
    return merged


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


def open_queue(directory: str | os.PathLike[str], **options: object) -> Queue:
    """Open (by default create) the queue in ``directory``; see the module docstring."""
    return Queue(directory, _validate_options(options))


class _Entry:
    __slots__ = ("attempts", "owner", "payload", "reason", "state", "worker")

    def __init__(self, state: str, payload: bytes | None) -> None:
        self.state, self.payload = state, payload
        self.attempts, self.reason, self.owner, self.worker = 0, "", "", ""


class Queue:
    """A durable FIFO queue shared by any number of processes; see :func:`open_queue`."""

    def __init__(self, directory: str | os.PathLike[str], options: dict) -> None:
        self._dir = os.path.abspath(os.fspath(directory))
        self._max_payload = options["max_payload_bytes"]
        self._max_attempts = options["max_attempts"]
        self._retain = options["retain_delivered"]
        self._compact_min = options["compact_min_bytes"]
        self._durable_claims = options["durable_claims"]
        self._token = secrets.token_hex(8)
        self._seq = 0
        self._closed = False
        self._journal: _j.Journal | None = None
        self._lock_fd = self._owner_fd = -1
        self._gen = 0
        self._ckpt_size = 0
        self._fsyncs = self._bytes_written = self._checkpoints = 0
        self._torn_repairs = self._torn_bytes = 0
        self._report = {"torn": 0, "temps": [], "quarantined": []}
        self._reset_state()
        ok = False
        try:
            self._attach(options["create"])
            self.last_recovery: RecoveryReport = self._locked(self._open_recover)
            ok = True
        finally:
            if not ok:
                self._release()

    # -- public API ---------------------------------------------------------------

    def enqueue(self, payload: bytes) -> str:
        return self.enqueue_many([payload])[0]

    def enqueue_many(self, payloads: Iterable[bytes]) -> list[str]:
        """Append every payload with one write and one fsync; durable on return."""
        items = [self._checked_payload(p) for p in payloads]
        ids, parts, recs = [], [], []
        for payload in items:
            self._seq += 1
            entry_id = f"{self._token}-{self._seq}"
            ids.append(entry_id)
            parts.append(_j.rec_enqueue(entry_id, payload))
            recs.append(("E", entry_id, payload))
        if ids:
            self._locked(self._commit, b"".join(parts), recs, True)
        return ids

    def claim(self, worker: str) -> tuple[str, bytes] | None:
        got = self.claim_many(worker, 1)
        return got[0] if got else None

    def claim_many(self, worker: str, n: int) -> list[tuple[str, bytes]]:
        """Move up to ``n`` oldest PENDING entries to PROCESSING for ``worker``."""
        if not isinstance(worker, str):
            raise TypeError(f"worker={worker!r}: expected str, got {type(worker).__name__}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n={n!r}: expected an int >= 0")
        return self._locked(self._claim, worker, n)

    def ack(self, entry_id: str) -> None:
        self.ack_many([entry_id])

    def ack_many(self, ids: Iterable[str]) -> None:
        """PROCESSING -> DELIVERED for every id, all or none, one fsync."""
        ids = list(ids)
        if ids:
            self._locked(self._ack, ids)

    def fail(self, entry_id: str, reason: str) -> None:
        """Back to PENDING, or FAILED (reason kept) once ``max_attempts`` is reached."""
        if not isinstance(reason, str):
            raise TypeError(f"reason={reason!r}: expected str, got {type(reason).__name__}")
        self._locked(self._fail, entry_id, reason)

    def recover(self) -> RecoveryReport:
        """Requeue claims of dead owners, remove temp debris; report all of it."""
        return self._locked(self._recover)

    def compact(self) -> None:
        """Checkpoint now, dropping DELIVERED entries beyond ``retain_delivered``."""
        self._locked(self._publish, True)

    def states(self) -> dict[str, str]:
        return self._locked(lambda: {k: e.state for k, e in self._entries.items()})

    def stats(self) -> dict:
        if not self._closed:
            self._locked(lambda: None)
        j = self._journal
        return {
            **self._counts,
            "fsyncs": self._fsyncs + (j.fsyncs if j else 0),
            "bytes_written": self._bytes_written + (j.bytes_written if j else 0),
            "journal_bytes": j.end if j else 0,
            "checkpoints": self._checkpoints,
            "torn_tail_repairs": self._torn_repairs,
            "torn_bytes_cut": self._torn_bytes,
            "generation": self._gen,
            "directory": self._dir,
        }

    @property
    def directory(self) -> str:
        return self._dir

    def close(self) -> None:
        """Release the files; our PROCESSING entries become recoverable by others."""
        if not self._closed:
            self._closed = True
            self._release()

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Queue directory={self._dir!r} closed={self._closed}>"

    # -- operations, run under the lock after catching up -------------------------

    def _claim(self, worker: str, n: int) -> list[tuple[str, bytes]]:
        pending, entries = self._pending, self._entries
        while pending and getattr(entries.get(pending[0]), "state", None) is not PENDING:
            pending.popleft()  # stale: claimed, dropped or re-queued further back
        chosen: dict[str, bytes] = {}
        for entry_id in pending:
            if len(chosen) >= n:
                break
            entry = entries.get(entry_id)
            if entry is not None and entry.state is PENDING and entry_id not in chosen:
                chosen[entry_id] = entry.payload
        if chosen:
            token = self._token
            data = b"".join(_j.rec_claim(i, worker, token) for i in chosen)
            recs = [("C", i, worker, token) for i in chosen]
            self._commit(data, recs, self._durable_claims)
        return list(chosen.items())

    def _ack(self, ids: list[str]) -> None:
        seen = set()
        for entry_id in ids:
            self._require(entry_id, PROCESSING, "ack", seen)
        self._commit(b"".join(map(_j.rec_ack, ids)), [("A", i) for i in ids], True)

    def _fail(self, entry_id: str, reason: str) -> None:
        entry = self._require(entry_id, PROCESSING, "fail", set())
        final = entry.attempts + 1 >= self._max_attempts
        self._commit(_j.rec_fail(entry_id, final, reason), [("F", entry_id, final, reason)], True)

    def _require(self, entry_id: str, state: str, op: str, seen: set) -> _Entry:
        entry = self._entries.get(entry_id)
        if entry is None:
            raise usage_error(UnknownEntryError, f"{op}: entry_id={entry_id!r} not found")
        if entry.state is not state or entry_id in seen:
            now = DELIVERED if entry_id in seen else entry.state
            raise usage_error(
                InvalidTransitionError,
                f"{op}: entry_id={entry_id!r} state={now} expected={state}",
            )
        seen.add(entry_id)
        return entry

    def _commit(self, data: bytes, recs: list[tuple], sync: bool) -> None:
        self._journal.append(data, sync)
        apply = self._apply
        for rec in recs:
            apply(rec)
        if self._journal.end > max(self._compact_min, 2 * self._ckpt_size):
            try:
                self._publish(True)
            except PersistenceError as exc:
                # The commit itself is durable; a failed checkpoint is retried by the
                # next commit (a sealed journal forces it), so report, do not raise.
                _log.warning("automatic checkpoint failed, will retry: %s", exc)

    # -- in-memory state ----------------------------------------------------------

    def _reset_state(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._pending: deque[str] = deque()  # FIFO; stale ids are skipped lazily
        self._delivered: deque[str] = deque()  # delivery order, for retention
        self._processing: set[str] = set()
        self._counts = dict.fromkeys((PENDING, PROCESSING, DELIVERED, FAILED), 0)

    def _move(self, entry: _Entry, state: str) -> None:
        counts = self._counts
        counts[entry.state] -= 1
        counts[state] += 1
        entry.state = state

    def _apply(self, rec: tuple) -> None:
        kind, entry_id = rec[0], rec[1]
        if kind == "E":
            self._entries[entry_id] = _Entry(PENDING, rec[2])
            self._pending.append(entry_id)
            self._counts[PENDING] += 1
            return
        entry = self._entries.get(entry_id)
        if entry is None:
            _log.warning("journal record for unknown entry ignored: kind=%s id=%r", kind, rec[1])
            return
        if kind == "C":
            self._move(entry, PROCESSING)
            entry.worker, entry.owner = rec[2], rec[3]
            self._processing.add(entry_id)
            if self._pending and self._pending[0] == entry_id:
                self._pending.popleft()  # so a failed entry retries from the back
        elif kind == "A":
            self._move(entry, DELIVERED)
            entry.payload = None  # delivered payloads are never read again
            self._delivered.append(entry_id)
            self._processing.discard(entry_id)
        elif kind == "F":
            entry.attempts += 1
            entry.reason = rec[3]
            self._processing.discard(entry_id)
            self._move(entry, FAILED if rec[2] else PENDING)
            if not rec[2]:
                self._pending.append(entry_id)
        elif kind == "R":
            self._move(entry, PENDING)
            self._processing.discard(entry_id)
            self._pending.append(entry_id)

    def _load(self, body: list[tuple]) -> None:
        self._reset_state()
        for _, entry_id, state, attempts, owner, worker, reason, payload in body:
            entry = _Entry(state, payload if state is not DELIVERED else None)
            entry.attempts, entry.owner, entry.worker, entry.reason = (
                attempts, owner, worker, reason)
            self._entries[entry_id] = entry
            self._counts[state] += 1
            if state == PENDING:
                entry.state = PENDING
                self._pending.append(entry_id)
            elif state == DELIVERED:
                entry.state = DELIVERED
                self._delivered.append(entry_id)
            elif state == PROCESSING:
                entry.state = PROCESSING
                self._processing.add(entry_id)
            else:
                entry.state = FAILED

    def _snapshot(self) -> Iterable[tuple]:
        """Live entries in queue order, without DELIVERED ones beyond retention."""
        entries = self._entries
        for entry_id, e in entries.items():
            if e.state is PROCESSING or e.state is FAILED:
                yield entry_id, e.state, e.attempts, e.owner, e.worker, e.reason, e.payload
        keep = list(self._delivered)[-self._retain :] if self._retain else []
        for entry_id in keep:
            e = entries[entry_id]
            yield entry_id, DELIVERED, e.attempts, e.owner, e.worker, e.reason, b""
        seen = set()
        for entry_id in self._pending:
            e = entries.get(entry_id)
            if e is not None and e.state is PENDING and entry_id not in seen:
                seen.add(entry_id)
                yield entry_id, PENDING, e.attempts, e.owner, e.worker, e.reason, e.payload

    def _checked_payload(self, payload: object) -> bytes:
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise TypeError(f"payload: expected bytes, got {type(payload).__name__}")
        payload = bytes(payload)
        if len(payload) > self._max_payload:
            raise usage_error(
                PayloadTooLargeError,
                f"enqueue: payload size={len(payload)} bytes limit={self._max_payload} "
                "(max_payload_bytes)",
            )
        return payload

    # -- files: attach, lock, catch-up, checkpoints, recovery ---------------------

    def _path(self, name: str) -> str:
        return os.path.join(self._dir, name)

    def _sync_dir(self, path: str) -> None:
        self._fsyncs += 1
        _os.fsync_dir(path)

    def _check_open(self) -> None:
        if self._closed:
            raise usage_error(QueueClosedError, f"queue directory={self._dir!r} is closed")

    def _missing(self, exc: PersistenceError) -> StorageMissingError:
        err = StorageMissingError(
            exc.errno, exc.strerror, self._dir,
            f"re-create queue directory failed: path={self._dir!r} "
            f"errno={errno.errorcode.get(exc.errno, exc.errno)} ({exc.strerror}); "
            f"{StorageMissingError.hint}",
        )
        err.__cause__ = exc
        return err

    def _make_dirs(self) -> None:
        """Create the directory and missing parents, each made durable in its parent."""
        missing, path = [], self._dir
        while _os.stat_or_none(path) is None and os.path.dirname(path) != path:
            missing.append(path)
            path = os.path.dirname(path)
        for path in reversed(missing):
            try:
                _os.mkdir(path)
            except PersistenceError as exc:
                if exc.errno != errno.EEXIST:  # another process won the race: fine
                    raise
            self._sync_dir(os.path.dirname(path))

    def _attach(self, create: bool) -> tuple[int, int]:
        """Open the lock and our flock-held owner file; return the directory's identity."""
        st = _os.stat_or_none(self._dir)
        if st is None:
            if not create:
                raise StorageMissingError(
                    errno.ENOENT, "No such file or directory", self._dir,
                    f"open failed: path={self._dir!r} errno=ENOENT (create=False); "
                    f"{StorageMissingError.hint}",
                )
            self._make_dirs()
            st = _os.stat(self._dir)
        owners = self._path("owners")
        if _os.stat_or_none(owners) is None:
            try:
                _os.mkdir(owners)
            except PersistenceError as exc:
                if exc.errno != errno.EEXIST:
                    raise
            self._sync_dir(self._dir)
        # Lock and owner files carry no data, so they need no fsync: after a power
        # loss every holder is dead anyway, and a missing owner file reads as dead.
        lock_fd = _os.open_file(self._path("lock"), _os.O_RDWR | _os.O_CREAT)
        owner_path = os.path.join(owners, self._token)
        try:
            owner_fd = _os.open_file(owner_path, _os.O_RDWR | _os.O_CREAT)
            _os.flock(owner_fd, _os.LOCK_EX, owner_path)
        except PersistenceError:
            _os.close(lock_fd, self._path("lock"))
            raise
        self._lock_fd, self._owner_fd = lock_fd, owner_fd
        self._dir_id = (st.st_dev, st.st_ino)
        return self._dir_id

    def _locked(self, fn: Callable, *args: object) -> object:
        """Run ``fn`` holding the commit lock, after catching up with the journal."""
        self._check_open()
        self._ensure_directory()
        lock_path = self._path("lock")
        _os.flock(self._lock_fd, _os.LOCK_EX, lock_path)
        try:
            if self._journal is not None:
                self._catch_up()
            return fn(*args)
        finally:
            _os.flock(self._lock_fd, _os.LOCK_UN, lock_path)

    def _catch_up(self) -> None:
        while True:
            journal = self._journal
            recs, cut = journal.read_tail()
            if cut:
                self._torn_repairs += 1
                self._torn_bytes += cut
                self._report["torn"] += cut
            apply = self._apply
            for rec in recs:
                if rec[0] != "S":
                    apply(rec)
            if journal.sealed_to is None:
                return
            self._follow_seal(journal.sealed_to)

    def _follow_seal(self, gen: int) -> None:
        path = self._path(f"checkpoint.{gen}")
        try:
            found = _j.read_checkpoint(path)
        except CorruptionError:
            self._report["quarantined"].append(os.path.basename(_j.quarantine(path)))
            found = None
        if found is None:
            self._publish(False, gen)  # its sealer died before publishing: finish for it
        else:
            self._load(found[1])
            self._ckpt_size = found[2]
            self._switch_journal(gen)

    def _publish(self, seal: bool, gen: int | None = None) -> None:
        """Write the checkpoint of generation ``gen`` and start its journal (see top)."""
        gen = self._gen + 1 if gen is None else gen
        data = _j.encode_checkpoint(gen, self._snapshot())

        def seal_journal() -> None:
            if seal:
                self._journal.append(_j.rec_seal(gen), True)
                self._journal.sealed_to = gen

        self._fsyncs += _j.write_file_atomically(
            self._dir, f"checkpoint.{gen}", data, before_replace=seal_journal
        )
        delivered = self._delivered
        while len(delivered) > self._retain:
            if self._entries.pop(delivered.popleft(), None) is not None:
                self._counts[DELIVERED] -= 1
        self._ckpt_size = len(data)
        self._checkpoints += 1
        stale = self._path(f"journal.{gen}")
        st = _os.stat_or_none(stale)
        if st is not None and st.st_size:
            # Left by a generation whose checkpoint was quarantined: not ours to replay.
            self._report["quarantined"].append(os.path.basename(_j.quarantine(stale)))
        self._switch_journal(gen)

    def _switch_journal(self, gen: int) -> None:
        new, created = _j.Journal.open(self._path(f"journal.{gen}"), gen)
        if created:
            self._sync_dir(self._dir)
        old, self._journal, self._gen = self._journal, new, gen
        if old is not None:
            self._fsyncs += old.fsyncs
            self._bytes_written += old.bytes_written
            old.close()
        names = _os.listdir(self._dir)
        removed = False
        for kind in ("journal", "checkpoint"):
            for old_gen in _j.generations(names, kind):
                if old_gen < gen:
                    self._unlink_quietly(self._path(f"{kind}.{old_gen}"))
                    removed = True
        if removed:
            self._sync_dir(self._dir)

    def _unlink_quietly(self, path: str) -> bool:
        try:
            _os.unlink(path)
        except PersistenceError as exc:
            if exc.errno != errno.ENOENT:  # already gone is the outcome we wanted
                raise
            return False
        return True

    def _ensure_directory(self) -> None:
        st = _os.stat_or_none(self._dir)
        if st is None or (st.st_dev, st.st_ino) != self._dir_id:
            self._reestablish()

    def _reestablish(self) -> None:
        """The directory vanished: re-create it from memory instead of writing into it.

        The old lock file is still open, so instances of the old directory queue up on
        it; the first re-creates, the others find its checkpoint and load it.
        """
        _log.warning("queue directory vanished: path=%r; re-establishing", self._dir)
        old_lock, old_owner = self._lock_fd, self._owner_fd
        _os.flock(old_lock, _os.LOCK_EX, self._path("lock"))
        try:
            if self._journal is not None:
                self._catch_up()  # the last records of the vanished journal
            try:
                _os.mkdir(self._dir)
                self._sync_dir(os.path.dirname(self._dir))
            except PersistenceError as exc:
                if exc.errno != errno.EEXIST:
                    raise self._missing(exc)
            try:
                dir_id = self._attach(create=False)
            except PersistenceError as exc:
                raise self._missing(exc)
            self._dir_id = None  # not usable until it holds our state
            _os.flock(self._lock_fd, _os.LOCK_EX, self._path("lock"))
            try:
                names = _os.listdir(self._dir)
                if _j.generations(names, "checkpoint") or _j.generations(names, "journal"):
                    self._open_recover()
                else:
                    self._publish(False, self._gen + 1)
                self._dir_id = dir_id
            finally:
                _os.flock(self._lock_fd, _os.LOCK_UN, self._path("lock"))
        finally:
            if self._lock_fd == old_lock:  # re-creation failed: keep them for a retry
                _os.flock(old_lock, _os.LOCK_UN, self._path("lock"))
            else:
                _os.close(old_owner, self._token)
                _os.close(old_lock, self._path("lock"))

    def _open_recover(self) -> RecoveryReport:
        """Load the newest valid checkpoint and its journal, then :meth:`_recover`."""
        names = _os.listdir(self._dir)
        loaded = None
        for gen in _j.generations(names, "checkpoint"):
            path = self._path(f"checkpoint.{gen}")
            try:
                found = _j.read_checkpoint(path)
            except CorruptionError:
                self._report["quarantined"].append(os.path.basename(_j.quarantine(path)))
                continue
            if found is not None:
                loaded = (gen, found)
                break
        if loaded is None:
            if any(n.startswith("checkpoint.") for n in _os.listdir(self._dir)) or any(
                g > 0 for g in _j.generations(names, "journal")
            ):
                # Opening as empty would be the incident's silent total loss.
                raise CorruptionError(
                    errno.EBADMSG, "no valid checkpoint", self._dir,
                    f"open failed: path={self._dir!r} errno=EBADMSG (no valid checkpoint; "
                    f"unreadable ones kept as *.corrupt-*); {CorruptionError.hint}",
                )
            self._reset_state()
            self._ckpt_size = 0
            gen = 0
        else:
            gen, (_, body, size) = loaded
            self._load(body)
            self._ckpt_size = size
        self._switch_journal(gen)
        self._catch_up()
        return self._recover()

    def _recover(self) -> RecoveryReport:
        temps = []
        for name in _os.listdir(self._dir):
            # Temp files are only written under the lock we hold: any found is debris.
            if name.startswith(_j.TEMP_PREFIX) and self._unlink_quietly(self._path(name)):
                temps.append(name)
        if temps:
            self._sync_dir(self._dir)
        alive = {self._token: True}
        dead = []
        for entry_id in list(self._processing):
            owner = self._entries[entry_id].owner
            if owner not in alive:
                alive[owner] = self._owner_alive(owner)
            if not alive[owner]:
                dead.append(entry_id)
        for name in _os.listdir(self._path("owners")):
            if name not in alive:
                alive[name] = self._owner_alive(name)
        if dead:
            self._commit(b"".join(map(_j.rec_requeue, dead)), [("R", i) for i in dead], True)
        rep, self._report = self._report, {"torn": 0, "temps": [], "quarantined": []}
        report = RecoveryReport(
            torn_bytes_cut=rep["torn"],
            requeued=tuple(dead),
            temp_files_removed=tuple(rep["temps"] + temps),
            quarantined=tuple(rep["quarantined"]),
            owners_removed=tuple(sorted(k for k, v in alive.items() if not v and k)),
        )
        if not report.clean:
            _log.warning("recovery repaired: directory=%r %s", self._dir, report)
        return report

    def _owner_alive(self, token: str) -> bool:
        """Dead when its owner file is missing or nobody holds the file's flock."""
        if not token.isalnum():
            return False
        path = os.path.join(self._dir, "owners", token)
        try:
            fd = _os.open_file(path, _os.O_RDWR)
        except PersistenceError as exc:
            if exc.errno == errno.ENOENT:
                return False
            raise
        try:
            if not _os.try_flock(fd, path):
                return True
            self._unlink_quietly(path)
            return False
        finally:
            _os.close(fd, path)

    def _release(self) -> None:
        first: PersistenceError | None = None
        journal, self._journal = self._journal, None
        owner_path = os.path.join(self._dir, "owners", self._token)
        steps = [
            (lambda: journal.close()) if journal is not None else None,
            (lambda: self._unlink_quietly(owner_path)) if self._owner_fd >= 0 else None,
            (lambda: _os.close(self._owner_fd, owner_path)) if self._owner_fd >= 0 else None,
            (lambda: _os.close(self._lock_fd, self._path("lock"))) if self._lock_fd >= 0 else None,
        ]
        if journal is not None:
            self._fsyncs += journal.fsyncs
            self._bytes_written += journal.bytes_written
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
