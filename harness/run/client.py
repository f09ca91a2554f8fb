"""The client: runs one processor's program against a target, recording every call.

A client owns one processor number and, at any time, at most one open queue.
Each queue call becomes an ``invoke`` op followed by its completion:

- ``ok`` when the call returned;
- ``info`` when it raised (any exception: the target contract does not let us
  tell "failed" from "unknown", and a typed error from a correct queue still
  means "unchanged or fully applied") or when the processor died inside it.

The client never retries a call silently: after an error it records what
happened and moves on to the next step of its program. After a crash
(`ProcessorKilled`) it restarts like a new process: the shim revives the
processor, the client opens a fresh queue and calls ``recover()`` while every
other processor is parked between two calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.check.history import PROBE, History, entry_key
from harness.check.words import raised_at
from harness.faults.damage import at_rest
from harness.intercept.shim import ProcessorKilled, Shim
from harness.run.schedule import Baton, Step
from harness.run.targets import check_queue, repair_for

__all__ = ["Client", "DrainProblem", "RESTART_LIMIT"]

RESTART_LIMIT = 20
"""Consecutive crashed restarts after which a processor gives up (faults keep killing it)."""


class DrainProblem(str):
    """Why the final drain failed, as a sentence; ``kind`` is the violation it makes."""

    kind: str

    def __new__(cls, text: str, kind: str = "unavailable") -> DrainProblem:
        self = super().__new__(cls, text)
        self.kind = kind
        return self

    def __reduce__(self):  # crosses the pipe from a process-mode worker with its kind
        return (DrainProblem, (str(self), self.kind))


def _describe(exc: BaseException) -> str:
    errno = getattr(exc, "errno", None)
    text = f"{type(exc).__name__}: {exc}"
    return f"{text} (errno={errno})" if errno is not None and str(errno) not in text else text


class Client:
    """Maps workload steps of one processor to target calls and records them."""

    def __init__(self, *, process: int, factory: Callable[[str], Any], target: str,
                 directory: str, history: History, shim: Shim, baton: Baton | None) -> None:
        self.process = process
        self._factory = factory
        self._target = target
        self._directory = directory
        self._history = history
        self._shim = shim
        self._baton = baton
        self.queue: Any = None
        self._repair = repair_for(target, factory)  # the drain's way past damage, if any
        self.crashes = 0
        self.last_error: str | None = None  # of the latest call: None when it returned
        self.last_where: str | None = None  # where in the target it raised (harness._where)

    # -- one recorded call

    def _call(self, f: str, fn: Callable[[], Any], *, key: str | None = None,
              value: Any = None, complete: Callable[[Any], tuple[str | None, Any]] | None = None
              ) -> tuple[bool, Any]:
        """Invoke, run, complete. Returns (ok, result); ProcessorKilled propagates."""
        h, p = self._history, self.process
        h.op("invoke", p, f, key=key, value=value)
        if self._baton is not None:
            self._baton.begin_call(p)
        try:
            result = fn()
        except ProcessorKilled:
            self.last_error, self.last_where = "processor killed", None
            h.op("info", p, f, key=key, value=value, error=self.last_error)
            raise
        except Exception as exc:  # the target's error: recorded, never retried
            self.last_error = _describe(exc)
            self.last_where = raised_at(exc)
            h.op("info", p, f, key=key, value=value, error=self.last_error,
                 where=self.last_where)
            return False, exc
        finally:
            if self._baton is not None:
                self._baton.end_call(p)
        done_key, done_value = complete(result) if complete else (key, value)
        self.last_error = None
        h.op("ok", p, f, key=done_key, value=done_value)
        return True, result

    def _raised(self) -> str:
        """The latest call's error, and where in the target it was raised when known."""
        where = f" at {self.last_where}" if self.last_where else ""
        return f"{self.last_error}{where}"

    # -- the contract's calls

    def open(self) -> bool:
        def do() -> Any:
            queue = self._factory(self._directory)
            check_queue(queue, self._target)
            return queue

        ok, result = self._call("open", do)
        self.queue = result if ok else None
        return ok

    def recover(self) -> bool:
        return self._call("recover", lambda: self.queue.recover())[0]

    def close(self) -> None:
        if self.queue is not None:
            queue, self.queue = self.queue, None
            self._call("close", queue.close)

    def enqueue(self, step: Step) -> None:
        def complete(result: Any) -> tuple[str | None, Any]:
            return step.key, {"id": str(result)}

        self._call("enqueue", lambda: self.queue.enqueue(step.payload), key=step.key,
                   value={"payload": step.payload}, complete=complete)

    def claim(self, worker: str) -> tuple[str, bytes] | None:
        def complete(result: Any) -> tuple[str | None, Any]:
            if result is None:
                return None, None
            qid, payload = result
            return entry_key(payload), {"id": str(qid), "payload": bytes(payload)}

        ok, result = self._call("claim", lambda: self.queue.claim(worker), complete=complete)
        if not ok or result is None:
            return None
        qid, payload = result
        return qid, payload

    def ack(self, qid: Any, key: str | None) -> bool:
        return self._call("ack", lambda: self.queue.ack(qid), key=key,
                          value={"id": str(qid)})[0]

    def states(self) -> dict[str, str] | None:
        if not callable(getattr(self.queue, "states", None)):
            return None

        def complete(result: Any) -> tuple[str | None, Any]:
            return None, {str(k): str(v) for k, v in dict(result).items()}

        ok, result = self._call("states", lambda: self.queue.states(), complete=complete)
        return {str(k): str(v) for k, v in dict(result).items()} if ok else None

    # -- a processor's life

    def step(self, step: Step, worker: str, held: list[tuple[str, bytes]]) -> None:
        """One step of a program; ``held`` are this process's claims not yet acked."""
        if step.action == "enqueue":
            self.enqueue(step)
        elif step.action == "claim":
            got = self.claim(worker)
            if got is not None:
                held.append(got)
        elif step.action == "ack" and held:
            qid, payload = held.pop(0)
            self.ack(qid, entry_key(payload))

    def drain(self, bound: int) -> str | None:
        """The final drain: open, recover, the liveness probe, claim + ack until empty,
        states.

        Returns None, or a `DrainProblem` saying why the queue could not be drained (every
        fault is healed by then, so that is a queue that never recovers): ``unavailable``
        when it cannot be opened, take the probe, hand it out or accept its ack (the
        liveness phase: a fresh processor must get a new entry through), ``stuck`` when
        an entry keeps coming back. A queue that refuses to open, recover, claim or take
        the probe after damage at rest is repaired once with the target's
        ``repair(directory)`` (see `harness.run.targets.repair_for`), then drained again."""
        problem = self._drain(bound)
        if problem is None or not self._refused or self._repair is None:
            return problem
        if self.queue is not None:
            self.close()
        ok, _ = self._call("repair", lambda: self._repair(self._directory),
                           complete=lambda r: (None, None if r is None else str(r)[:300]))
        if not ok:
            return DrainProblem(f"{problem}; its repair raised: {self._raised()}")
        return self._drain(bound)

    def _drain(self, bound: int) -> str | None:
        self._refused = True  # until the claims run dry: the queue raised
        if not self.open():
            return DrainProblem("final drain: the queue could not be opened after the faults "
                                f"were healed: {self._raised()}")
        self.recover()
        probe = PROBE + b"a new entry after every fault was healed"
        ok, result = self._call("enqueue", lambda: self.queue.enqueue(probe),
                                value={"payload": probe},
                                complete=lambda r: (None, {"id": str(r)}))
        if not ok:
            return DrainProblem("final drain: once every fault was healed the queue could not "
                                f"take a new entry: enqueue raised {self._raised()}")
        probed = None
        for _ in range(bound + 1):
            got = self.claim("drain")
            if self.last_error is not None:
                return DrainProblem("final drain: claim raised after the faults were healed: "
                                    f"{self._raised()}")
            if got is None:
                break
            acked = self.ack(got[0], entry_key(got[1]))
            if bytes(got[1]) == probe:
                probed = acked
        else:
            self._refused = False
            return DrainProblem(f"final drain: still delivering after {bound} claims "
                                "(an entry keeps coming back)", kind="stuck")
        self._refused = False
        if probed is None:
            return DrainProblem("final drain: the new entry enqueued once every fault was "
                                f"healed (id {result}) never came out of the queue")
        if not probed:
            return DrainProblem("final drain: the new entry enqueued once every fault was "
                                f"healed came out, but its ack raised {self._raised()}")
        self.states()
        self.close()
        return None

    def restart(self) -> None:
        """Come back as a fresh process after a crash: open, then recover, alone."""
        for _ in range(RESTART_LIMIT):
            self.queue = None
            self._shim.revive(self.process)
            try:
                if self._baton is not None:
                    with self._baton.exclusive(self.process):
                        at_rest(self._shim, "restart")  # Corruption(before="restart")
                        if self.open():
                            self.recover()
                elif self.open():
                    self.recover()
                return
            except ProcessorKilled:
                self.crashes += 1
        raise RuntimeError(f"processor {self.process} crashed {RESTART_LIMIT} times in a row "
                           "while restarting; the fault plan never lets it come back")

    def run(self, program: list[Step]) -> None:
        """Open, run every step (restarting after crashes), close."""
        try:
            self.open()
        except ProcessorKilled:
            self.crashes += 1
            self.restart()
        worker = f"p{self.process}"
        held: list[tuple[str, bytes]] = []  # claims not yet acked, oldest first
        for step in program:
            if self._baton is not None:
                self._baton.idle_point(self.process)
            if self._shim.is_dead(self.process):
                held.clear()
                self.crashes += 1
                self.restart()
            if step.action == "wait":  # no call: sit out, the queue still open
                if self._baton is not None:
                    self._baton.wait_calls(self.process, step.count, step.of)
                continue
            try:
                if self.queue is None and not self.open():
                    continue
                self.step(step, worker, held)
            except ProcessorKilled:
                held.clear()  # a new process holds nothing: its claims went with the old one
                self.crashes += 1
                self.restart()
        if self._baton is not None:
            self._baton.idle_point(self.process)
        if self._shim.is_dead(self.process):
            self.crashes += 1
            self.restart()
            held.clear()
        try:
            self.close()
        except ProcessorKilled:
            self.crashes += 1
