"""Faults at run time: trigger matching, what each fault remembers, and `ArmedPlan`.

`harness.faults` says what each fault is and decides for one call; this module holds
the part that changes during a run. `ArmedPlan.decide` asks the live faults in plan
order and stops at the first that answers an action; every fault it asked is then told
the outcome (``Fault._after``), so `DiskFull` counts bytes that landed whichever fault
decided. A fault is used up (``State.done``) when it has fired ``once``/``times`` or
``heal_after_ops`` ops have passed since it first fired; `ArmedPlan.heal` stops all.
A fault never injects an error into a call the kernel would fail first on its own
(``Call.fails``, see `harness.errnos`): that call is let through and fails by itself.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from harness.actions import Action, Call, Raise, ShortWrite

if TYPE_CHECKING:  # only for annotations: harness.faults imports this module
    from harness.faults import Plan

__all__ = ["ArmedPlan", "State", "kind_matches", "path_matches"]


def path_matches(glob: str, call: Call) -> bool:
    paths = [p for p in (call.path, call.path2) if p is not None]
    if not paths:
        return glob == "*"
    return any(fnmatchcase(p, glob) for p in paths)


def kind_matches(kinds: tuple[str, ...] | None, call: Call) -> bool:
    if kinds is None:
        return True
    for k in kinds:
        if k == call.kind or (call.kind == "open" and k == ("open_write" if call.writes
                                                             else "open_read")):
            return True
    return False


@dataclass
class State:
    """What one fault remembers during a run."""

    fired: int = 0
    first: int | None = None  # op of the first firing: the heal clock starts there
    spent: int = 0  # DiskFull: bytes the sandbox took since at_op
    done: bool = False


class ArmedPlan:
    """One run's use of a plan: answers the shim and counts what fired."""

    # public as harness.faults.ArmedPlan, where Plan.arm makes it
    __module__ = "harness.faults"

    def __init__(self, plan: Plan, rng: random.Random) -> None:
        self.plan = plan
        self.healed = False
        self.fired = 0
        self.fired_by_kind: dict[str, int] = {}
        self._rng = rng
        # ConcurrentProcessors is read by the runner and never fires here
        self._states = [State(done=f._never_fires) for f in plan.faults]

    @property
    def exhausted(self) -> bool:
        """True when no fault can fire any more (healed, or every fault used up)."""
        return self.healed or all(st.done for st in self._states)

    def fired_counts(self) -> tuple[int, ...]:
        """How often each fault of the plan fired, in plan order."""
        return tuple(st.fired for st in self._states)

    def heal(self) -> None:
        """Nothing fires afterwards: space is freed, permissions are back."""
        self.healed = True

    def repeated(self, action: Action) -> None:
        """The shim carried ``action`` out as a repeat of an error already counted (a
        buffered file retrying the same bytes): take it back out of ``fired``."""
        kind = action.kind  # type: ignore[attr-defined]
        self.fired -= 1
        self.fired_by_kind[kind] -= 1
        if not self.fired_by_kind[kind]:
            del self.fired_by_kind[kind]

    def at_rest(self, where: str, op: int) -> list[Action]:
        """Damage at rest due at a quiet point: ``where`` is ``"restart"`` (a crashed
        processor is about to open again, every other one parked between two calls) or
        ``"drain"`` (every processor closed, the drain not started); ``op`` is the number of
        calls made so far. Only faults with an ``_at_rest`` hook (`Corruption`) answer."""
        out: list[Action] = []
        if self.healed:
            return out
        for fault, st in zip(self.plan.faults, self._states, strict=True):
            hook = getattr(fault, "_at_rest", None)
            if st.done or hook is None:
                continue
            action = hook(st, where, op, self._rng)
            if action is None:
                continue
            out.append(action)
            st.fired += 1
            limit = fault._limit()
            st.done = limit is not None and st.fired >= limit
            self.fired += 1
            self.fired_by_kind[fault.kind] = self.fired_by_kind.get(fault.kind, 0) + 1
        return out

    def decide(self, call: Call) -> Action | None:
        """The action for this call, or None to let it through."""
        if self.healed:
            return None
        live = []
        action, winner = None, None
        for fault, st in zip(self.plan.faults, self._states, strict=True):
            if st.done:
                continue
            heal = getattr(fault, "heal_after_ops", None)
            if heal is not None and st.first is not None and call.op >= st.first + heal:
                st.done = True
                continue
            live.append((fault, st))
            action = fault._decide(st, call, self._rng)
            if call.fails is not None and isinstance(action, Raise | ShortWrite):
                # the kernel answers ENOENT/EEXIST before EACCES or ENOSPC: the call
                # fails on its own, so this fault does not fire (harness.errnos)
                action = None
            if action is not None:
                winner = (fault, st)
                break
        for fault, st in live:
            fault._after(st, call, action)
        if winner is not None:
            fault, st = winner
            st.fired += 1
            if st.first is None:
                st.first = call.op
            limit = fault._limit()
            if limit is not None and st.fired >= limit:
                st.done = True
            self.fired += 1
            self.fired_by_kind[fault.kind] = self.fired_by_kind.get(fault.kind, 0) + 1
        return action
