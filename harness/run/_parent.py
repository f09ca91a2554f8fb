"""The parent side of process mode: the children, the one history, the plan, the restart gate.

`Conductor` serves every child's requests (see `harness.run._worker`) from one loop, one
message at a time, so the history it appends is in the order the children's calls
really happened and the plan sees one global op count. It also carries out what only
the parent can do:

- a `Kill` of the plan: the child lands the torn prefix and records the fault; the parent
  SIGKILLs it (``os.kill``), reaps it, records ``info`` for the call it died in, and
  starts a fresh process for that processor;
- a restart: the fresh process must open and ``recover()`` with no other processor in
  the middle of a call (the target contract). The parent stops answering the others at
  their next gap between two calls ("idle"), starts the fresh process once all of them
  wait there, and lets them go when it says ``restarted``;
- a `PowerCut`: SIGKILL every child, roll the sandbox back with the durability model,
  record the power loss, restart every processor that had not finished;
- real faults (a full tmpfs, chmod, a deleted directory, removed files) through
  `RealFaults`; damage at rest (`Corruption`) at the quiet points, `at_rest`: before a
  restart's fresh process starts (the others wait between two calls) and, called by
  `harness.run.processes`, before the final drain;
- a `FsyncFailure`: the child's shim raises EIO; the parent's model drops what that fsync
  was to write and notes every other child with the file open, whose next fsync of it
  is answered with the same EIO (Linux's errseq_t: each open file told once).
- a ``wait`` step (`harness.run.shapes`): the answer waits until the others' ``invoke``
  records reach its mark (`harness.run._waits`), and for everyone after `SILENCE_S` with no
  message and no restart under way (a sleeper may hold a lock another one waits for).
  A sleeper is between two calls: a restart does not wait for it.

Kills, restarts and power loss are the conductor's part inherited from
`harness.run._restarts.Restarts`; this module serves the requests.

Interleaving between processes is the kernel's, not the seed's: a process-mode run is
not deterministic in its order. The seed still fixes the workload and the plan.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import random
import time
from typing import Any

import multiprocess.connection

from harness.check.history import History
from harness.faults.actions import PowerCut, SyncFailed
from harness.run import hung as _hung
from harness.run._fuseside import FuseSide
from harness.run._restarts import RECORDS as _RECORDS
from harness.run._restarts import Child as _Child
from harness.run._restarts import Restarts
from harness.run._waits import Waits
from harness.run._worker import Spec, main
from harness.run.reaper import reap, spawning
from harness.run.schedule import OpBudgetExceeded

__all__ = ["Conductor", "Hung", "ParentError", "SILENCE_S"]

SILENCE_S = 5.0
"""No message for this long, no restart under way: the sleepers go on (see above)."""


class Hung(Exception):
    """The run went on past its deadline: ``blocked`` holds (processor, sentence) for each
    one still inside a call, ``errors`` what is no verdict about the target."""

    def __init__(self, blocked: list[tuple[int, str]], errors: list[str]) -> None:
        super().__init__("; ".join([why for _, why in blocked] + errors))
        self.blocked, self.errors = blocked, errors


class ParentError(Exception):
    """The parent could not serve a child's request: a harness error, not the target's."""


class Conductor(FuseSide, Restarts):
    """Runs one process-mode run's children and answers them; see the module docstring."""

    def __init__(self, *, ctx: Any, history: History, armed: Any, model: Any, real: Any,
                 disk_rng: random.Random, base: Spec, factory: Any, programs: list,
                 max_ops: int, deadline: float, timeout: float = 0.0,
                 fuse: Any = None) -> None:
        self.ctx, self.history, self.armed, self.model, self.real = (
            ctx, history, armed, model, real)
        self.disk_rng, self.base, self.factory, self.programs = disk_rng, base, factory, programs
        self.max_ops, self.deadline, self.timeout = max_ops, deadline, timeout
        self.ops = 0
        self.kills = 0
        self.restarts = 0
        self.overlaps = 0
        self.errors: list[str] = []
        self.blocked: list[tuple[int, str]] = []
        self.logs: collections.Counter[str] = collections.Counter()
        self.drain_problem: str | None = None
        self._children: dict[int, _Child] = {}
        self._procs: list[Any] = []
        self._pending: list[int] = []  # processors waiting for their restart, in order
        self._quiet_for: int | None = None  # the restart being prepared
        self._spawned = False  # its fresh process is running
        self._parked: dict[int, _Child] = {}
        self._waits = Waits()  # processors in a wait step (harness.run._waits)
        self._sleeping: dict[int, _Child] = {}  # theirs, to answer when they may go on
        self._crashes: collections.Counter[int] = collections.Counter()
        self._cut: PowerCut | None = None
        self._resume: dict[int, int] = {}  # processor -> the step its fresh process starts at
        # --platform windows: the files each live process holds open, (st_dev, st_ino) ->
        # count, as its workers report them (harness.faults.windows)
        self._handles: dict[int, collections.Counter] = {}
        # (processor, st_dev, st_ino) -> an fsync failure it has not been told of (errseq_t)
        self._untold: dict[tuple[int, int, int], str] = {}
        self.on_kill: Any = None  # called with the processor number after each plan kill
        self.fuse = fuse  # --layer fuse: the mount whose server sees every call (_fuseside)

    # -- the run

    def run_workers(self) -> None:
        for p in range(len(self.programs)):
            self._spawn(p, start=0, restart=False)
        self._loop()

    def run_drain(self, process: int, bound: int) -> None:
        self._spawn(process, start=0, restart=False, drain=True, bound=bound)
        self._loop()

    def reap(self) -> None:
        """Every process this run started: SIGKILLed if still there, and waited for."""
        reap(self._procs)
        for child in self._children.values():
            with contextlib.suppress(OSError):
                child.conn.close()
        self._children.clear()

    def _spawn(self, p: int, *, start: int, restart: bool, drain: bool = False,
               bound: int = 0) -> None:
        parent_end, child_end = self.ctx.Pipe()
        model = self.model is not None and not drain
        self._untold = {k: f for k, f in self._untold.items() if k[0] != p}  # a new process
        spec = dataclasses.replace(
            self.base, process=p, start=start, restart=restart, drain=drain,
            steps=() if drain else tuple(self.programs[p]), plan=not drain, model=model,
            drops=model and "fsync_failure" in self.armed.plan.kinds, bound=bound,
            parent=os.getpid(), fuse_epoch=self.fuse_epoch)
        proc = self.ctx.Process(target=main, args=(child_end, spec, self.factory),
                                name=f"harness-p{p}", daemon=True)
        with spawning():
            self._procs.append(proc)
            proc.start()
            # Killed before its first step (in open or recover), it resumes where it was
            # started, not from the top of its program.
            self._children[p] = _Child(p, proc, parent_end, at=start - 1)
        child_end.close()

    def _loop(self) -> None:
        wait = multiprocess.connection.wait
        heard = time.monotonic()  # when a child last sent anything
        while self._children or self._pending:
            self._restart_when_quiet()
            left = self.deadline - time.monotonic()
            if left <= 0:  # what each processor still inside a call was doing; one heard
                # from in the last half second is polling (it asks us at every file call)
                held = bool(self._parked) or self._quiet_for is not None
                raise Hung(*_hung.overdue(
                    [(c.process, c.proc.pid, time.monotonic() - c.heard < 0.5)
                     for c in self._children.values() if not c.done and c.invoke is not None],
                    self.history, self.timeout, held))
            self._wake(everyone=False)
            by_conn = {c.conn: c for c in self._children.values()}
            by_sentinel = {c.proc.sentinel: c for c in self._children.values()}
            server = [self.fuse.records] if self.fuse is not None else []
            ready_ones = wait(list(by_conn) + list(by_sentinel) + server,
                              timeout=min(left, 1.0))
            if ready_ones:
                heard = time.monotonic()
            elif time.monotonic() - heard > SILENCE_S and not self._pending:
                self._wake(everyone=True)
            for ready in ready_ones:
                self._drain_fuse()  # the server's records first: they happened before
                child = by_conn.get(ready) or by_sentinel.get(ready)
                if child is None:
                    continue  # the server's pipe: drained above
                if self._children.get(child.process) is not child:
                    continue  # killed while we served another child
                if ready is child.conn:
                    child.heard = time.monotonic()
                    try:
                        message = child.conn.recv()
                    except (EOFError, OSError):
                        continue  # it died mid-request: its sentinel tells the rest
                    self._answer(child, message)
                else:
                    self._exited(child)

    def _answer(self, c: _Child, message: tuple) -> None:
        """Serve one request. A child that died before our answer is told by its sentinel;
        any other error is ours, and must not leave the child waiting for an answer that
        never comes (a silent wait until the deadline, blamed on the target)."""
        try:
            self._serve(c, message)
        except OSError as exc:
            if isinstance(exc, BrokenPipeError | ConnectionResetError) or not c.proc.is_alive():
                return
            raise ParentError(f"the harness failed serving processor {c.process}'s "
                              f"{message[0]!r} request: {type(exc).__name__}: {exc}") from exc

    # -- one request

    def _serve(self, c: _Child, message: tuple) -> None:
        what, *args = message
        if what in _RECORDS:
            self._record(c, what, args)
            if what == "fault" and c.process in args[4]:
                self._killed(c)  # the plan's Kill: it is our SIGKILL that ends it
                return
            c.conn.send(None)
        elif what == "decide":
            c.conn.send(self._decide(c, args[0]))
        elif what == "synced":
            c.conn.send(self._synced(c, *args))
        elif what in ("sync_failed", "written"):
            self._dropped(c, what, *args)
            c.conn.send(None)
        elif what == "handle":
            c.conn.send(self._handle(c.process, *args))
        elif what == "removed":
            if self.model is not None:
                self.model.removed_by_fault(args[0])
            c.conn.send(None)
        elif what == "renamed":
            if self.model is not None:
                self.model.renamed(*args)
            c.conn.send(None)
        elif what == "power_loss":
            self._power_loss(*args)
        elif what == "idle":
            c.at = args[0]
            if self._quiet_for is not None and self._quiet_for != c.process:
                self._parked[c.process] = c  # answered once the restart is done
            else:
                c.conn.send(None)
        elif what == "wait":
            count, of = args
            self._waits.sleep(c.process, count, of)
            self._sleeping[c.process] = c
        elif what == "restarted":
            self._pending.remove(c.process)
            self._quiet_for, self._spawned = None, False
            c.conn.send(None)
            for other in self._parked.values():
                other.conn.send(None)
            self._parked.clear()
        elif what == "done":
            problem, logs = args
            if c.process < 0:
                self.drain_problem = problem
            self.logs.update(logs)
            c.done = True
            self._handles.pop(c.process, None)  # it exits: Windows closes what it held
            c.conn.send(None)
        elif what == "error":
            self.errors.append(args[0])
            c.done = True
            self._handles.pop(c.process, None)
            c.conn.send(None)

    def _record(self, c: _Child, what: str, args: list) -> None:
        h = self.history
        if what == "op":
            type_, p, f, key, value, error, where = args
            if type_ == "invoke":
                self._waits.called(p)
                if any(o.invoke for o in self._children.values() if o is not c):
                    self.overlaps += 1  # a real race: another processor is inside a call
                c.invoke = (f, key, value)
            else:
                c.invoke = None
            self._forward(h.op(type_, p, f, key=key, value=value, error=error, where=where))
        elif what == "fs":
            p, call, path, path2, nbytes, outcome, fault = args
            if fault is None and c.fired is not None and outcome not in ("ok", "killed"):
                fault = c.fired  # the kernel answered for the fault the parent set up
            c.fired = None
            h.fs(p, call, path=path, path2=path2, nbytes=nbytes, outcome=outcome, fault=fault)
        else:
            p, kind, fault, effect, crashed, destroyed = args
            h.fault(p, kind, fault, effect, crashed=crashed, destroyed=destroyed)

    def _decide(self, c: _Child, call: Any) -> Any:
        self.ops += 1
        if self.ops > self.max_ops:
            self.blocked.append((c.process, _hung.budget_sentence(
                self.history, OpBudgetExceeded(c.process, self.max_ops))))
            self._kill(c)
            self._info(c, "processor stopped: file-call budget exhausted")
            return None
        call = dataclasses.replace(call, op=self.ops)
        self.real.tick(self.ops)
        action = self.armed.decide(call)
        if action is None:
            return None
        if isinstance(action, PowerCut):
            self._cut = action
        if isinstance(action, SyncFailed):
            c.failing = action.fault
        handed, fired = self.real.carry_out(c.process, call, action)
        c.fired = fired
        return handed

    def _handle(self, p: int, op: str, ident: tuple) -> bool | None:
        if op == "held":
            return any(held[tuple(ident)] > 0 for held in self._handles.values())
        held = self._handles.setdefault(p, collections.Counter())
        held[tuple(ident)] += 1 if op == "opened" else -1
        return None

    def _synced(self, c: _Child, fd: int, is_dir: bool) -> str | None:
        """Tell the model; answer the fault of a failed fsync of this file by another
        process that this one was not told of yet (errseq_t: once per descriptor)."""
        if self.model is None:
            return None
        # the child waits for us, so its descriptor still names the inode it synced
        ours = os.open(f"/proc/{c.proc.pid}/fd/{fd}", os.O_RDONLY)
        try:
            (self.model.dir_synced if is_dir else self.model.file_synced)(ours)
            st = os.fstat(ours)
        finally:
            os.close(ours)
        return self._untold.pop((c.process, st.st_dev, st.st_ino), None)

    def _dropped(self, c: _Child, what: str, fd: int, *span: Any) -> None:
        """A failed fsync (the others open on the file are told later) or a write since."""
        if self.model is None:
            return
        ours = os.open(f"/proc/{c.proc.pid}/fd/{fd}", os.O_RDONLY)
        try:
            if what == "written":
                return self.model.file_written(ours, *span)
            self.model.file_sync_failed(ours)
            st = os.fstat(ours)
        finally:
            os.close(ours)
        for other in self._children.values():
            if other is not c and c.failing is not None and _opened(other.proc.pid, st):
                self._untold[(other.process, st.st_dev, st.st_ino)] = c.failing

    def _wake(self, everyone: bool) -> None:
        """Answer the wait steps that are due: their mark passed, or, when no processor
        that could make a call is left, the ones nearest their marks (``everyone``: a
        silence, see the module docstring)."""
        if not self._sleeping:
            return
        movers = [c for c in self._children.values()
                  if not c.done and c.process not in self._sleeping]
        go = self._waits.due()
        if everyone:
            go += self._waits.everyone()
        elif not (go or movers or self._pending):
            go = self._waits.nearest()
        for p in go:
            self._sleeping.pop(p).conn.send(None)


def _opened(pid: int, st: os.stat_result) -> bool:
    """Has process ``pid`` a descriptor open on the file ``st`` describes?"""
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for name in names:
        try:
            other = os.stat(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
            return True
    return False
