"""The queue's in-memory state: entries, their states, and the FIFO of pending ids.

No I/O happens here. The state only ever changes by replaying journal records
(:meth:`State.apply`) or loading a checkpoint (:meth:`State.load`), both of which
describe outcomes that are already durable, so memory never runs ahead of the disk.

Every per-operation step is O(1) whatever the queue's length: the PENDING FIFO is a
deque whose stale ids (claimed, dropped or re-queued further back) are skipped lazily
when they reach its head, rather than searched for and removed.

Owns the in-memory state; may import nothing of ``persistence`` (the bottom layer).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator

__all__ = ["DELIVERED", "FAILED", "PENDING", "PROCESSING", "Entry", "State"]

PENDING, PROCESSING, DELIVERED, FAILED = "PENDING", "PROCESSING", "DELIVERED", "FAILED"
_log = logging.getLogger("persistence")


class Entry:
    """One entry; ``owner`` is the claimer's owner token (see ``owners/`` in _store)."""

    __slots__ = ("attempts", "owner", "payload", "reason", "state", "worker")

    def __init__(self, state: str, payload: bytes | None) -> None:
        self.state, self.payload = state, payload
        self.attempts, self.reason, self.owner, self.worker = 0, "", "", ""


class State:
    """Entries by id plus the indexes the operations need in O(1)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.pending: deque[str] = deque()  # FIFO; stale ids are skipped lazily
        self.delivered: deque[str] = deque()  # delivery order, for retention
        # claimed entries in claim order (a dict, not a set: recovery re-queues them in
        # this order, and a set's order of strings changes with PYTHONHASHSEED, so the
        # same journal re-queued in another order from one process to the next)
        self.processing: dict[str, None] = {}
        self.counts = dict.fromkeys((PENDING, PROCESSING, DELIVERED, FAILED), 0)

    def oldest_pending(self, n: int) -> dict[str, bytes]:
        """Up to ``n`` oldest PENDING entries (id -> payload), without changing them."""
        pending, entries = self.pending, self.entries
        while pending and getattr(entries.get(pending[0]), "state", None) is not PENDING:
            pending.popleft()  # stale: claimed, dropped or re-queued further back
        chosen: dict[str, bytes] = {}
        for entry_id in pending:
            if len(chosen) >= n:
                break
            entry = entries.get(entry_id)
            if entry is not None and entry.state is PENDING and entry_id not in chosen:
                chosen[entry_id] = entry.payload
        return chosen

    def live(self) -> int:
        """Entries that still need a claim, ack or fail (what the reserve covers)."""
        counts = self.counts
        return counts[PENDING] + counts[PROCESSING] + counts[FAILED]

    def _move(self, entry: Entry, state: str) -> None:
        counts = self.counts
        counts[entry.state] -= 1
        counts[state] += 1
        entry.state = state

    def apply(self, rec: tuple) -> None:
        """Replay one journal record (see _records.py for the kinds)."""
        kind, entry_id = rec[0], rec[1]
        if kind == "E":
            self.entries[entry_id] = Entry(PENDING, rec[2])
            self.pending.append(entry_id)
            self.counts[PENDING] += 1
            return
        entry = self.entries.get(entry_id)
        if entry is None:
            _log.warning("journal record for unknown entry ignored: kind=%s id=%r", kind, rec[1])
            return
        if kind == "C":
            self._move(entry, PROCESSING)
            entry.worker, entry.owner = rec[2], rec[3]
            self.processing[entry_id] = None
            if self.pending and self.pending[0] == entry_id:
                self.pending.popleft()  # so a failed entry retries from the back
        elif kind == "A":
            self._move(entry, DELIVERED)
            entry.payload = None  # delivered payloads are never read again
            self.delivered.append(entry_id)
            self.processing.pop(entry_id, None)
        elif kind == "F":
            entry.attempts += 1
            entry.reason = rec[3]
            self.processing.pop(entry_id, None)
            self._move(entry, FAILED if rec[2] else PENDING)
            if not rec[2]:
                self.pending.append(entry_id)
        elif kind == "R":
            self._move(entry, PENDING)
            self.processing.pop(entry_id, None)
            self.pending.append(entry_id)
        elif kind == "Y":  # retry: a FAILED entry starts over
            self._move(entry, PENDING)
            entry.attempts, entry.reason = 0, ""
            self.pending.append(entry_id)
        elif kind == "X":  # purge: a FAILED entry is removed for good
            self.counts[entry.state] -= 1
            del self.entries[entry_id]

    def load(self, body: list[tuple]) -> None:
        """Replace everything with a checkpoint's ``N`` records, in their queue order."""
        self.reset()
        for _, entry_id, state, attempts, owner, worker, reason, payload in body:
            entry = Entry(state, payload if state is not DELIVERED else None)
            entry.attempts, entry.owner, entry.worker, entry.reason = (
                attempts, owner, worker, reason)
            self.entries[entry_id] = entry
            self.counts[state] += 1
            # The decoder hands out fresh strings; the operations compare states with
            # `is`, so each is re-bound to this module's constant.
            if state == PENDING:
                entry.state = PENDING
                self.pending.append(entry_id)
            elif state == DELIVERED:
                entry.state = DELIVERED
                self.delivered.append(entry_id)
            elif state == PROCESSING:
                entry.state = PROCESSING
                self.processing[entry_id] = None
            else:
                entry.state = FAILED

    def snapshot(self, retain: int) -> Iterator[tuple]:
        """Live entries in queue order, without DELIVERED ones beyond ``retain``."""
        entries = self.entries
        for entry_id, e in entries.items():
            if e.state is PROCESSING or e.state is FAILED:
                yield entry_id, e.state, e.attempts, e.owner, e.worker, e.reason, e.payload
        keep = list(self.delivered)[-retain:] if retain else []
        for entry_id in keep:
            e = entries[entry_id]
            yield entry_id, DELIVERED, e.attempts, e.owner, e.worker, e.reason, b""
        seen = set()
        for entry_id in self.pending:
            e = entries.get(entry_id)
            if e is not None and e.state is PENDING and entry_id not in seen:
                seen.add(entry_id)
                yield entry_id, PENDING, e.attempts, e.owner, e.worker, e.reason, e.payload

    def drop_delivered(self, retain: int) -> None:
        """Forget DELIVERED entries beyond the newest ``retain`` (once checkpointed)."""
        delivered = self.delivered
        while len(delivered) > retain:
            if self.entries.pop(delivered.popleft(), None) is not None:
                self.counts[DELIVERED] -= 1
