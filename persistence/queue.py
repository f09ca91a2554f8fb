"""The durable multi-process queue: the public API and the entry state machine.

An entry moves PENDING -> PROCESSING (claim) -> DELIVERED (ack), or back to PENDING
(fail, or its claimer died) until ``max_attempts`` makes it FAILED. Each operation is
validated against the state as it is *now*: :meth:`~persistence._store.Store.locked`
has caught up with every other process's journal records before it runs. The files,
the lock, checkpoints and recovery are in ``_store.py``; the in-memory state is in
``_state.py``; the on-disk formats are in ``_records.py``.

Durability: enqueue, ack and fail fsync their records before returning; a claim is
not fsynced unless ``durable_claims`` (a lost claim only re-delivers the entry after
a crash, it never loses one). A failed append leaves no trace, on disk or in memory.

Owns the public Queue API and the entry state machine; may import only _directory, _os,
_records, _recovery, _state, _store, errors.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from . import _directory, _os
from . import _records as _r
from ._recovery import RecoveryReport
from ._state import DELIVERED, FAILED, PENDING, PROCESSING, Entry, State
from ._store import Store
from .errors import (
    ClaimMismatchError,
    ForkedHandleError,
    InvalidArgumentError,
    InvalidTransitionError,
    PayloadTooLargeError,
    QueueClosedError,
    UnknownEntryError,
    usage_error,
)

__all__ = [
    "DELIVERED",
    "FAILED",
    "PENDING",
    "PROCESSING",
    "FailedEntry",
    "Queue",
    "RecoveryReport",
    "open_queue",
]

# Room in a frame for everything of an entry but its payload (id, owner, worker name,
# reason, headers), so that the largest accepted payload is always readable again.
_MAX_PAYLOAD = _r.MAX_BODY - 8192
MAX_WORKER_BYTES = 256
MAX_REASON_BYTES = 4096
_DEFAULTS: dict[str, object] = {
    "max_payload_bytes": 16 * 1024 * 1024,
    "max_attempts": 5,
    "retain_delivered": 0,
    # Every open replays the journal since the last checkpoint: 8 KiB bounds that to a
    # few hundred records (about 0.3 ms), and checkpoints this often cost no throughput
    # measurable in make bench (one checkpoint per ~60 entries, on top of 2 fsyncs each).
    "compact_min_bytes": 8 * 1024,
    "durable_claims": False,
    "create": True,
}
_RANGE = {"max_payload_bytes": (0, _MAX_PAYLOAD), "max_attempts": (1, 0xFFFF),
          "retain_delivered": (0, 1 << 32), "compact_min_bytes": (0, 1 << 40)}


def _validate_options(options: dict[str, object]) -> dict[str, object]:
    unknown = sorted(set(options) - set(_DEFAULTS))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown}: expected one of {sorted(_DEFAULTS)}")
    merged = {**_DEFAULTS, **options}
    for name, value in merged.items():
        if name in _RANGE:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name}={value!r}: expected int, got {type(value).__name__}")
            low, high = _RANGE[name]
            if not low <= value <= high:
                raise usage_error(InvalidArgumentError,
                                  f"{name}={value!r}: expected an int in [{low}, {high}]")
        elif not isinstance(value, bool):
            raise TypeError(f"{name}={value!r}: expected bool, got {type(value).__name__}")
    return merged


def _text(name: str, value: object, limit: int) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name}={value!r}: expected str, got {type(value).__name__}")
    try:
        size = len(value.encode())
    except UnicodeEncodeError:
        raise usage_error(InvalidArgumentError,
                          f"{name}={value!r}: expected text encodable as UTF-8 "
                          "(it holds a lone surrogate)") from None
    if size > limit:
        raise usage_error(InvalidArgumentError,
                          f"{name}: size={size} bytes limit={limit} (UTF-8)")
    return value


def open_queue(directory: str | os.PathLike[str], **options: object) -> Queue:
    """Open (by default create) the queue in ``directory``; see the module docstring."""
    return Queue(directory, _validate_options(options))


@dataclass(frozen=True)
class FailedEntry:
    """An entry that failed ``max_attempts`` times: kept, with its payload, until
    :meth:`Queue.retry_failed` or :meth:`Queue.purge_failed`."""

    id: str
    payload: bytes
    attempts: int
    reason: str


class Queue:
    """A durable FIFO queue shared by any number of processes; see :func:`open_queue`.

    One handle per process: a handle used after ``fork`` raises ForkedHandleError in the
    child (its locks and file offsets are shared with the parent's); open the queue again
    there. Threads of one process may share a handle: its calls are serialised by a
    mutex (flock(2) alone would not, as it is shared by every thread of the handle).
    """

    def __init__(self, directory: str | os.PathLike[str], options: dict) -> None:
        self._dir = _directory.resolve(directory)
        self._max_payload = options["max_payload_bytes"]
        self._max_attempts = options["max_attempts"]
        self._durable_claims = options["durable_claims"]
        self._token = secrets.token_hex(8)
        self._pid = _os.getpid()
        self._mutex = threading.Lock()
        self._seq = 0
        self._closed = False
        self._state = State()
        self._store = Store(self._dir, self._token, self._state,
                            options["retain_delivered"], options["compact_min_bytes"])
        ok = False
        try:
            self.last_recovery: RecoveryReport = self._store.open(options["create"])
            ok = True
        finally:
            if not ok:
                self._store.release()

    @property
    def _entries(self) -> dict[str, Entry]:
        return self._state.entries

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
            parts.append(_r.rec_enqueue(entry_id, payload))
            recs.append(("E", entry_id, payload))
        if ids:
            self._locked(self._enqueue, parts, recs)
        return ids

    def claim(self, worker: str) -> tuple[str, bytes] | None:
        got = self.claim_many(worker, 1)
        return got[0] if got else None

    def claim_many(self, worker: str, n: int) -> list[tuple[str, bytes]]:
        """Move up to ``n`` oldest PENDING entries to PROCESSING for ``worker``."""
        _text("worker", worker, MAX_WORKER_BYTES)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise usage_error(InvalidArgumentError, f"n={n!r}: expected an int >= 0")
        return self._locked(self._claim, worker, n)

    def ack(self, entry_id: str) -> None:
        self.ack_many([entry_id])

    def ack_many(self, ids: Iterable[str]) -> None:
        """PROCESSING -> DELIVERED for every id this handle claimed, all or none."""
        ids = list(ids)
        if ids:
            self._locked(self._ack, ids)

    def fail(self, entry_id: str, reason: str) -> None:
        """Back to PENDING, or FAILED (reason kept) once ``max_attempts`` is reached."""
        _text("reason", reason, MAX_REASON_BYTES)
        self._locked(self._fail, entry_id, reason)

    def failed(self) -> list[FailedEntry]:
        """Every FAILED entry, oldest first, with its payload and last reason."""
        def collect() -> list[FailedEntry]:
            return [FailedEntry(i, e.payload, e.attempts, e.reason)
                    for i, e in self._state.entries.items() if e.state is FAILED]
        return self._locked(collect)

    def retry_failed(self, ids: Iterable[str] | None = None) -> list[str]:
        """FAILED -> PENDING with attempts reset, for ``ids`` (default: all of them)."""
        return self._locked(self._resolve_failed, "Y", ids)

    def purge_failed(self, ids: Iterable[str] | None = None) -> list[str]:
        """Remove FAILED entries (default: all of them) for good, payload included."""
        return self._locked(self._resolve_failed, "X", ids)

    def recover(self) -> RecoveryReport:
        """Requeue claims of dead owners, remove temp debris; report all of it."""
        return self._locked(self._store.recover)

    def compact(self) -> None:
        """Checkpoint now, dropping DELIVERED entries beyond ``retain_delivered``."""
        self._locked(self._store.publish, True)

    def states(self) -> dict[str, str]:
        return self._locked(lambda: {k: e.state for k, e in self._state.entries.items()})

    def stats(self) -> dict:
        if not self._closed:
            self._locked(lambda: None)
        store = self._store
        j = store.journal
        return {
            **self._state.counts,
            "fsyncs": store.fsyncs + (j.fsyncs if j else 0),
            "bytes_written": store.bytes_written + (j.bytes_written if j else 0),
            "journal_bytes": j.end if j else 0,
            "checkpoints": store.checkpoints,
            "torn_tail_repairs": store.torn_repairs,
            "torn_bytes_cut": store.torn_bytes,
            "reserve_bytes_released": store.reserve.released,
            "generation": store.gen,
            "directory": self._dir,
        }

    @property
    def directory(self) -> str:
        return self._dir

    def close(self) -> None:
        """Release the files; our PROCESSING entries become recoverable by others."""
        if not self._closed:
            self._closed = True
            # In a forked child the files are the parent's too: only close our copies.
            self._store.release(forked=_os.getpid() != self._pid)

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Queue directory={self._dir!r} closed={self._closed}>"

    # -- transitions, run under the lock after catching up --------------------------

    def _locked(self, fn: Callable, *args: object) -> object:
        if self._closed:
            raise usage_error(QueueClosedError, f"queue directory={self._dir!r} is closed")
        if _os.getpid() != self._pid:
            raise usage_error(ForkedHandleError,
                              f"queue directory={self._dir!r} was opened by pid {self._pid} "
                              f"and used in pid {_os.getpid()}")
        with self._mutex:
            return self._store.locked(fn, *args)

    def _enqueue(self, parts: list[bytes], recs: list[tuple]) -> None:
        store = self._store
        # Space to drain what is live, this batch included, before accepting it.
        store.reserve.ensure(self._state.live() + len(recs))
        store.commit(parts, recs, True, spend_reserve=False)

    def _claim(self, worker: str, n: int) -> list[tuple[str, bytes]]:
        chosen = self._state.oldest_pending(n)
        if chosen:
            self._store.ensure_owner()
            token = self._token
            # Not fsynced by default: a claim lost to a crash only re-delivers.
            self._store.commit([_r.rec_claim(i, worker, token) for i in chosen],
                               [("C", i, worker, token) for i in chosen],
                               self._durable_claims)
        return list(chosen.items())

    def _ack(self, ids: list[str]) -> None:
        seen: set[str] = set()
        for entry_id in ids:
            self._require(entry_id, PROCESSING, "ack", seen, owned=True)
        self._store.commit([_r.rec_id("A", i) for i in ids], [("A", i) for i in ids], True)

    def _fail(self, entry_id: str, reason: str) -> None:
        entry = self._require(entry_id, PROCESSING, "fail", set(), owned=True)
        final = entry.attempts + 1 >= self._max_attempts
        self._store.commit([_r.rec_fail(entry_id, final, reason)],
                           [("F", entry_id, final, reason)], True)

    def _resolve_failed(self, kind: str, ids: Iterable[str] | None) -> list[str]:
        op = "retry_failed" if kind == "Y" else "purge_failed"
        if ids is None:
            chosen = [i for i, e in self._state.entries.items() if e.state is FAILED]
        else:
            if isinstance(ids, str):
                raise TypeError(f"ids={ids!r}: expected an iterable of entry ids, got str")
            chosen, seen = list(ids), set()
            for entry_id in chosen:
                self._require(entry_id, FAILED, op, seen)
        if chosen:
            self._store.commit([_r.rec_id(kind, i) for i in chosen],
                               [(kind, i) for i in chosen], True)
        return chosen

    def _require(self, entry_id: str, state: str, op: str, seen: set,
                 owned: bool = False) -> Entry:
        if not isinstance(entry_id, str):
            raise TypeError(f"entry_id={entry_id!r}: expected str, "
                            f"got {type(entry_id).__name__}")
        entry = self._state.entries.get(entry_id)
        if entry is None:
            raise usage_error(UnknownEntryError, f"{op}: entry_id={entry_id!r} not found")
        if entry.state is not state or entry_id in seen:
            now = DELIVERED if entry_id in seen and state is PROCESSING else entry.state
            raise usage_error(
                InvalidTransitionError,
                f"{op}: entry_id={entry_id!r} state={now} expected={state}",
            )
        if owned and entry.owner != self._token:
            raise usage_error(
                ClaimMismatchError,
                f"{op}: entry_id={entry_id!r} is held by another claim (worker="
                f"{entry.worker!r}), not by this handle",
            )
        seen.add(entry_id)
        return entry

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
