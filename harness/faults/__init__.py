"""The fault library: what can go wrong on the disk or to a process, and plans that say when.

A fault never touches the disk itself. An armed plan looks at each intercepted
`Call` and answers ``None`` or an `Action` (actions.py); the shim carries it out.

Role (Jepsen's nemesis, the plan half; SQLite's crash model): this package owns what can
go wrong and what is left afterwards: the fault classes and their validated parameters
(`_faultbase`, `_validate`, `_diskfaults`, `_filefaults`), plans and their triggers
(`_plan`), what the shim may be told to do (`actions`), which errno each call can meet
(`errnos`), Windows' file semantics (`windows`), the durability model of a power loss
(`durability`, `_dropped`, `_modeltree`, `_renames`, `torn`), damage done from outside
(`damage`) and the real faults of process mode (`realfaults`, `mounts`). A new fault
is a class here, listed in `_plan.FAULTS`, with its errno rules in `errnos`.
The fault vocabulary is stated once, below.

May import: `harness.check` (to record what a fault did in the history).

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
  `harness.faults._filefaults`: damage at rest to one file at a quiet point (a flipped bit, a
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

This module is the public façade: the classes live below it, one way up
(`harness.faults._validate` the parameter rules, `harness.faults._faultbase` the base class and
trigger matching, `harness.faults._diskfaults` and `harness.faults._filefaults` the fault classes,
`harness.faults._plan` the registry, `Plan` and `ArmedPlan`); import them from here.
"""

from __future__ import annotations

from harness.faults._diskfaults import (
    ConcurrentProcessors,
    DiskFull,
    KillMidWrite,
    MissingDirectory,
    PermissionDenied,
    PowerLoss,
)
from harness.faults._faultbase import Fault
from harness.faults._filefaults import DAMAGES, Corruption, FileRemoved, FsyncFailure
from harness.faults._plan import FAULT_KINDS, FAULTS, ArmedPlan, Plan, fault_from_spec
from harness.faults._validate import MATCH_KINDS, FaultSpecError

__all__ = [
    "FAULT_KINDS", "FAULTS", "MATCH_KINDS", "ArmedPlan", "ConcurrentProcessors", "DiskFull",
    "Fault", "FaultSpecError", "FsyncFailure", "KillMidWrite", "MissingDirectory",
    "PermissionDenied", "Plan", "PowerLoss", "fault_from_spec", "Corruption", "FileRemoved",
    "DAMAGES",
]
