"""The FUSE server's judgement of each file call: whose it is, its number, the plan's answer.

`harness.intercept.fusefs` turns every request the kernel sends into a call of `Gate.run`
with the backing directory's real operation as ``perform``. The gate then does for the
whole machine what the Python shim does inside one process:

1. Whose call: FUSE names the calling *thread*; its thread group, or the nearest ancestor
   that said hello (`HELLO`: a worker stats ``/.harness-hello-<processor>-<epoch>``
   before it opens the queue), is the processor. A call of nobody's (the kernel's own
   writeback, the harness itself) runs untouched and unrecorded.
2. A dead caller (SIGKILLed by a kill or a power cut, or started before a power cut it
   has not heard of: its hello carries an older epoch) is SIGKILLed again and answered
   EIO without touching the disk: nothing of a dead process lands after it died.
3. The call gets the next op number and is shown to the armed plan as an `actions.Call`,
   unless the kernel would fail it anyway (`errnos.natural_error`).
4. The plan's action is carried out on the backing directory: an errno, a short write,
   a kill (the torn prefix lands, then the caller is SIGKILLed before it sees an answer),
   a power cut (every processor SIGKILLed, the backing directory rolled back by the
   `DurabilityModel`), a directory or files removed, an fsync that fails and drops what
   it was to write (each other open file description told once, as Linux's errseq_t).
5. One ``fs`` record (and a ``fault`` record for what fired) goes to the conductor, sent
   *before* the answer reaches the caller, so a record is always in the pipe before the
   caller's next queue call is: the conductor keeps real-time order by draining this
   pipe before it appends a worker's record.

The gate never waits for the conductor: the conductor SIGKILLs and reaps processes that
may be blocked in a request the gate is serving, and a SIGKILLed process blocked in a
request already read by the server leaves only once it is answered.
"""

from __future__ import annotations

import errno as _errno
import os
import re
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.check.history import DRAIN, NEMESIS
from harness.check.words import count
from harness.faults import damage as _damage
from harness.faults.actions import (
    Call,
    Kill,
    PowerCut,
    Raise,
    RemoveDirectory,
    RemoveFiles,
    ShortWrite,
    SyncFailed,
)
from harness.faults.errnos import PATH_CALLS, natural_error
from harness.faults.realfaults import remove_tree

__all__ = ["HELLO", "Gate", "Handle", "hello_name"]

HELLO = re.compile(r"^/\.harness-hello-(-?\d+)-(\d+)$")
"""The name a worker stats to say which processor its process is (never a real file)."""


def hello_name(process: int, epoch: int) -> str:
    return f".harness-hello-{process}-{epoch}"


@dataclass
class Handle:
    """One open file description of the mount: our descriptor on the backing file."""

    fd: int
    rel: str
    is_dir: bool = False
    untold: str | None = None  # a failed fsync of its inode elsewhere, not told to it yet


def _lineage(tid: int) -> list[int] | None:
    """[thread group, its parent, ...] of thread ``tid``; None if it is gone."""
    out: list[int] = []
    pid = tid
    for _ in range(6):
        try:
            with open(f"/proc/{pid}/status", "rb") as f:
                fields = dict(line.split(b":", 1) for line in f.read().splitlines()
                              if b":" in line)
        except OSError:
            return out or None
        tgid, ppid = int(fields[b"Tgid"]), int(fields[b"PPid"])
        out.append(tgid)
        if ppid <= 1:
            break
        pid = ppid
    return out


