"""The fault library: what can go wrong on the disk or to a process, and plans that say when.

A fault never touches the disk itself. An armed plan looks at each intercepted
`Call` and answers ``None`` or an `Action` (actions.py); the shim carries it out.

Vocabulary (class, ``kind``, what it does):

- `DiskFull` ("disk_full"): the sandbox can take ``after_bytes`` more bytes, counted
  from op ``at_op``. The write that crosses the line is a short write: the part that
  fits lands, then ENOSPC (`ShortWrite`). From then on every call that allocates (a
  write of at least one byte, an open that creates a new file (`Call.creates`), mkdir,
  copy) fails with ENOSPC (or EDQUOT) before doing anything (`Raise`), until healed.
  Opening an existing file, even with O_CREAT or O_TRUNC, still works: a real kernel
  only fails a new directory entry or new blocks, and a truncate frees blocks.
- `PermissionDenied` ("permission_denied"): matching calls fail with EACCES (or EPERM)
  before doing anything, as on Windows when another process holds the file (`Raise`).
- `MissingDirectory` ("missing_directory"): a sandbox directory (the queue's, ``q``, by
  default) is deleted with everything in it just before a call, and the call goes on
  (`RemoveDirectory`). ``before="replace"`` puts it between writing a temp file and
  moving it into place, as in the incident.
- `KillMidWrite` ("killed_mid_write"): the calling processor dies inside the call; a
  write in flight lands only its first ``keep`` bytes (`Kill`). Other processors go on
  and the disk keeps everything that reached it. On any other call (``calls`` may name
  replace, unlink, fsync, dirsync, mkdir, open_write...) it dies *before* the call
  takes effect and ``keep`` is ignored: the rename is not done, the file not removed.
- `PowerLoss` ("power_loss"): every processor dies and the sandbox is rolled back to
  what was durable, optionally with torn sectors (`PowerCut`; see durability.py).
  ``names="eager"`` models file systems that may persist a rename or create before the
  data (XFS, btrfs, ext4 data=writeback): every name change persists, unsynced data is
  still lost, so a file renamed into place before its fsync comes back empty.
  ``torn="holes"`` adds NUL-filled holes: a sector the file gained since its last fsync
  may read as zeros (its new length reached the disk, its data did not).
- `FsyncFailure` ("fsync_failure"): fsync/fdatasync of a file, or fsync of a directory,
  fails with EIO (`SyncFailed`), as Linux reports a writeback error: the dirty pages are
  dropped (marked clean, still read back), and a later fsync that succeeds does not make
  them durable; pair it with a `PowerLoss` to see what was lost (durability.py, rule 7).
- `ConcurrentProcessors` ("concurrent_processors"): not a disk fault. Several
  processors run the workload at once and the schedule may switch between them at each
  shim op. It never acts through `ArmedPlan.decide`; the runner reads `Plan.concurrency`.
- `Corruption` ("corruption") and `FileRemoved` ("file_removed"), defined in
  `harness._filefaults`: damage at rest to one file at a quiet point (a flipped bit, a
  zeroed sector, a truncation, a deletion; `ArmedPlan.at_rest`), and files of the target
  removed by another program just before a matching call (`RemoveFiles`).

Triggers, shared by the faults where they make sense:

- ``at_op=N``: nothing before op N; fires at the first matching call with ``Call.op >= N``.
- ``calls``: the `Call` kinds that match. ``"open_write"`` and ``"open_read"`` are
  pseudo-kinds for an open with and without ``Call.writes``; ``"open"`` matches both.
- ``path``: an fnmatch glob on the sandbox-relative path (``*`` also crosses ``/``). A
  replace or copy matches on either of its paths; a call without a path matches only ``*``.
- ``probability``: each matching call fires with that chance, drawn from the run's rng
  (only when p < 1, so p = 1 faults leave the rng to the others). With ``times`` it
  spreads crashes over a run: ``PowerLoss(at_op=30, probability=0.03, times=5)`` fires
  about once every 33 matching calls from op 30 on, five times, at points the seed
  fixes, instead of five times in a row (`PermissionDenied`, `MissingDirectory`,
  `KillMidWrite`, `PowerLoss`, `FsyncFailure`).
- ``once`` / ``times``: how often a fault fires; used up, it never matches again.
- ``heal_after_ops``: the fault stops that many ops after it first fired (None: until
  the run ends). `ArmedPlan.heal()` stops every fault (the drain always runs healed).

In a plan the first fault, in plan order, that fires on a call wins; later faults do
not see that call. Every random choice comes from the rng given to `Plan.arm`, so the
same seed and the same calls give the same decisions.
"""

from __future__ import annotations

import errno as _errno
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

# the helpers keep their old private names here, so the fault classes read as before
from harness._armed import ArmedPlan
from harness._armed import State as _State
from harness._armed import kind_matches as _kind_matches
from harness._armed import path_matches as _path_matches
from harness._validate import MATCH_KINDS, FaultSpecError
from harness._validate import chance as _chance
from harness._validate import errnos as _errnos
from harness._validate import fail as _fail
from harness._validate import flag as _flag
from harness._validate import glob as _glob
from harness._validate import keep as _keep
from harness._validate import kinds as _kinds
from harness._validate import nat as _nat
from harness._validate import one_of as _one_of
from harness._validate import sandbox_dir as _sandbox_dir
from harness.actions import (
    Action,
    Call,
    Kill,
    PowerCut,
    Raise,
    RemoveDirectory,
    ShortWrite,
)
from harness.errnos import INJECTED as _INJECTED

__all__ = [
    "FAULT_KINDS", "FAULTS", "MATCH_KINDS", "ArmedPlan", "ConcurrentProcessors", "DiskFull",
    "Fault", "FaultSpecError", "FsyncFailure", "KillMidWrite", "MissingDirectory",
    "PermissionDenied", "Plan", "PowerLoss", "fault_from_spec", "Corruption", "FileRemoved",
    "DAMAGES",
]


from harness._faultbase import Fault, _fault  # noqa: E402,F401 - their public home


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

    def _decide(self, st: _State, call: Call, rng: random.Random) -> Action | None:
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

    def _after(self, st: _State, call: Call, action: Action | None) -> None:
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

    def _decide(self, st: _State, call: Call, rng: random.Random) -> Action | None:
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
        return (call.op >= self.at_op and _kind_matches(kinds, call)
                and _path_matches(self.path_glob, call))

    def _decide(self, st: _State, call: Call, rng: random.Random) -> Action | None:
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

    def _decide(self, st: _State, call: Call, rng: random.Random) -> Action | None:
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

    def _decide(self, st: _State, call: Call, rng: random.Random) -> Action | None:
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

    def _decide(self, st: _State, call: Call, rng: random.Random) -> Action | None:
        return None


from harness._filefaults import DAMAGES, Corruption, FileRemoved, FsyncFailure  # noqa: E402

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
