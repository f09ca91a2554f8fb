"""When a run's verdict is not about the target: nothing ran, the fault never fired, or
the harness or the adapter broke.

A run can only fail or pass a target if the target was exercised under the scenario's
faults. These rules turn the other cases into ``error`` or ``no_fault_fired`` instead of
a verdict, for thread mode (`harness.run.runner`) and process mode (`harness.run.processes`)
alike:

- the scenario's own fault (its ``fault`` key: the kind it is about) must have fired
  (`own_fired`): a power-loss scenario whose power loss never came, while only processor
  switches did, tested something else; other faults of the plan that never fired are
  named in the observations (`unfired`);
- the target must open on an empty directory, and take its first entry, before any
  fault fired (`refused_open`): a constructor or an adapter that raises there breaks the
  contract, and is not "stuck" or "unavailable" entries;
- some enqueue of the workload must have returned ok (`never_ran`), unless the checker
  found a violation (a queue that broke at the first fault and stayed unavailable is a
  finding): otherwise there was nothing to judge;
- an exception in the harness's own code (`harness.intercept.shim.HarnessError`) ends the run as
  an error naming the harness.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.check.history import DRAIN, FaultEvent, FsOp, History, Op

__all__ = ["unfired", "own_fired", "refused_open", "never_ran", "harness_error"]


def unfired(faults: Sequence[Any], counts: Sequence[int], switches: int) -> list[str]:
    """Reprs of the plan's faults that never fired (`ConcurrentProcessors` fires when the
    processors really switched, or overlapped, inside calls)."""
    out = []
    for fault, n in zip(faults, counts, strict=True):
        fired = switches if fault.kind == "concurrent_processors" else n
        if not fired:
            out.append(repr(fault))
    return out


def own_fired(kind: str, faults: Sequence[Any], counts: Sequence[int], switches: int) -> bool:
    """Did any fault of the scenario's own kind fire?"""
    return any((switches if f.kind == "concurrent_processors" else n) > 0
               for f, n in zip(faults, counts, strict=True) if f.kind == kind)


def refused_open(history: History) -> str | None:
    """The target's exception if its very first open, or its very first enqueue, raised
    before any fault had fired: it breaks the contract with nothing wrong on the disk.
    Not when another processor had started too: two constructors racing on a new
    directory is the target's concurrency (a finding, or outside its promises)."""
    seen: set[int] = set()
    for rec in history.records:
        if isinstance(rec, FaultEvent) or (isinstance(rec, FsOp) and rec.fault):
            return None
        if isinstance(rec, Op | FsOp):
            seen.add(rec.process)
            if len(seen) > 1:
                return None
        if not isinstance(rec, Op) or rec.type == "invoke" or rec.f not in ("open",
                                                                            "enqueue"):
            continue
        if rec.type == "ok":
            if rec.f == "enqueue":
                return None
            continue
        error = f"{rec.error}" + (f" at {rec.where}" if rec.where else "")
        if rec.f == "open":
            return (f"the target could not be opened on a new, empty directory before any "
                    f"fault had fired (processor {rec.process}): {error}; it breaks the "
                    "target contract (check the target's constructor)")
        return (f"the target's first enqueue raised before any fault had fired (processor "
                f"{rec.process}): {error}; it breaks the target contract (check the "
                "target or its adapter)")
    return None


def never_ran(history: History, valid: bool) -> str | None:
    """"the workload never ran" when no enqueue of the workload returned ok and the
    checker found nothing wrong (a queue unavailable once healed is a finding)."""
    enqueues = [op for op in history.ops() if op.f == "enqueue" and op.process != DRAIN]
    if not valid or any(op.type == "ok" for op in enqueues):
        return None
    tried = sum(1 for op in enqueues if op.type == "invoke")
    errors = [op.error for op in enqueues if op.type == "info" and op.error]
    why = f"; the first error: {errors[0]}" if errors else ""
    which = "its only enqueue did not" if tried == 1 else f"none of its {tried} enqueues"
    return (f"the workload never ran: {which} return ok{why}; a run "
            "in which nothing got into the queue tests nothing (does the fault fire from "
            "the first op?)")


def harness_error(messages: Sequence[str]) -> str | None:
    """The first harness error of the run, with how many there were."""
    if not messages:
        return None
    more = f" (and {len(messages) - 1} more)" if len(messages) > 1 else ""
    return (f"harness error (a bug in the harness, not a finding about the target): "
            f"{messages[0]}{more}")
