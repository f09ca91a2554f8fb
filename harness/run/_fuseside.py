"""The conductor's side of ``--layer fuse``: the FUSE server's records, in real-time order.

Under the FUSE layer the workers install no fault-injecting shim: every file call of every
process reaches the FUSE server (`harness.run._fusemount`, `harness.intercept.fusegate`),
which numbers it, asks the plan, carries the fault out and sends its records here. This
mixin of `harness.run._parent.Conductor` takes them:

- order: the server sends a call's record before the caller gets its answer, so before
  the caller's next message to us; the conductor drains the server's pipe before it
  serves any worker message (`_drain_fuse`), and so appends in real-time order;
- ``fs`` and ``fault`` records go to the history as the workers' own would; a fault that
  crashed a processor (the server SIGKILLed its caller) is the plan's kill: the worker is
  reaped and restarted as in the shim's process mode (`Restarts._killed`);
- a power cut comes as ``cut`` (sent before the server kills anyone) and then the
  ``power_loss`` fault (after the server rolled the backing directory back): between the
  two, a worker's exit is no surprise, so `_drain_fuse` waits for the second;
- ``budget``: a processor went past the run's file-call budget; it is stopped;
- the op records are forwarded to the server, whose damage names the entries it hits.
"""

from __future__ import annotations

from typing import Any

from harness.check.history import NEMESIS
from harness.run import hung as _hung
from harness.run._fusemount import FuseError
from harness.run.schedule import OpBudgetExceeded

__all__ = ["FuseSide"]


class FuseSide:
    """Mixin for `Conductor`: ``fuse`` (a `FuseMount` or None) and ``fuse_epoch``."""

    fuse: Any = None
    fuse_epoch = 0
    _cut_pending = False

    def _drain_fuse(self) -> None:
        """Every record the server has sent so far; through to the end of a power cut."""
        if self.fuse is None:
            return
        conn = self.fuse.records
        while self._cut_pending or conn.poll():
            try:
                message = conn.recv()
            except (EOFError, OSError) as exc:
                self._cut_pending = False
                raise FuseError(f"the FUSE server went away ({type(exc).__name__})") from exc
            self._fuse_record(message)

    def _fuse_record(self, message: tuple) -> None:
        what, *args = message
        h = self.history
        if what == "fs":
            p, call, path, path2, nbytes, outcome, fault = args
            h.fs(p, call, path=path, path2=path2, nbytes=nbytes, outcome=outcome, fault=fault)
        elif what == "cut":
            self._cut_pending = True
            self.fuse_epoch += 1  # processes started from now on are after the power cut
        elif what == "fault":
            p, kind, fault, effect, crashed, destroyed = args
            h.fault(p, kind, fault, effect, crashed=crashed, destroyed=destroyed)
            if kind == "power_loss" and p == NEMESIS:
                self._cut_pending = False
                self._power_lost()
            elif p in crashed and p in self._children:
                self._killed(self._children[p])
        elif what == "event":  # damage: its FaultEvent's keyword arguments as they are
            p, kind, fault, done = args
            h.fault(p, kind, fault, **done)
        elif what == "budget":
            p = args[0]
            c = self._children.get(p)
            self.blocked.append((p, _hung.budget_sentence(
                self.history, OpBudgetExceeded(p, self.max_ops))))
            if c is not None:
                self._kill(c)
                self._info(c, "processor stopped: file-call budget exhausted")
        elif what == "error":
            self.errors.append(f"FUSE layer: {args[0]}")

    def _power_lost(self) -> None:
        """The server cut the power and rolled the disk back: reap, then restart."""
        victims = sorted(c.process for c in self._children.values() if not c.done)
        dead = list(self._children.values())
        for c in dead:
            self._kill(c)
        self._after_power_loss(dead, victims)

    def _forward(self, record: Any) -> None:
        if self.fuse is not None:
            self.fuse.forward(record)

    def _fuse_at_rest(self, where: str) -> None:
        for p, kind, fault, done in self.fuse.ask("at_rest", where):
            self.history.fault(p, kind, fault, **done)
