"""Six faults done to the disk or to processes, from a full disk to a power loss.

`DiskFull`, `PermissionDenied`, `MissingDirectory` (a vanished directory), `KillMidWrite`
(a killed processor), `PowerLoss` and `ConcurrentProcessors`.

Defined apart from `harness.faults` (their public home, where the whole vocabulary is
described) so that module is only the façade; import them from there
(``from harness.faults import DiskFull``). Each class is a frozen dataclass whose
parameters are checked by its ``_rules`` (`harness.faults._validate`) and whose ``_decide``
answers one intercepted `Call` with None or an `Action`.
"""

from __future__ import annotations

import errno as _errno
import random
from typing import ClassVar

from harness.faults._faultbase import Fault, State, _fault, kind_matches, path_matches
from harness.faults._validate import MATCH_KINDS
from harness.faults._validate import chance as _chance
from harness.faults._validate import errnos as _errnos
from harness.faults._validate import flag as _flag
from harness.faults._validate import glob as _glob
from harness.faults._validate import keep as _keep
from harness.faults._validate import kinds as _kinds
from harness.faults._validate import nat as _nat
from harness.faults._validate import one_of as _one_of
from harness.faults._validate import sandbox_dir as _sandbox_dir
from harness.faults.actions import (
    Action,
    Call,
    Kill,
    PowerCut,
    Raise,
    RemoveDirectory,
    ShortWrite,
)
from harness.faults.errnos import INJECTED as _INJECTED

__all__ = [
    "ConcurrentProcessors", "DiskFull", "KillMidWrite", "MissingDirectory", "PermissionDenied",
    "PowerLoss",
]


@_fault
class DiskFull(Fault):
    """The sandbox fills up after ``after_bytes`` more bytes: a short write, then ENOSPC."""

    kind: ClassVar[str] = "disk_full"
    _rules = {"after_bytes": _nat(0), "at_op": _nat(1), "path": _glob,
              "heal_after_ops": _nat(1, none=True), "errno": _errnos("ENOSPC", "EDQUOT")}
    after_bytes: int = 0
    at_op: int = 1
    path: str = "*"
    heal_after_ops: int | None = None
    errno: int = _errno.ENOSPC

    def _decide(self, st: State, call: Call, rng: random.Random) -> Action | None:
        if not self._matches(call):
            return None
        left = self.after_bytes - st.spent
        if call.kind == "write" and call.nbytes > 0:
            if call.nbytes <= left:
                return None
            if left > 0:
                return ShortWrite(repr(self), self.kind, keep=left, errno=self.errno)
            return Raise(repr(self), self.kind, self.errno)
        # only a new directory entry needs space: an existing file opened with O_CREAT
        # or O_TRUNC does not (and a truncate frees blocks)
        allocates = call.kind in ("mkdir", "copy", "link", "symlink") or (
            call.kind == "open" and call.creates)
        if allocates and (left <= 0 or call.nbytes > left):
            return Raise(repr(self), self.kind, self.errno)
        return None

    def _after(self, st: State, call: Call, action: Action | None) -> None:
        # count what actually landed, whichever fault decided the call
        if call.kind not in ("write", "copy") or not self._matches(call):
            return
        if action is None:
            st.spent += call.nbytes
        elif isinstance(action, ShortWrite | Kill) and action.keep:
            st.spent += action.keep


@_fault
class PermissionDenied(Fault):
    """Matching calls fail with EACCES (or EPERM) before they do anything."""

    kind: ClassVar[str] = "permission_denied"
    _rules = {"calls": _kinds(only=tuple(k for k in _INJECTED["permission_denied"]
                                         if k in MATCH_KINDS)),
              "path": _glob, "at_op": _nat(1), "once": _flag,
              "heal_after_ops": _nat(1, none=True), "probability": _chance,
              "errno": _errnos("EACCES", "EPERM")}
    calls: tuple[str, ...] = ("open_write", "replace", "mkdir", "unlink", "listdir")
    path: str = "*"
    at_op: int = 1
    once: bool = False
    heal_after_ops: int | None = None
    probability: float = 1.0
    errno: int = _errno.EACCES

    def _decide(self, st: State, call: Call, rng: random.Random) -> Action | None:
        if not self._matches(call) or not self._draw(rng):
            return None
        return Raise(repr(self), self.kind, self.errno)


