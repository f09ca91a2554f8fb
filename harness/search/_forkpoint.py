"""Explore's error states: fail the Nth call, from one recording run that forks at each N.

An injected error does not end the processor: the target goes on with what it holds in
memory, so the state "the Nth matching call failed" needs the target's memory at that
call. Re-running the prefix for every N would make the search quadratic; instead the
recording run forks at the call. The child gets a private copy of the sandbox at the
same path (the parent's directory is renamed aside and copied back into place, and each
of the target's descriptors on it is re-opened on the copy at the same offset, so the
child's writes never reach the parent's files), takes the fault, finishes the step of
its program in which the error came (a claim's ack still runs), then stops, drains and
checks, sends its verdict through a pipe and exits. The parent waits, puts its directory
back and goes on to the next call without the fault. Linux only (``/proc/self/fd``).

With ``power_after`` (an fsync failure's states) the child runs that many further steps,
then the power goes (the durability model, moved onto the copy, rolls it back), then it
drains: a failed fsync's dropped writes show only at a power loss.
"""

from __future__ import annotations

import fcntl
import os
import pickle
import random
import shutil
import stat as _stat
from collections.abc import Callable
from typing import Any

from harness.faults import PowerLoss
from harness.faults.actions import PowerCut

__all__ = ["ForkStates"]


def _copy_tree(real: Any, src: str, dst: str) -> None:
    for name in real.listdir(src):
        s, d = os.path.join(src, name), os.path.join(dst, name)
        mode = real.lstat(s).st_mode
        if _stat.S_ISDIR(mode):
            real.mkdir(d, _stat.S_IMODE(mode))
            _copy_tree(real, s, d)
        elif _stat.S_ISREG(mode):
            fin = real.open(s, os.O_RDONLY)
            fout = real.open(d, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _stat.S_IMODE(mode))
            try:
                while chunk := real.read(fin, 1 << 20):
                    view = memoryview(chunk)
                    while view:
                        view = view[real.write(fout, view):]
            finally:
                real.close(fin)
                real.close(fout)


def _identities(real: Any, copy: str, original: str, out: dict | None = None) -> dict:
    """(st_dev, st_ino) of every file and directory of ``copy`` -> of its original."""
    out = {} if out is None else out
    a, b = real.lstat(copy), real.lstat(original)
    out[(a.st_dev, a.st_ino)] = (b.st_dev, b.st_ino)
    if _stat.S_ISDIR(a.st_mode):
        for name in real.listdir(copy):
            _identities(real, os.path.join(copy, name), os.path.join(original, name), out)
    return out


def _remove_tree(real: Any, path: str) -> None:
    for name in real.listdir(path):
        child = os.path.join(path, name)
        if _stat.S_ISDIR(real.lstat(child).st_mode):
            _remove_tree(real, child)
        else:
            real.unlink(child)
    real.rmdir(path)