def _kill(tgid: int) -> None:
    try:
        os.kill(tgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class Gate:
    """See the module docstring. ``out`` takes the records (a connection's ``send``)."""

    def __init__(self, *, backing: str, plan: Any, model: Any, rng: Any,
                 out: Callable[[tuple], None], max_ops: int, caller: Callable[[], int]) -> None:
        self.backing = os.path.abspath(backing)
        self.plan, self.model, self.rng, self._out = plan, model, rng, out
        self.max_ops, self._caller = max_ops, caller
        self.lock = threading.RLock()  # the FUSE loop against the control thread
        self.ops = 0
        self.fired = 0
        self.epoch = 0  # power cuts so far
        self.records: list[Any] = []  # the conductor's op records (damage names entries)
        self.errors: list[str] = []
        self.handles: dict[int, Handle] = {}
        self._root = os.getppid()  # the conductor: every processor descends from it
        self._procs: dict[int, int] = {}  # thread group -> processor
        self._dead: set[int] = set()

    # -- whose call

    def hello(self, path: str) -> bool:
        """A worker's hello (`HELLO`): its thread group is that processor from now on."""
        m = None if path is None else HELLO.match(path)
        if m is None:
            return False
        line = _lineage(self._caller())
        if line:
            p, epoch = int(m.group(1)), int(m.group(2))
            with self.lock:
                if epoch < self.epoch:  # started before a power cut: it died in it
                    self._dead.add(line[0])
                    _kill(line[0])
                else:
                    self._procs[line[0]] = p
                    self._dead.discard(line[0])
        return True

    def _whose(self) -> tuple[int, int | None]:
        tid = self._caller()
        if tid <= 0:  # the kernel's own request (write-back of a shared mapping): nobody's
            return 0, None
        line = _lineage(tid)
        if line is None:  # gone already: a dying process's last request
            return -1, None
        tgid = line[0]
        if tgid in self._procs:
            return tgid, self._procs[tgid]
        for pid in line[1:]:
            p = self._procs.get(pid)
            if p is not None:  # a helper process of that processor (an exec target)
                self._procs[tgid] = p
                if pid in self._dead:
                    self._dead.add(tgid)
                else:  # a number the kernel reused, now a live processor's child
                    self._dead.discard(tgid)
                return tgid, p
        return tgid, None

    def _ours(self, pid: int) -> bool:
        """Is ``pid`` (still) a descendant of the conductor, the server's parent?"""
        line = _lineage(pid)
        return bool(line) and self._root in line[1:]

    # -- one call

    def path(self, rel: str | None) -> str | None:
        return None if rel is None else os.path.join(self.backing, rel) if rel else self.backing

    def run(self, kind: str, rel: str | None, perform: Callable[[], Any], *,
            rel2: str | None = None, nbytes: int = 0, writes: bool = False,
            creates: bool = False, flags: int = 0, prefix: Callable[[int], int] | None = None,
            count: Callable[[Any], int] | None = None, handle: Handle | None = None) -> Any:
        tgid, p = self._whose()
        if tgid < 0:
            raise OSError(_errno.EIO, "the calling process is gone")
        if tgid in self._dead:  # nothing of a dead process lands after it died
            _kill(tgid)
            raise OSError(_errno.EIO, "the calling process was killed")
        if p is None:
            return perform()
        with self.lock:
            if p != DRAIN:
                self.ops += 1
                if self.ops > self.max_ops:
                    self._dead.add(tgid)
                    self._procs.pop(tgid, None)
                    self._out(("budget", p))
                    _kill(tgid)
                    raise OSError(_errno.EIO, "file-call budget exhausted")
            try:
                action = self._decide(p, kind, rel, rel2, nbytes, writes, creates, flags)
                return self._act(tgid, p, kind, rel, rel2, action, perform, nbytes=nbytes,
                                 prefix=prefix, count=count, handle=handle)
            except OSError:
                raise
            except Exception as exc:  # the harness's own bug: the run is an ERROR
                message = f"{type(exc).__name__}: {exc} (in {kind} of {rel})"
                self.errors.append(message)
                self._out(("error", message))
                raise OSError(_errno.EIO, "harness error") from exc

    def _decide(self, p, kind, rel, rel2, nbytes, writes, creates, flags):
        if self.plan is None or p == DRAIN or getattr(self.plan, "exhausted", False):
            return None
        fails = None
        if kind in PATH_CALLS:
            fails = natural_error(kind, self.path(rel), self.path(rel2), flags=flags,
                                  lstat=os.lstat, dirname=os.path.dirname)
        action = self.plan.decide(Call(op=self.ops, process=p, kind=kind, path=rel, path2=rel2,
                                       nbytes=nbytes or 0, writes=writes, creates=creates,
                                       fails=fails))
        if action is not None:
            self.fired += 1
        return action

    def _record(self, p: int, kind: str, rel, rel2, nbytes, outcome: str, fault) -> None:
        self._out(("fs", p, kind, rel, rel2, nbytes, outcome, fault))

    def fault(self, p: int, kind: str, fault: str, effect: str, crashed=(),
              destroyed: bool = False) -> None:
        self._out(("fault", p, kind, fault, effect, tuple(crashed), destroyed))

    def _act(self, tgid, p, kind, rel, rel2, action, perform, *, nbytes, prefix, count, handle):
        fault = None if action is None else action.fault

        def record(outcome: str, n=nbytes) -> None:
            self._record(p, kind, rel, rel2, n, outcome, fault)

        if action is None or isinstance(action, RemoveDirectory | RemoveFiles):
            if isinstance(action, RemoveFiles):
                done = _damage.remove(action, root=self.backing, records=self.records,
                                      model=self.model)
                self._out(("event", p, action.kind, action.fault, done))
            elif action is not None:
                self._remove_directory(p, action)
            try:
                result = perform()
            except OSError as exc:
                record(_errno.errorcode.get(exc.errno or 0, "EIO"))
                raise
            late = self._late(kind, handle)
            record("ok" if late is None else "EIO",
                   count(result) if count is not None else nbytes)
            if late is not None:
                raise OSError(_errno.EIO, "an earlier write-back of this file failed")
            return result
        short = isinstance(action, ShortWrite)
        if isinstance(action, Raise) or (short and prefix is None):
            record(_errno.errorcode.get(action.errno, str(action.errno)))
            if isinstance(action, SyncFailed) and handle is not None:
                self._sync_failed(handle, action.fault)
            raise OSError(action.errno, os.strerror(action.errno))
        landed = 0
        keep = getattr(action, "keep", None)
        if prefix is not None and keep:
            try:
                landed = prefix(min(keep, nbytes)) or 0
            except OSError:
                landed = 0
        if short:
            if landed:
                record("ok", landed)
                return landed
            record(_errno.errorcode.get(action.errno, str(action.errno)), 0)
            raise OSError(action.errno, os.strerror(action.errno))
        record("killed", landed if prefix is not None else nbytes)
        if isinstance(action, Kill):
            self._dead.add(tgid)
            self._procs.pop(tgid, None)
            _kill(tgid)  # before it has an answer: it never sees this call return
            what = (f"during {kind} to {rel} ({landed} of {nbytes} bytes landed)"
                    if prefix is not None else f"before {kind} of {rel}"
                    + (f" -> {rel2}" if rel2 else ""))
            self.fault(p, action.kind, action.fault, f"processor {p} killed {what}",
                       crashed=(p,))
        elif isinstance(action, PowerCut):
            self._power_cut(tgid, action)
        else:
            self.errors.append(f"the plan answered {action!r}, which the FUSE layer cannot "
                               "carry out")
        raise OSError(_errno.EIO, "killed")

    def _late(self, kind: str, handle: Handle | None) -> str | None:
        """An fsync that worked now, of a file whose earlier write-back failed elsewhere."""
        if kind != "fsync" or handle is None or handle.untold is None:
            return None
        late, handle.untold = handle.untold, None
        return late

    def _sync_failed(self, handle: Handle, fault: str) -> None:
        if handle.is_dir:
            return
        if self.model is not None:
            self.model.file_sync_failed(handle.fd)
        st = os.fstat(handle.fd)
        handle.untold = None
        for other in self.handles.values():
            if other is handle or other.is_dir:
                continue
            try:
                ost = os.fstat(other.fd)
            except OSError:
                continue
            if (ost.st_dev, ost.st_ino) == (st.st_dev, st.st_ino):
                other.untold = fault

    def _power_cut(self, tgid: int, action: PowerCut) -> None:
        victims = sorted(set(self._procs.values()))
        self._out(("cut",))  # before anyone dies: the conductor expects the deaths now
        for pid in {tgid, *self._procs}:
            self._dead.add(pid)
            if pid == tgid or self._ours(pid):  # never a number the kernel gave away since
                _kill(pid)
        self._procs.clear()
        self.epoch += 1
        if self.model is None:
            sentences = ["no durability model: nothing rolled back"]
        else:
            eager = {"names": action.names} if action.names != "strict" else {}
            sentences = self.model.power_loss(self.rng, action.torn, **eager)
        effect = "power lost; " + ("; ".join(sentences) if sentences else "nothing to roll back")
        self.fault(NEMESIS, "power_loss", action.fault, effect, crashed=victims)

    def _remove_directory(self, p: int, action: RemoveDirectory) -> None:
        target = os.path.normpath(os.path.join(self.backing, action.path))
        if not target.startswith(self.backing + os.sep):
            raise ValueError(f"refusing to remove {target!r}: outside the backing directory")
        files = remove_tree(target)
        rel = os.path.relpath(target, self.backing)
        if files is None:
            effect = f"directory {rel}/ was already absent"
        else:
            effect = f"removed directory {rel}/ with {count(files, 'file')}"
        self.fault(p, action.kind, action.fault, effect, destroyed=bool(files))
        if self.model is not None:
            self.model.removed_by_fault(target)

    # -- the conductor's requests (control thread)

    def at_rest(self, where: str) -> list[tuple]:
        """Damage at rest due at quiet point ``where``: the fault records, for the conductor."""
        out = []
        with self.lock:
            for action in self.plan.at_rest(where, self.ops) if self.plan is not None else ():
                self.fired += 1
                done = _damage.damage(action, root=self.backing, records=self.records,
                                      model=self.model)
                out.append((NEMESIS, action.kind, action.fault, done))
        return out
