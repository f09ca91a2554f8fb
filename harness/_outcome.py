"""When a run's verdict is not about the target: nothing ran, the fault never fired, or
the harness or the adapter broke.

A run can only fail or pass a target if the target was exercised under the scenario's
faults. These rules turn the other cases into ``error`` or ``no_fault_fired`` instead of
a verdict, for thread mode (`harness.runner`) and process mode (`harness.processes`)
alike:

- every fault of the plan must have fired (`unfired`): a scenario whose power loss never
  came, while only processor switches did, tested something else;
- the target must open on an empty directory before any fault fired (`refused_open`):
  a constructor that raises there breaks the contract, and is not "stuck" entries;
- some enqueue must have returned ok, of the workload or the drain's liveness probe
  (`never_ran`): a queue that took nothing, faults or no faults, is a broken target or
  adapter, or a scenario firing from the first op; there is nothing to judge;
- an exception in the harness's own code (`harness.shim.HarnessError`) ends the run as
  an error naming the harness.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.history import DRAIN, FaultEvent, FsOp, History, Op

__all__ = ["unfired", "refused_open", "never_ran", "harness_error"]


def unfired(faults: Sequence[Any], counts: Sequence[int], switches: int) -> list[str]:
    """Reprs of the plan's faults that never fired (`ConcurrentProcessors` fires when the
    processors really switched, or overlapped, inside calls)."""
    out = []
    for fault, n in zip(faults, counts, strict=True):
        fired = switches if fault.kind == "concurrent_processors" else n
        if not fired:
            out.append(repr(fault))
    return out


def refused_open(history: History) -> str | None:
    """The target's exception if its very first open raised before any fault had fired."""
    for rec in history.records:
        if isinstance(rec, FaultEvent) or (isinstance(rec, FsOp) and rec.fault):
            return None
        if isinstance(rec, Op) and rec.f == "open" and rec.type != "invoke":
            if rec.type == "ok":
                return None
            return (f"the target could not be opened on a new, empty directory before any "
                    f"fault had fired (processor {rec.process}): {rec.error}; it breaks the "
                    "target contract (check the target's constructor)")
    return None


def never_ran(history: History) -> str | None:
    """"the workload never ran" when no enqueue returned ok, the drain's probe included."""
    enqueues = [op for op in history.ops() if op.f == "enqueue"]
    if any(op.type == "ok" for op in enqueues):
        return None
    tried = sum(1 for op in enqueues if op.type == "invoke" and op.process != DRAIN)
    errors = [op.error for op in enqueues if op.type == "info" and op.error]
    why = f"; the first error: {errors[0]}" if errors else ""
    return (f"the workload never ran: none of its {tried} enqueues returned ok, nor the "
            f"final drain's{why}; a run in which nothing got into the queue tests nothing "
            "(is the target or its adapter broken, or the fault firing from the first op?)")


def harness_error(messages: Sequence[str]) -> str | None:
    """The first harness error of the run, with how many there were."""
    if not messages:
        return None
    more = f" (and {len(messages) - 1} more)" if len(messages) > 1 else ""
    return (f"harness error (a bug in the harness, not a finding about the target): "
            f"{messages[0]}{more}")