def _reopen_on_copy(real: Any, parked: str, sandbox: str) -> None:
    """Point every descriptor on the parked directory at the same file in the copy."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if not (link == parked or link.startswith(parked + "/")):
            continue
        is_dir = _stat.S_ISDIR(real.fstat(fd).st_mode)
        flags = fcntl.fcntl(fd, fcntl.F_GETFL) & (os.O_ACCMODE | os.O_APPEND)
        where = 0 if is_dir else real.lseek(fd, 0, os.SEEK_CUR)
        try:
            new = real.open(sandbox + link[len(parked):],
                            flags | (os.O_DIRECTORY if is_dir else 0))
        except OSError:
            continue  # an unlinked file: nothing in the copy names it
        if not is_dir:
            real.lseek(new, where, os.SEEK_SET)
        os.dup2(new, fd)
        real.close(new)


class ForkStates:
    """The hook of a recording run that forks a child for every call the fault would hit."""

    def __init__(self, make_plan: Callable[[int], Any], seed: int,
                 power_after: int | None = None) -> None:
        self.make_plan, self.seed, self.power_after = make_plan, seed, power_after
        self._real_getpid = os.getpid
        self.parent = os.getpid()
        self.results: list[tuple[Any, dict]] = []
        self._child_pipe: int | None = None
        self._parked: tuple[str, str] | None = None
        self._forking = False

    def in_child(self) -> bool:
        return self._real_getpid() != self.parent

    def hook(self, rec: Any, call: Any) -> Any:
        if self._forking:
            # A file call made by an at-fork handler of the target (robust detaches its
            # handles in the child) inside os.fork(): it is no state of its own.
            return None
        armed = self.make_plan(call.op).arm(random.Random(f"{self.seed}:{call.op}"))
        action = armed.decide(call)
        if action is None:
            return None
        armed = self.make_plan(call.op).arm(random.Random(f"{self.seed}:{call.op}"))
        mark = rec.ledger.mark()
        real = rec.shim.real
        parked = rec.sandbox + ".parked"
        read_end, write_end = os.pipe()
        self._forking = True
        try:
            pid = os.fork()
        finally:
            self._forking = False
        if pid == 0:
            os.close(read_end)
            self._child_pipe, self._parked = write_end, (rec.sandbox, parked)
            real.rename(rec.sandbox, parked)
            real.mkdir(rec.sandbox, 0o700)
            _copy_tree(real, parked, rec.sandbox)
            _reopen_on_copy(real, parked, rec.sandbox)
            # A copy has new inode numbers; a target that checks its directory is still
            # the one it opened (robust re-creates a vanished one) must see no change.
            rec.shim.identities = _identities(real, rec.sandbox, parked)
            if self.power_after is not None:
                self._power_after(rec)
            # The child is the target's process continued, not a new user of its handles:
            # a target that refuses handles used after fork (robust does, as SQLite) must
            # see the pid that opened them. Nothing restores it: the child ends in _exit.
            os.getpid = lambda parent=self.parent: parent
            rec.shim.plan = armed
            rec.steps.stop = True
            rec.done = lambda r: self._report(r, call, mark, armed)
            return armed.decide(call)
        os.close(write_end)
        chunks = []
        while chunk := os.read(read_end, 1 << 16):
            chunks.append(chunk)
        os.close(read_end)
        os.waitpid(pid, 0)
        if os.path.exists(parked):  # the child died before it put the directory back
            _remove_tree(real, rec.sandbox)
            real.rename(parked, rec.sandbox)
        try:
            result = pickle.loads(b"".join(chunks))
        except Exception:  # noqa: BLE001 - a child that died says so in the result
            result = {"error": f"the child exploring op {call.op} died without a verdict"}
        self.results.append((call, result))
        return None

    def _power_after(self, rec: Any) -> None:
        """In the child: the power goes ``power_after`` steps after this one."""
        if rec.shim.model is not None:
            rec.shim.model.moved({old[1]: new[1] for new, old in rec.shim.identities.items()})
        rec.steps.more = self.power_after
        cut = PowerCut(repr(PowerLoss()), PowerLoss.kind)
        rec.before_drain = lambda shim: shim._power_cut(cut)

    def _report(self, rec: Any, call: Any, mark: tuple, armed: Any) -> None:
        suffix = rec.history.records[mark[0]:]
        result = rec.ledger.check(mark, suffix)
        out: dict[str, Any] = {"valid": result.valid, "counts": dict(result.counts),
                               "fired": armed.fired, "problem": rec.drain_problem}
        if not result.valid:
            full = rec.ledger.full_check(mark, suffix)
            out["violations"] = [v.to_dict() for v in full.violations]
        self.child_exit(out)

    def child_exit(self, out: dict) -> None:
        """Send the verdict, put the parent's directory back and leave (the child only)."""
        try:
            if self._child_pipe is not None:
                data = memoryview(pickle.dumps(out))
                while data:
                    data = data[os.write(self._child_pipe, data):]
            if self._parked is not None:
                sandbox, parked = self._parked
                shutil.rmtree(sandbox, ignore_errors=True)
                os.rename(parked, sandbox)
        finally:
            os._exit(0)
