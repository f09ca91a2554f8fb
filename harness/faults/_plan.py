"""Plans: the registry of fault kinds, `Plan` (a scenario's faults), `ArmedPlan` (a run's).

`Plan` and `fault_from_spec` say what a scenario injects; `ArmedPlan` holds the part
that changes during a run. `ArmedPlan.decide` asks the live faults in plan order and
stops at the first that answers an action; every fault it asked is then told the
outcome (``Fault._after``), so `DiskFull` counts bytes that landed whichever fault
decided. A fault is used up (``State.done``) when it has fired ``once``/``times`` or
``heal_after_ops`` ops have passed since it first fired; `ArmedPlan.heal` stops all.
A fault never injects an error into a call the kernel would fail first on its own
(``Call.fails``, see `harness.faults.errnos`): that call is let through and fails by itself.

Above the fault classes (`harness.faults._diskfaults`, `harness.faults._filefaults`), which never
import it; `harness.faults` re-exports everything here, its public home.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from harness.faults._diskfaults import (
    ConcurrentProcessors,
    DiskFull,
    KillMidWrite,
    MissingDirectory,
    PermissionDenied,
    PowerLoss,
)
from harness.faults._faultbase import Fault, State
from harness.faults._filefaults import Corruption, FileRemoved, FsyncFailure
from harness.faults._validate import FaultSpecError
from harness.faults._validate import fail as _fail
from harness.faults.actions import Action, Call, Raise, ShortWrite

__all__ = ["FAULT_KINDS", "FAULTS", "ArmedPlan", "Plan", "fault_from_spec"]


FAULTS: dict[str, type[Fault]] = {c.kind: c for c in (
    DiskFull, PermissionDenied, MissingDirectory, KillMidWrite, PowerLoss,
    ConcurrentProcessors, FsyncFailure, Corruption, FileRemoved)}
FAULT_KINDS = tuple(FAULTS)


def fault_from_spec(spec: Mapping[str, Any]) -> Fault:
    """Build a fault from ``{"kind": ..., **parameters}`` (a scenario file's table)."""
    if not isinstance(spec, Mapping):
        raise FaultSpecError(f"fault spec={spec!r}; expected a mapping with 'kind' and "
                             "the fault's parameters")
    kind = spec.get("kind")
    if kind not in FAULTS:
        raise FaultSpecError(f"kind={kind!r}; expected one of {', '.join(FAULT_KINDS)}")
    cls = FAULTS[kind]
    accepted = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    for key, value in spec.items():
        if key != "kind" and key not in accepted:
            raise FaultSpecError(f"{cls.__name__}: {key}={value!r} is not a parameter; "
                                 f"expected one of kind, {', '.join(accepted)}")
    return cls(**{k: v for k, v in spec.items() if k != "kind"})


@dataclass(frozen=True, repr=False)
class Plan:
    """The faults of one scenario, in priority order; `arm` makes one run's state."""

    faults: tuple[Fault, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.faults, tuple | list) or not all(
                isinstance(f, Fault) for f in self.faults):
            _fail("Plan", "faults", self.faults, "a tuple of faults")
        object.__setattr__(self, "faults", tuple(self.faults))
        if sum(isinstance(f, ConcurrentProcessors) for f in self.faults) > 1:
            _fail("Plan", "faults", self.faults, "at most one ConcurrentProcessors")

    def __repr__(self) -> str:
        return f"Plan(faults={self.faults!r})"

    @classmethod
    def from_specs(cls, specs: Iterable[Mapping[str, Any]]) -> Plan:
        """A plan from fault specs (see `fault_from_spec`)."""
        return cls(tuple(fault_from_spec(s) for s in specs))

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(f.kind for f in self.faults)

    @property
    def concurrency(self) -> ConcurrentProcessors | None:
        return next((f for f in self.faults if isinstance(f, ConcurrentProcessors)), None)

    @property
    def processors(self) -> int:
        """How many processors the runner starts (1 without `ConcurrentProcessors`)."""
        c = self.concurrency
        return 1 if c is None else c.processors

    def arm(self, rng: random.Random) -> ArmedPlan:
        return ArmedPlan(self, rng)


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
                # fails on its own, so this fault does not fire (harness.faults.errnos)
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


# defined here, public in harness.faults: tracebacks and pickles name it there, as
# before the split (ArmedPlan sets it in its body: it is no dataclass)
Plan.__module__ = "harness.faults"
