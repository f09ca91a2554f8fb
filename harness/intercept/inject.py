"""Faults around any block of code: install a plan, run code as a processor, read the history.

The runner drives a whole workload; this is the small tool for a single test (the
pytest plugin's ``fault_shim`` fixture is a thin wrapper over it)::

    from harness.faults import DiskFull
    from harness.intercept.inject import injected

    with injected(DiskFull(after_bytes=10), sandbox=tmp_path, seed=1) as inj:
        with inj.processor(0):          # only code bound to a processor is intercepted
            try:
                save_my_state(tmp_path / "state.json")
            except OSError:
                pass
    assert inj.faults_fired == 1
    print(inj.history.fs_ops())         # every file call the code made, and its outcome

Faults may be fault objects or scenario-style specs (``{"kind": "disk_full",
"after_bytes": 10}``). A `~harness.faults.PowerLoss` rolls the sandbox back through
the durability model; a kill (`KillMidWrite`, `PowerLoss`) ends the ``processor``
block quietly and sets `Injection.killed`; `Injection.restart` brings the processor
back, as a new process would come back. Everything is undone when the block ends:
the file API is unpatched, and nothing is left outside the sandbox.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from harness.check.history import History
from harness.check.words import count
from harness.faults import Fault, Plan, fault_from_spec
from harness.faults.durability import DurabilityModel
from harness.intercept.shim import ProcessorKilled, Shim, installed

__all__ = ["Injection", "injected", "plan_of"]


def plan_of(faults: tuple[Any, ...]) -> Plan:
    """A plan from fault objects and/or spec mappings (a `FaultSpecError` names a bad one)."""
    return Plan(tuple(f if isinstance(f, Fault) else fault_from_spec(_mapping(f))
                      for f in faults))


def _mapping(spec: Any) -> Mapping[str, Any]:
    return spec if isinstance(spec, Mapping) else {"kind": spec}


class Injection:
    """One installed plan: bind code to processors, then read what happened."""

    def __init__(self, shim: Shim, plan: Plan, seed: int, history: History) -> None:
        self.shim = shim
        self.plan = plan
        self.seed = seed
        self.history = history
        self.killed: list[int] = []

    @property
    def sandbox(self) -> str:
        return self.shim.sandbox

    @property
    def faults_fired(self) -> int:
        """How many intercepted calls a fault acted on."""
        return self.shim.faults_fired

    @property
    def ops(self) -> int:
        """Intercepted file calls so far."""
        return self.shim.ops

    @contextlib.contextmanager
    def processor(self, p: int = 0) -> Iterator[Injection]:
        """Run the block as processor ``p``; a kill ends the block and is noted in `killed`."""
        try:
            with self.shim.processor(p):
                yield self
        except ProcessorKilled as exc:
            self.killed.append(exc.process)
        except Exception:
            # A real kill runs no cleanup; here the dead code's `finally` blocks still run
            # and may fail on descriptors the kill closed. Their errors are not the story.
            if not self.shim.is_dead(p):
                raise
            self.killed.append(p)

    def run(self, fn: Callable[..., Any], *args: Any, p: int = 0, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` as processor ``p``; None if the processor was killed."""
        result = None
        with self.processor(p):
            result = fn(*args, **kwargs)
        return result

    def restart(self, p: int = 0) -> None:
        """Processor ``p`` comes back after a kill (no descriptors, no locks)."""
        self.shim.revive(p)

    def heal(self) -> None:
        """No fault fires from now on (to check recovery inside the same block)."""
        armed = self.shim.plan
        if armed is not None:
            armed.heal()

    def summary(self) -> str:
        """One line for a failing test's report: the plan, the seed, what fired."""
        return (f"plan {self.plan!r}, seed {self.seed}: {count(self.faults_fired, 'fault')} "
                f"fired over {count(self.ops, 'file call')}"
                + (f"; killed {self.killed}" if self.killed else ""))


@contextlib.contextmanager
def injected(*faults: Any, sandbox: str | os.PathLike[str], seed: int = 1,
             plan: Plan | None = None) -> Iterator[Injection]:
    """Install ``faults`` (or ``plan``) on ``sandbox`` for the block; yields an `Injection`."""
    plan = plan if plan is not None else plan_of(faults)
    history = History()
    rng = random.Random(f"{seed}:faults")
    os.makedirs(sandbox, exist_ok=True)
    with installed(sandbox=sandbox, history=history, plan=plan.arm(rng),
                   rng=random.Random(f"{seed}:disk")) as shim:
        model = DurabilityModel(shim.sandbox, shim.real)
        model.snapshot_all()
        shim.model = model
        try:
            yield Injection(shim, plan, seed, history)
        finally:
            model.close()
