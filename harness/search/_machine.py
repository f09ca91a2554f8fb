"""`QueueMachine`: hypothesis drives a target call by call against a model queue, under faults.

A `hypothesis.stateful.RuleBasedStateMachine`: each rule is one queue call (enqueue,
claim, ack), a fault armed for the next intercepted file call, or a crash of the
processor followed by a reopen and ``recover()``. The model keeps what the target has
promised: entries enqueued ok and not yet claimed (pending), claims held, entries acked
ok, and entries whose call ended in an error (unknown). After every step the
invariants hold or the machine fails, and hypothesis prints the failing run as a
program of rule calls:

- what was acked never comes back out of a claim;
- a claim is exclusive: nothing it returns is held by a live claim;
- what was enqueued ok is pending, held or delivered (``states()``, when the target has
  it, shows a pending entry PENDING or PROCESSING, a held one PROCESSING); after a
  crash and ``recover()`` a dead processor's claims are pending again.

At teardown every fault is healed, the queue drained and the whole history checked.
Use ``QueueMachine.for_target("legacy")`` for another target.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import shutil
import tempfile
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from harness.check import checker
from harness.check.history import DRAIN, History, entry_key
from harness.faults import DiskFull, KillMidWrite, PermissionDenied, Plan
from harness.intercept.shim import ProcessorKilled, installed
from harness.run.client import Client
from harness.run.runner import drain_queue
from harness.run.schedule import Step
from harness.run.targets import resolve

__all__ = ["QueueMachine"]

_ERR = st.one_of(
    st.builds(DiskFull, after_bytes=st.integers(0, 64)),
    st.builds(PermissionDenied, once=st.just(True)),
    st.builds(KillMidWrite, keep=st.sampled_from([0, 0.5, 1.0])),
)
_ALIVE = ("PENDING", "PROCESSING")


class QueueMachine(RuleBasedStateMachine):
    """One processor, one queue directory, faults and crashes chosen by hypothesis."""

    target = "robust"

    @classmethod
    def for_target(cls, target: str) -> type[QueueMachine]:
        """A machine class for another target (a built-in name or MODULE:CALLABLE)."""
        resolve(target)  # fail now, not in the middle of a hypothesis run
        name = "QueueMachine_" + "".join(c if c.isalnum() else "_" for c in target)
        return type(name, (cls,), {"target": target})

    def __init__(self) -> None:
        super().__init__()
        self._stack = contextlib.ExitStack()
        root = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        self.sandbox = tempfile.mkdtemp(prefix="harness-machine-", dir=root)
        self._stack.callback(shutil.rmtree, self.sandbox, True)
        self.history = History()
        self.shim = self._stack.enter_context(installed(
            sandbox=self.sandbox, history=self.history, plan=None, rng=random.Random(0)))
        self.client = Client(process=0, factory=resolve(self.target), target=self.target,
                             directory=os.path.join(self.sandbox, "q"), history=self.history,
                             shim=self.shim, baton=None)
        self.pending: dict[str, str | None] = {}  # key -> queue id
        self.held: dict[str, str] = {}  # key -> queue id of the live claim
        self.acked: set[str] = set()
        self.unknown: set[str] = set()  # an enqueue or ack that raised: either way is fine
        self.entries = 0
        self._bound(self.client.open)

    # -- plumbing

    def _bound(self, call: Any) -> Any:
        """Run one client call as processor 0; a kill in it is a crash and a reopen."""
        try:
            with self.shim.processor(0):
                return call()
        except ProcessorKilled:
            self._reopen()
            return None

    def _reopen(self) -> None:
        if self.shim.plan is not None:
            self.shim.plan.heal()
        self.shim.plan = None
        with self.shim.processor(0):
            self.client.restart()
        for key, qid in self.held.items():  # recover() hands a dead claim out again
            self.pending[key] = qid
        self.held.clear()

    def _last(self) -> Any:
        return self.history.ops()[-1]

    # -- rules

    @rule(size=st.integers(0, 64))
    def enqueue(self, size: int) -> None:
        self.entries += 1
        key = f"e{self.entries}"
        step = Step("enqueue", key, key.encode() + b"|" + bytes(size))
        self._bound(lambda: self.client.enqueue(step))
        last = self._last()
        if last.f == "enqueue" and last.type == "ok":
            self.pending[key] = (last.value or {}).get("id")
        else:
            self.unknown.add(key)

    @rule()
    def claim(self) -> None:
        got = self._bound(lambda: self.client.claim("p0"))
        if got is None:
            return
        qid, payload = got
        key = entry_key(payload)
        assert key not in self.acked, f"{key} came back out of a claim after its ack returned ok"
        assert key not in self.held, f"{key} handed out while a live claim still held it"
        assert key in self.pending or key in self.unknown, f"claim returned {payload[:20]!r}, " \
            "which no enqueue wrote"
        self.pending.pop(key, None)
        self.unknown.discard(key)
        self.held[key] = str(qid)

    @precondition(lambda self: bool(self.held))
    @rule()
    def ack(self) -> None:
        key, qid = next(iter(self.held.items()))
        ok = self._bound(lambda: self.client.ack(qid, key))
        if key not in self.held:
            return  # the ack crashed the processor: the claim went back to pending
        del self.held[key]
        if ok:
            self.acked.add(key)
        else:
            self.unknown.add(key)

    @rule(fault=_ERR)
    def fault_on_next_call(self, fault: Any) -> None:
        """Arm one fault for the next intercepted file call."""
        fault = dataclasses.replace(fault, at_op=self.shim.ops + 1)
        self.shim.plan = Plan((fault,)).arm(random.Random(0))

    @rule()
    def heal(self) -> None:
        if self.shim.plan is not None:
            self.shim.plan.heal()

    @rule()
    def crash_and_reopen(self) -> None:
        self.shim.kill(0, "crash rule of the state machine")
        self._reopen()

    # -- invariants

    @invariant()
    def promises_kept(self) -> None:
        queue = self.client.queue
        if queue is None or not callable(getattr(queue, "states", None)):
            return
        try:
            states = {str(k): str(v).rsplit(".", 1)[-1].upper()
                      for k, v in queue.states().items()}  # unbound: never faulted
        except Exception:  # noqa: BLE001 - a closed or broken queue shows at teardown
            return
        for key, qid in self.pending.items():
            if qid is not None:
                assert states.get(qid) in _ALIVE, (
                    f"{key} (id {qid}) was enqueued ok and is not held, but states() "
                    f"says {states.get(qid)}")
        for key, qid in self.held.items():
            assert states.get(qid) in _ALIVE, f"{key} is held, states() says {states.get(qid)}"

    def teardown(self) -> None:
        try:
            if self.shim.plan is not None:
                self.shim.plan.heal()
            self.shim.kill_all("every processor stops before the final drain")
            drain = Client(process=DRAIN, factory=resolve(self.target), target=self.target,
                           directory=os.path.join(self.sandbox, "q"), history=self.history,
                           shim=self.shim, baton=None)
            self.shim.revive(DRAIN)
            with self.shim.processor(DRAIN):
                problem = drain_queue(drain, self.history, bound=4 * self.entries + 10)
            result = checker.check(self.history)
            assert problem is None, problem
            assert result.valid, "; ".join(v.detail for v in result.violations[:3])
        finally:
            self._stack.close()
