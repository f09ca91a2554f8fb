"""Follow every entry through a history: the facts the checker reads its verdicts from.

One pass over the records, in order. Client calls are paired (an invoke and the
next completion of the same process); every entry key gets an `EntryTrace`
holding its calls and a small state machine of who owes it to whom:

- ``maybe``: enqueue invoked, not (yet) known to be in the queue;
- ``owed``: it is in the queue and must come out (enqueue ok, or a claim of it
  released by a crash, a restart, a close, a failed ack or the drain starting);
- ``held``: a claim returned it and that processor still holds it;
- ``done``: an ack of it returned ok;
- ``maybe_done``: an ack of it ended unknown (it may have been consumed).

Nothing here decides a verdict; `harness.check.checker` does, from these facts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.check.history import DRAIN, PROBE, FaultEvent, FsOp, History, Op, entry_key
from harness.check.states import live_states, qid

__all__ = ["Call", "Release", "Duplicate", "FaultMark", "EntryTrace", "Phantom", "Trace",
    "trace", "RUNNER_KILL"]

RUNNER_KILL = "kill"
"""`FaultEvent.kind` of the runner's own kills (``Shim.kill``/``kill_all``): crashes that
release claims, but not faults: no fault list or explanation names them."""

HOLDING = ("owed", "held")
"""End states in which the entry still had to come out."""


def _payload(value: Any) -> bytes | None:
    raw = value.get("payload") if isinstance(value, dict) else None
    if isinstance(raw, str):  # a client that hands text to the target
        return raw.encode()
    return bytes(raw) if isinstance(raw, bytes | bytearray) else None


def _id_of(value: Any) -> str | None:
    return qid(value.get("id")) if isinstance(value, dict) else None


@dataclass
class Call:
    """One client call: its invoke and its completion (None when it never completed)."""

    invoke: Op
    done: Op | None = None

    @property
    def outcome(self) -> str:
        # A call whose completion never came (its processor died) is of unknown outcome.
        return self.done.type if self.done is not None else "info"

    @property
    def process(self) -> int:
        return self.invoke.process

    @property
    def indexes(self) -> tuple[int, ...]:
        return (self.invoke.index,) if self.done is None else (self.invoke.index, self.done.index)


@dataclass(frozen=True)
class Release:
    """A claim that stopped being held without an ack ok: it had to come out again."""

    claim: int
    process: int
    at: int
    why: str
    cause: FaultEvent | None = None


@dataclass(frozen=True)
class Duplicate:
    """A claim ok that should not have happened: after an ack ok, or while still held."""

    claim: int
    process: int
    reason: str  # "acked" or "held"
    earlier: int  # index of the ack ok, or of the claim still held
    earlier_process: int


@dataclass(frozen=True)
class FaultMark:
    """A fault that fired: an FsOp with ``fault`` set, or a FaultEvent."""

    index: int
    process: int
    fault: str
    record: FsOp | FaultEvent


@dataclass
class EntryTrace:
    """Everything the history says about one entry key."""

    key: str
    payload: bytes | None
    enqueues: list[Call] = field(default_factory=list)
    claims: list[Call] = field(default_factory=list)
    acks: list[Call] = field(default_factory=list)
    ids: dict[str, None] = field(default_factory=dict)
    status: str = "maybe"
    holders: dict[int, int] = field(default_factory=dict)  # process -> index of its claim ok
    claimed_by: dict[int, None] = field(default_factory=dict)
    acked_at: int | None = None
    last_seen: int = -1  # enqueue ok (or invoke when not ok) or the latest claim ok
    released: list[Release] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    corrupt: list[Call] = field(default_factory=list)
    held_at_ack: dict[int, int] = field(default_factory=dict)  # holders when the ack ok came
    final_state: tuple[int, str, str] | None = None  # (states op index, queue id, state)

    @property
    def first(self) -> int:
        return self.enqueues[0].invoke.index if self.enqueues else self.last_seen

    def enqueue_ok(self) -> Call | None:
        return next((c for c in self.enqueues if c.outcome == "ok"), None)

    def ops(self) -> tuple[int, ...]:
        """Indexes of its enqueue invoke/completion, the claims that returned it, its acks."""
        out: set[int] = set()
        for call in self.enqueues + self.acks:
            out.update(call.indexes)
        out.update(c.done.index for c in self.claims if c.done is not None)
        if self.final_state is not None:
            out.add(self.final_state[0])
        return tuple(sorted(out))


@dataclass
class Phantom:
    """Claims that returned a payload no enqueue ever invoked, grouped by queue id."""

    name: str
    key: str | None
    claims: list[Call] = field(default_factory=list)


@dataclass
class Trace:
    entries: dict[str, EntryTrace]
    phantoms: dict[str, Phantom]
    marks: list[FaultMark]
    end: int  # one past the last index
    states: Op | None = None
    drain_start: int | None = None
    errors: list[FsOp] = field(default_factory=list)  # file calls that failed, in order
    # (process, call, path, path2) -> indexes of its calls that succeeded: a failed call
    # followed by the same call succeeding inside one client call was retried, not swallowed
    retried: dict[tuple, list[int]] = field(default_factory=dict)
    reports: dict[int, str] = field(default_factory=dict)  # damage at rest -> how reported
    # claims whose processor died inside them (outcome unknown): index where each ended;
    # one may have taken an entry, which an at-most-once queue is allowed to lose then
    dead_claims: list[int] = field(default_factory=list)


WRITES = frozenset({"write", "truncate", "replace", "unlink", "mkdir", "rmdir", "copy"})
"""File calls that change what is on disk (an ``open`` may or may not: its mode is not kept)."""


def trace(history: History) -> Trace:
    """Walk the history once and return the facts for every entry."""
    return _Walker(list(history)).run()


class _Walker:
    def __init__(self, records: list) -> None:
        self.records = records
        self.entries: dict[str, EntryTrace] = {}
        # Pre-pass: which keys were ever invoked, and with which bytes (phantom and corrupt).
        for rec in records:
            if isinstance(rec, Op) and rec.f == "enqueue" and rec.type == "invoke":
                payload = _payload(rec.value)
                key = rec.key or entry_key(payload)
                if key is not None and key not in self.entries:
                    self.entries[key] = EntryTrace(key, payload, last_seen=rec.index)
        self.phantoms: dict[str, Phantom] = {}
        self.marks: list[FaultMark] = []
        self.errors: list[FsOp] = []
        self.oks: dict[tuple, list[int]] = {}
        self.dead_claims: list[int] = []
        self.last_write: dict[int, int] = {}  # process -> index of its latest change to the disk
        self.pending: dict[int, Call] = {}
        self.held_by: dict[int, dict[str, None]] = {}  # dicts, not sets: stable order
        self.id_map: dict[str, str] = {}
        self.states: Op | None = None
        self.drain_start: int | None = None

    def run(self) -> Trace:
        for rec in self.records:
            if isinstance(rec, FsOp):
                if rec.fault:
                    self.marks.append(FaultMark(rec.index, rec.process, rec.fault, rec))
                if rec.outcome not in ("ok", "killed"):
                    self.errors.append(rec)
                    self.oks.setdefault((rec.process, rec.call, rec.path, rec.path2), [])
                else:
                    if rec.call in WRITES:
                        self.last_write[rec.process] = rec.index
                    oks = self.oks.get((rec.process, rec.call, rec.path, rec.path2))
                    if oks is not None:  # only calls that once failed are worth keeping
                        oks.append(rec.index)
            elif isinstance(rec, FaultEvent):
                stop = rec.kind == RUNNER_KILL
                if not stop:
                    self.marks.append(FaultMark(rec.index, rec.process, rec.fault, rec))
                why = f"the runner stopped it ({rec.fault})" if stop else "it crashed"
                for p in rec.crashed:
                    self._abandon(p, rec.index)
                    self._release(p, rec.index, why, None if stop else rec)
            elif isinstance(rec, Op):
                self._op(rec)
        end = self.records[-1].index + 1 if self.records else 0
        for p in list(self.pending):
            self._abandon(p, end)
        self._final_states()
        return Trace(self.entries, self.phantoms, self.marks, end, self.states, self.drain_start,
                     self.errors, self.oks, dead_claims=self.dead_claims)

    # -- pairing

    def _op(self, op: Op) -> None:
        if op.process == DRAIN and self.drain_start is None:
            # The drain is a fresh queue after every processor closed: nothing is held any more.
            self.drain_start = op.index
            for p in list(self.held_by):
                self._release(p, op.index, "the final drain started")
        if op.type == "invoke":
            self._abandon(op.process, op.index)
            call = Call(op)
            self.pending[op.process] = call
            if op.f == "enqueue":
                entry = self.entries.get(op.key or entry_key(_payload(op.value)) or "")
                if entry is not None:
                    entry.enqueues.append(call)
            elif op.f in ("open", "close"):
                why = "it restarted (open)" if op.f == "open" else "it closed the queue"
                self._release(op.process, op.index, why)
            elif op.f == "recover":
                # The contract lets recover() hand every claim out again (it runs with no
                # other processor in a call), so nothing held before it is held after it.
                for p in list(self.held_by):
                    self._release(p, op.index, f"process {op.process} ran recover()")
            return
        call = self.pending.pop(op.process, None)
        if call is None or call.invoke.f != op.f:
            return  # a stray completion: nothing to pair it with
        call.done = op
        getattr(self, f"_{op.f}_done", lambda _call: None)(call)

    def _abandon(self, process: int, at: int) -> None:
        """A call that never completed: for an ack, the outcome is unknown (it may have applied)."""
        call = self.pending.pop(process, None)
        if call is not None and call.invoke.f == "ack":
            self._ack(call, "info", at)
        elif call is not None and call.invoke.f == "claim":
            self.dead_claims.append(at)

    # -- per function

    def _enqueue_done(self, call: Call) -> None:
        entry = self.entries.get(call.invoke.key or entry_key(_payload(call.invoke.value)) or "")
        if entry is None or call.outcome != "ok":
            return
        ident = _id_of(call.done.value)
        if ident is not None:
            self.id_map[ident] = entry.key
            entry.ids[ident] = None
        entry.last_seen = max(entry.last_seen, self._landed(call))
        if entry.status == "maybe":
            entry.status = "owed"

    def _landed(self, call: Call) -> int:
        """When the call's bytes last reached the disk: its last write inside it, else its
        invoke. A fault that deletes them after that point (even before the call returned)
        destroyed them."""
        wrote = self.last_write.get(call.process, -1)
        return wrote if call.invoke.index < wrote < call.done.index else call.invoke.index

    def _claim_done(self, call: Call) -> None:
        value = call.done.value
        if call.outcome == "info":
            self.dead_claims.append(call.done.index)
        if call.outcome != "ok" or not isinstance(value, dict):
            return  # None: the queue was empty
        payload, ident, at = _payload(value), _id_of(value), call.done.index
        key = entry_key(payload)
        if call.process == DRAIN and payload is not None and payload.startswith(PROBE):
            return  # the drain's own liveness probe (checked by the drain itself)
        entry = self.entries.get(key or "")
        if entry is None and key is None and ident in self.id_map:
            # Its bytes no longer carry a key, but the queue id is one an enqueue returned
            # (or a claim showed) for an entry still owed: that entry came out with wrong
            # bytes, which is corrupt, not a loss plus a phantom. (Once it was consumed a
            # queue may hand its id to a new entry.)
            known = self.entries[self.id_map[ident]]
            entry = known if known.status != "done" else None
        if entry is None:
            name = ident if ident is not None else f"claim@{at}"
            if name in self.entries:  # a queue id spelled like an entry key: keep both apart
                name = f"id {name}"
            self.phantoms.setdefault(name, Phantom(name, key)).claims.append(call)
            return
        if ident is not None:
            self.id_map[ident] = entry.key
            entry.ids[ident] = None
        if payload != entry.payload:
            entry.corrupt.append(call)
        p = call.process
        seen = len(entry.duplicates)
        if entry.acked_at is not None:
            ack = next(a for a in entry.acks if a.outcome == "ok")
            if call.invoke.index > entry.acked_at:
                entry.duplicates.append(Duplicate(at, p, "acked", entry.acked_at, ack.process))
            else:
                # The claim was under way when the ack returned: it may have taken effect
                # before the ack (as Knossos would order it). Then it is a duplicate only if
                # someone else held the entry at that moment.
                others = [(q, i) for q, i in entry.held_at_ack.items() if q != p]
                if others:
                    entry.duplicates.append(Duplicate(at, p, "held", others[0][1], others[0][0]))
        elif entry.holders:
            holder, since = next(iter(entry.holders.items()))
            entry.duplicates.append(Duplicate(at, p, "held", since, holder))
        entry.claims.append(call)
        entry.claimed_by[p] = None
        if entry.acked_at is not None and len(entry.duplicates) == seen:
            return  # taken before the ack that consumed it (see above): it stays done
        entry.holders[p] = at
        self.held_by.setdefault(p, {})[entry.key] = None
        entry.status = "held"
        # Handed out from memory after its files were deleted is not surviving the deletion:
        # only a write inside the claim (a directory re-created) is.
        entry.last_seen = max(entry.last_seen, self._landed(call))

    def _ack_done(self, call: Call) -> None:
        self._ack(call, call.outcome, call.done.index)

    def _states_done(self, call: Call) -> None:
        if call.process == DRAIN and call.outcome == "ok" and isinstance(call.done.value, dict):
            self.states = call.done

    def _ack(self, call: Call, outcome: str, at: int) -> None:
        key = call.invoke.key or (call.done.key if call.done is not None else None)
        key = key or self.id_map.get(_id_of(call.invoke.value) or "")
        entry = self.entries.get(key or "")
        p = call.process
        if entry is None or p not in entry.claimed_by:
            return  # an ack of something this process never claimed says nothing of an entry
        entry.acks.append(call)
        if outcome == "ok":
            if entry.acked_at is None:
                entry.acked_at = at
                entry.held_at_ack = dict(entry.holders)
            for holder in entry.holders:
                self.held_by.get(holder, {}).pop(entry.key, None)
            entry.holders.clear()
            entry.status = "done"
        elif outcome == "info":
            self._drop_hold(entry, p)
            if not entry.holders and entry.status in HOLDING:
                entry.status = "maybe_done"
        else:
            claim = self._drop_hold(entry, p)
            if claim is not None:
                entry.released.append(Release(claim, p, at, "its ack failed"))
            if not entry.holders and entry.status == "held":
                entry.status = "owed"

    # -- releases

    def _drop_hold(self, entry: EntryTrace, process: int) -> int | None:
        self.held_by.get(process, {}).pop(entry.key, None)
        return entry.holders.pop(process, None)

    def _release(self, process: int, at: int, why: str, cause: FaultEvent | None = None) -> None:
        for key in list(self.held_by.pop(process, {})):
            entry = self.entries[key]
            claim = entry.holders.pop(process, None)
            if claim is None:
                continue
            entry.released.append(Release(claim, process, at, why, cause))
            if not entry.holders and entry.status == "held":
                entry.status = "owed"

    def _final_states(self) -> None:
        if self.states is None:
            return
        for ident, name in live_states(self.states.value):
            key = self.id_map.get(qid(ident) or "")
            if key is not None:
                entry = self.entries[key]
                if entry.final_state is None:
                    entry.final_state = (self.states.index, qid(ident), name)
