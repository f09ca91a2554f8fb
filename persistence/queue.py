"""The durable multi-process queue: the public API and the entry state machine.

An entry moves PENDING -> PROCESSING (claim) -> DELIVERED (ack), or back to PENDING
(fail, or its claimer died) until ``max_attempts`` makes it FAILED. Each operation is
validated against the state as it is *now*: :meth:`~persistence._store.Store.locked`
has caught up with every other process's journal records before it runs. The files,
the lock, checkpoints and recovery are in ``_store.py``; the in-memory state is in
``_state.py``; the on-disk formats are in ``journal.py``.

Durability: enqueue, ack and fail fsync their records before returning; a claim is
not fsynced unless ``durable_claims`` (a lost claim only re-delivers the entry after
a crash, it never loses one). A failed append leaves no trace, on disk or in memory.
"""

from __future__ import annotations

import os.path
import secrets
from collections.abc import Callable, Iterable

from . import journal as _j
from ._recovery import RecoveryReport
from ._state import DELIVERED, FAILED, PENDING, PROCESSING, Entry, State
from ._store import Store
from .errors import (
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
    "Queue",
    "RecoveryReport",
    "open_queue",
]

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


def open_queue(directory: str | os.PathLike[str], **options: object) -> Queue:
    """Open (by default create) the queue in ``directory``; see the module docstring."""
    return Queue(directory, _validate_options(options))


class Queue:
    """A durable FIFO queue shared by any number of processes; see :func:`open_queue`."""

    def __init__(self, directory: str | os.PathLike[str], options: dict) -> None:
        self._dir = os.path.abspath(os.fspath(directory))
        self._max_payload = options["max_payload_bytes"]
        self._max_attempts = options["max_attempts"]
        self._durable_claims = options["durable_claims"]
        self._token = secrets.token_hex(8)
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
            parts.append(_j.rec_enqueue(entry_id, payload))
            recs.append(("E", entry_id, payload))
        if ids:
            self._locked(self._store.commit, b"".join(parts), recs, True)
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
            self._store.release()

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
        return self._store.locked(fn, *args)

    def _claim(self, worker: str, n: int) -> list[tuple[str, bytes]]:
        chosen = self._state.oldest_pending(n)
        if chosen:
            token = self._token
            data = b"".join(_j.rec_claim(i, worker, token) for i in chosen)
            recs = [("C", i, worker, token) for i in chosen]
            # Not fsynced by default: a claim lost to a crash only re-delivers.
            self._store.commit(data, recs, self._durable_claims)
        return list(chosen.items())

    def _ack(self, ids: list[str]) -> None:
        seen: set[str] = set()
        for entry_id in ids:
            self._require(entry_id, PROCESSING, "ack", seen)
        self._store.commit(b"".join(map(_j.rec_ack, ids)), [("A", i) for i in ids], True)

    def _fail(self, entry_id: str, reason: str) -> None:
        entry = self._require(entry_id, PROCESSING, "fail", set())
        final = entry.attempts + 1 >= self._max_attempts
        self._store.commit(
            _j.rec_fail(entry_id, final, reason), [("F", entry_id, final, reason)], True)

    def _require(self, entry_id: str, state: str, op: str, seen: set) -> Entry:
        entry = self._state.entries.get(entry_id)
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
