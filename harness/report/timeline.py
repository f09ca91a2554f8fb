"""A compact, JSON-ready story of one run, kept in the report so the HTML can draw it later.

The full history of a run has every intercepted file call (thousands of records);
the picture needs much less: each client call (its invoke and completion index, its
processor, function, entry key and outcome) and each fault marker (where it fired,
on which processor, what it did). `compact` keeps only that, as lists rather than
objects so that a failing scenario adds tens of kilobytes to the JSON, not megabytes.

Shape (``fields`` names the columns, so a reader needs no code to decode it)::

    {"end": 1049, "drain_at": 1010,
     "fields": {"calls": [...], "marks": [...]},
     "calls": [[41, 44, 0, "enqueue", "e1", "ok", null], ...],
     "marks": [[91, -2, "power_loss", 0, "power lost; ...", [0]], ...],
     "faults": ["PowerLoss(at_op=80)"],
     "omitted": {"calls": 0, "marks": 0}}

Indexes are history indexes: the ``op`` numbers the checker's sentences cite, so a
violation's ``ops`` point straight into this timeline. A mark's third column is the
fault kind (``"disk_full"``...), or ``"kill"`` for the runner's own stops, which are not
faults; its fourth indexes ``faults`` (the fault's replaying repr) or is None.
"""

from __future__ import annotations

from typing import Any

from harness.check.history import DRAIN, FaultEvent, FsOp, History, Op
from harness.faults import FAULTS

__all__ = ["CALL_FIELDS", "MARK_FIELDS", "MAX_CALLS", "MAX_MARKS", "compact"]

CALL_FIELDS = ("invoke", "done", "process", "f", "key", "outcome", "error")
MARK_FIELDS = ("index", "process", "kind", "fault", "what", "crashed")

MAX_CALLS = 4000
"""Client calls kept per scenario; beyond this the picture would be unreadable anyway."""

MAX_MARKS = 400
"""Fault markers kept per scenario (a persistent fault can fire on every call)."""

_ERROR_CHARS = 120  # an exception text is a tooltip, not a log

_KIND_OF_CLASS = {cls.__name__: kind for kind, cls in FAULTS.items()}


def _kind_of_repr(text: str) -> str:
    return _KIND_OF_CLASS.get(text.split("(", 1)[0], "fault")


def _what(r: FsOp) -> str:
    parts = [r.call, r.path or "", f"-> {r.path2}" if r.path2 else "", f"-> {r.outcome}"]
    return " ".join(p for p in parts if p)


def compact(history: History) -> dict[str, Any]:
    """The timeline of `history` (see the module docstring for its shape)."""
    calls: list[list[Any]] = []
    marks: list[list[Any]] = []
    faults: list[str] = []
    fault_ref: dict[str, int] = {}
    open_call: dict[int, list[Any]] = {}
    omitted = {"calls": 0, "marks": 0}
    drain_at = None
    records = list(history.records)

    def ref(text: str) -> int:
        if text not in fault_ref:
            fault_ref[text] = len(faults)
            faults.append(text)
        return fault_ref[text]

    def mark(row: list[Any]) -> None:
        if len(marks) < MAX_MARKS:
            marks.append(row)
        else:
            omitted["marks"] += 1

    for r in records:
        if isinstance(r, Op):
            if r.process == DRAIN and drain_at is None:
                drain_at = r.index
            if r.type == "invoke":
                row = [r.index, None, r.process, r.f, r.key, "pending", None]
                open_call[r.process] = row
                if len(calls) < MAX_CALLS:
                    calls.append(row)
                else:
                    omitted["calls"] += 1
                continue
            row = open_call.pop(r.process, None)
            if row is None:  # a completion without its invoke: a hand-written history
                continue
            row[1], row[5] = r.index, r.type
            # a claim learns its key only when it returns
            row[4] = r.key if r.key is not None else row[4]
            if r.error:
                row[6] = r.error[:_ERROR_CHARS]
        elif isinstance(r, FsOp) and r.fault:
            mark([r.index, r.process, _kind_of_repr(r.fault), ref(r.fault), _what(r), []])
        elif isinstance(r, FaultEvent):
            is_fault = r.kind != "kill"
            mark([r.index, r.process, r.kind if is_fault else "kill",
                  ref(r.fault) if is_fault else None, r.effect, list(r.crashed)])
    for row in open_call.values():
        row[5] = "info"  # never completed: its processor died inside it
    return {
        "end": len(records),
        "drain_at": drain_at,
        "fields": {"calls": list(CALL_FIELDS), "marks": list(MARK_FIELDS)},
        "calls": calls,
        "marks": marks,
        "faults": faults,
        "omitted": omitted,
    }
