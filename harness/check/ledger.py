"""The incremental check of explore: a fault-free sequential prefix, reduced to what can matter.

`harness explore` checks thousands of states that share one fault-free prefix (the
history of a single processor up to the op where the fault strikes) and differ only in
what follows: the fault, the processor's death or the rest of its call, the final drain.
Checking each state's whole history would make the cost of a state grow with the op it
is at, so the cost of an exploration would be quadratic in the workload.

A `Ledger` follows the prefix as it is recorded and keeps, per entry, the records of its
completed calls. An entry whose ack returned ok in the prefix is *settled*: the checker
calls it ``delivered`` unless something after the prefix mentions it again (a drain
claim of it, or its id PENDING or PROCESSING in the drain's ``states()``).
`Ledger.reduced` builds, for one state, a history of the calls of the unsettled entries,
the calls of settled entries the suffix mentions, the processor's open/close/recover
calls, everything of the call in flight, and the suffix; the settled entries left out
are added back to the counts as ``delivered``. Left out as well: file calls of completed
prefix calls that returned ok (no fault fired in the prefix, so they carry no fault
mark, and a fault after the prefix compares the same with any index before it). File
calls that failed are kept, as they can make a later symptom a ``silent_error``.

The reduction relies on the prefix being fault-free, single-processor and sequential,
with every completed call ok; `Ledger.exact` says whether that held, and explore falls
back to the full check otherwise. tests/harness/search/test_explore.py checks that the two
agree, state by state.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from harness.check.checker import Result, check
from harness.check.history import FaultEvent, FsOp, History, Op, entry_key
from harness.check.states import live_states

__all__ = ["Ledger"]

_PROCESS_CALLS = ("open", "close", "recover")


def _ident(value: Any) -> str | None:
    raw = value.get("id") if isinstance(value, dict) else None
    return None if raw is None else str(raw)


class Ledger:
    """Follows a fault-free single-processor history; builds reduced histories of its states."""

    def __init__(self, history: History) -> None:
        self.history = history
        self.exact = True
        self._seen = 0
        self._start: int | None = None  # index of the invoke in flight
        self._by_key: dict[str, list[Any]] = {}
        self._process_ops: list[Op] = []
        self._settled_at: dict[str, int] = {}  # key -> how many were settled before it
        self._ids: dict[str, str] = {}  # queue id -> key
        self._open: dict[str, None] = {}  # unsettled keys, in order of first appearance

    # -- following the prefix

    def follow(self) -> None:
        """Take in the records appended since the last call."""
        records = self.history.records
        while self._seen < len(records):
            rec = records[self._seen]
            self._seen += 1
            if isinstance(rec, Op):
                if rec.type == "invoke":
                    self._start = rec.index
                else:
                    self._complete(rec)
            elif isinstance(rec, FaultEvent) or (isinstance(rec, FsOp) and rec.fault):
                self.exact = False  # a fault in the prefix: only the full check is safe

    def _complete(self, done: Op) -> None:
        start, self._start = self._start, None
        if start is None or done.type != "ok":
            self.exact = False
            return
        records = self.history.records
        invoke = records[start]
        kept = [invoke] + [r for r in records[start + 1:done.index]
                           if isinstance(r, FsOp) and r.outcome not in ("ok", "killed")]
        kept.append(done)
        if done.f in _PROCESS_CALLS:
            self._process_ops.extend(kept)
            return
        key = done.key or invoke.key
        if key is None:
            return  # a claim that found the queue empty says nothing of any entry
        self._by_key.setdefault(key, []).extend(kept)
        ident = _ident(done.value)
        if ident is not None:
            self._ids[ident] = key
        if done.f == "ack":
            self._open.pop(key, None)
            self._settled_at.setdefault(key, len(self._settled_at))
        elif key not in self._settled_at:
            self._open[key] = None

    # -- one state

    def mark(self) -> tuple[int, int, tuple[str, ...], int]:
        """Where the prefix stands now: (cut, start of the call in flight, open keys, settled)."""
        self.follow()
        cut = len(self.history.records)
        start = self._start if self._start is not None else cut
        return cut, start, tuple(self._open), len(self._settled_at)

    def reduced(self, mark: tuple[int, int, tuple[str, ...], int],
                suffix: list[Any]) -> tuple[History, int]:
        """The reduced history of prefix ``mark`` + ``suffix``, and the settled entries left out.

        ``suffix`` records carry indices from ``cut`` on, so the result is in index order.
        """
        cut, start, open_keys, settled = mark
        touched = self._touched(suffix)
        keys = dict.fromkeys(open_keys)
        back = 0
        for key in touched:
            at = self._settled_at.get(key)
            if at is not None and at < settled:
                keys[key] = None
                back += 1
        picked = [r for r in self._process_ops if r.index < start]
        for key in keys:
            picked += [r for r in self._by_key.get(key, ()) if r.index < start]
        picked.sort(key=lambda r: r.index)
        # Indexes stay the full history's (increasing, with gaps where settled entries were
        # left out): the checker orders by them and never uses them as positions, and its
        # sentences then cite the ops of the real run.
        records = picked + self.history.records[start:cut] + list(suffix)
        return History(records=records), settled - back

    def _touched(self, suffix: list[Any]) -> set[str]:
        keys: set[str] = set()
        for rec in suffix:
            if not isinstance(rec, Op):
                continue
            if rec.key:
                keys.add(rec.key)
            value = rec.value
            if isinstance(value, dict):
                key = entry_key(value.get("payload"))
                if key:
                    keys.add(key)
                if rec.f == "states":  # only a live state can make an entry stuck
                    keys.update(self._ids[str(i)] for i, _state in live_states(value)
                                if str(i) in self._ids)
                ident = _ident(value)
                if ident in self._ids:
                    keys.add(self._ids[ident])
        return keys

    def check(self, mark: tuple[int, int, tuple[str, ...], int], suffix: list[Any]) -> Result:
        """The checker's verdict on prefix + suffix, from the reduced history when exact."""
        if not self.exact:
            return self.full_check(mark, suffix)
        history, left_out = self.reduced(mark, suffix)
        result = check(history)
        if left_out:
            counts = dict(result.counts)
            for name in ("delivered", "enqueued", "enqueue_ok", "acked"):
                counts[name] = counts.get(name, 0) + left_out
            result = replace(result, counts=counts)
        return result

    def full_check(self, mark: tuple[int, int, tuple[str, ...], int],
                   suffix: list[Any]) -> Result:
        """The checker on the whole history (op numbers as in the run): for the report."""
        cut = mark[0]
        return check(History(records=self.history.records[:cut] + list(suffix)))
