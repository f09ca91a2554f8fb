"""Deaths and restarts in process mode: SIGKILL and reap, the restart gate, power loss.

The part of the parent (`harness.run._parent.Conductor`, which inherits it) that ends
children and starts fresh ones:

- `_kill` SIGKILLs and reaps a child, keeping the records it sent before it died;
  `_killed` does so for the plan's `Kill` and queues the processor for a restart;
- a restart waits until every other live processor is parked between two calls or
  asleep in a wait step (`_restart_when_quiet`), so the fresh process opens and runs
  ``recover()`` alone (the target contract); damage at rest due then is done first
  (`at_rest`);
- `_power_loss` SIGKILLs every child, rolls the sandbox back with the durability model
  and restarts every processor that had not finished;
- `_exited`: a child that went away by itself, done or not.

A processor that crashes more than `harness.run.client.RESTART_LIMIT` times is not started
again: the plan never lets it come back.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import signal
from typing import Any

from harness.check.history import NEMESIS, History
from harness.faults import damage as _damage
from harness.faults.actions import PowerCut
from harness.run._waits import Waits
from harness.run.client import RESTART_LIMIT

__all__ = ["RECORDS", "Child", "Restarts"]

RECORDS = ("op", "fs", "fault")
"""The messages that carry a history record: kept even from a child that died."""


@dataclasses.dataclass(eq=False)
class Child:
    """One child process as the parent sees it: where it is in its program, and its call
    in flight."""

    process: int
    proc: Any
    conn: Any
    at: int = -1  # index of the step it is at (start - 1: before its first)
    invoke: tuple | None = None  # (f, key, value) of its call in flight
    done: bool = False
    fired: str | None = None  # a fault the parent carried out for its current call
    failing: str | None = None  # the FsyncFailure last handed to it
    heard: float = 0.0  # when it last sent a message (time.monotonic)


class Restarts:
    """Deaths and restarts of a `Conductor`'s children (see the module docstring); the
    attributes below are the conductor's, set in its ``__init__``."""

    history: History
    armed: Any
    model: Any
    real: Any
    disk_rng: Any
    programs: list
    ops: int
    kills: int
    restarts: int
    errors: list[str]
    on_kill: Any
    _children: dict[int, Child]
    _pending: list[int]
    _quiet_for: int | None
    _spawned: bool
    _parked: dict[int, Child]
    _waits: Waits
    _sleeping: dict[int, Child]
    _crashes: collections.Counter[int]
    _cut: PowerCut | None
    _resume: dict[int, int]
    _handles: dict[int, collections.Counter]
    fuse: Any  # --layer fuse's mount, or None (`harness.run._fuseside`)

    def _record(self, c: Child, what: str, args: list) -> None:
        raise NotImplementedError  # the conductor's: appends one record to the history

    def _spawn(self, p: int, *, start: int, restart: bool, drain: bool = False,
               bound: int = 0) -> None:
        raise NotImplementedError  # the conductor's: starts processor p's process

    def _kill(self, c: Child) -> None:
        """SIGKILL, reap, and keep the records it sent before it died."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(c.proc.pid, signal.SIGKILL)
        c.proc.join()
        with contextlib.suppress(EOFError, OSError):
            while c.conn.poll():
                what, *args = c.conn.recv()
                if what in RECORDS:
                    self._record(c, what, args)
        c.conn.close()
        self._children.pop(c.process, None)
        self._parked.pop(c.process, None)
        self._handles.pop(c.process, None)  # a dead process's handles are closed
        self._sleeping.pop(c.process, None)
        self._waits.discard(c.process)
        self.kills += 1

    def _info(self, c: Child, why: str) -> None:
        if c.invoke is not None:
            f, key, value = c.invoke
            c.invoke = None
            self.history.op("info", c.process, f, key=key, value=value, error=why)

    def _killed(self, c: Child) -> None:
        self._kill(c)
        if self.on_kill is not None:
            self.on_kill(c.process)
        self._info(c, "processor killed (SIGKILL)")
        self._restart_later(c)

    def _restart_later(self, c: Child) -> None:
        p = c.process
        self._crashes[p] += 1
        if self._crashes[p] > RESTART_LIMIT:
            self.errors.append(f"processor {p} crashed {RESTART_LIMIT} times; the fault plan "
                               "never lets it come back")
            if p in self._pending:
                self._pending.remove(p)
            if self._quiet_for == p:
                self._quiet_for, self._spawned = None, False
            return
        if self._quiet_for == p:
            self._spawned = False  # killed while restarting: start it again, still alone
        elif p not in self._pending:
            self._pending.append(p)
        self._resume[p] = c.at + 1 if c.at >= 0 else 0

    def _restart_when_quiet(self) -> None:
        if self._quiet_for is None and self._pending:
            self._quiet_for = self._pending[0]
        p = self._quiet_for
        if p is None or self._spawned:
            return
        others = [c for c in self._children.values() if not c.done and c.process != p]
        if all(c.process in self._parked or c.process in self._sleeping for c in others):
            self.at_rest("restart")
            self._spawned = True
            self.restarts += 1
            self._spawn(p, start=self._resume.get(p, 0), restart=True)

    def at_rest(self, where: str) -> None:
        """A quiet point (``"restart"``, ``"drain"``): the damage at rest due, done here."""
        if self.fuse is not None:
            return self._fuse_at_rest(where)  # the server holds the plan and the model
        for action in self.armed.at_rest(where, self.ops):
            done = _damage.damage(action, root=self.real.sandbox, records=self.history.records,
                                  model=self.model)
            self.history.fault(NEMESIS, action.kind, action.fault, **done)

    def _power_loss(self, torn: str | None, names: str = "strict") -> None:
        victims = sorted(c.process for c in self._children.values() if not c.done)
        dead = list(self._children.values())
        for c in dead:
            self._kill(c)
        sentences = self.model.power_loss(self.disk_rng, torn, names) if self.model else [
            "no durability model: nothing rolled back"]
        effect = "power lost; " + ("; ".join(sentences) if sentences else "nothing to roll back")
        fault = self._cut.fault if self._cut else "PowerLoss()"
        self.history.fault(NEMESIS, "power_loss", fault, effect,
                           crashed=range(len(self.programs)))
        self._after_power_loss(dead, victims)

    def _after_power_loss(self, dead: list[Child], victims: list[int]) -> None:
        """The reaped ``dead`` each get ``info`` for their call; ``victims`` restart."""
        self._quiet_for, self._spawned = None, False
        for c in dead:
            self._info(c, "processor died in a power loss (SIGKILL)")
            if c.process in victims:
                self._restart_later(c)

    def _exited(self, c: Child) -> None:
        if self.fuse is not None:
            self._drain_fuse()  # a kill or a power cut of the FUSE server's explains it
            if self._children.get(c.process) is not c:
                return
        c.proc.join(5.0)
        if c.proc.is_alive():  # its exit pipe closed while it runs: code in the child closed
            # that descriptor (a queue's at-fork handler did); never wait for it forever
            self.errors.append(f"processor {c.process}'s exit pipe was closed while it still "
                               "ran (code in the child closed that descriptor): SIGKILLed")
            with contextlib.suppress(ProcessLookupError):
                os.kill(c.proc.pid, signal.SIGKILL)
            c.proc.join()
        with contextlib.suppress(EOFError, OSError):
            while c.conn.poll():  # what it sent before it went: records still count
                what, *args = c.conn.recv()
                if what in RECORDS:
                    self._record(c, what, args)
        self._children.pop(c.process, None)
        self._parked.pop(c.process, None)
        self._handles.pop(c.process, None)
        self._sleeping.pop(c.process, None)
        self._waits.discard(c.process)
        with contextlib.suppress(OSError):
            c.conn.close()
        if not c.done:
            self.errors.append(f"processor {c.process} exited unexpectedly "
                               f"(exit code {c.proc.exitcode})")
            self._info(c, f"processor exited (exit code {c.proc.exitcode})")