@_fault
class MissingDirectory(Fault):
    """A sandbox directory disappears with its contents just before a call."""

    kind: ClassVar[str] = "missing_directory"
    _rules = {"path": _sandbox_dir, "at_op": _nat(1), "before": _one_of(None, *MATCH_KINDS),
              "path_glob": _glob, "times": _nat(1), "probability": _chance}
    path: str = "q"
    at_op: int = 1
    before: str | None = None
    path_glob: str = "*"
    times: int = 1
    probability: float = 1.0

    def _matches(self, call: Call) -> bool:
        kinds = None if self.before is None else (self.before,)
        return (call.op >= self.at_op and kind_matches(kinds, call)
                and path_matches(self.path_glob, call))

    def _decide(self, st: State, call: Call, rng: random.Random) -> Action | None:
        if not self._matches(call) or not self._draw(rng):
            return None
        return RemoveDirectory(repr(self), self.kind, self.path)


@_fault
class KillMidWrite(Fault):
    """The calling processor dies inside a call; a write in flight lands a prefix, any
    other call is not done at all."""

    kind: ClassVar[str] = "killed_mid_write"
    _rules = {"at_op": _nat(1), "calls": _kinds(), "path": _glob,
              "process": _nat(0, none=True), "keep": _keep, "times": _nat(1),
              "probability": _chance}
    at_op: int = 1
    calls: tuple[str, ...] = ("write",)
    path: str = "*"
    process: int | None = None
    keep: int | float | None = None
    times: int = 1
    probability: float = 1.0

    def _decide(self, st: State, call: Call, rng: random.Random) -> Action | None:
        if not self._matches(call) or not self._draw(rng):
            return None
        keep = None  # only a write has bytes in flight; keep means nothing elsewhere
        if call.kind == "write":
            if self.keep is None:
                keep = rng.randint(0, call.nbytes)
            elif isinstance(self.keep, float):
                keep = int(call.nbytes * self.keep)
            else:
                keep = min(self.keep, call.nbytes)
        return Kill(repr(self), self.kind, keep=keep)


@_fault
class PowerLoss(Fault):
    """Every processor dies; the sandbox goes back to what was durable. ``torn``: None,
    "prefix", "sectors" or "holes" (a sector the file gained since its last fsync may
    also read as zeros, its new size on disk before its data: XFS, ext4 delayed
    allocation, persist-queue issue #56); durability.py, rule 5."""

    kind: ClassVar[str] = "power_loss"
    _rules = {"at_op": _nat(1), "calls": _kinds(none=True), "path": _glob,
              "torn": _one_of(None, "prefix", "sectors", "holes"), "times": _nat(1),
              "probability": _chance, "names": _one_of("strict", "eager")}
    at_op: int = 1
    calls: tuple[str, ...] | None = None
    path: str = "*"
    torn: str | None = None
    times: int = 1
    probability: float = 1.0
    names: str = "strict"

    def _decide(self, st: State, call: Call, rng: random.Random) -> Action | None:
        if not self._matches(call) or not self._draw(rng):
            return None
        # the write in flight is unsynced either way; only a torn cut can keep some of it
        keep = rng.randint(0, call.nbytes) if self.torn and call.kind == "write" else None
        return PowerCut(repr(self), self.kind, torn=self.torn, keep=keep, names=self.names)


@_fault
class ConcurrentProcessors(Fault):
    """Several processors at once; the schedule switches between them at shim ops."""

    kind: ClassVar[str] = "concurrent_processors"
    _never_fires: ClassVar[bool] = True  # read by the runner, never acts through decide
    _rules = {"processors": _nat(2), "switch_probability": _chance}
    processors: int = 2
    switch_probability: float = 0.5

    def _decide(self, st: State, call: Call, rng: random.Random) -> Action | None:
        return None


# defined here, public in harness.faults: tracebacks and pickles name them there, as
# before the split (set after the dataclass decorator, which reads the defining module)
for _cls in (DiskFull, PermissionDenied, MissingDirectory, KillMidWrite, PowerLoss,
             ConcurrentProcessors):
    _cls.__module__ = "harness.faults"
del _cls
