"""Three faults done to single files: damage at rest, removal, a failed fsync.

Defined apart from `harness.faults` to keep that module short; import them from there
(``from harness.faults import Corruption, FileRemoved, FsyncFailure``); `harness.faults._plan`
registers them in ``FAULTS``.

- `Corruption` ("corruption"): the medium changes a file the target wrote while no
  processor is inside a call: at the restart after a crash (``before="restart"``) or
  between the run and the final drain (``before="drain"``). Carried out by
  `harness.faults.damage` as a `Damage` action; never decided at a call.
- `FileRemoved` ("file_removed"): another program unlinks files of the target while it
  runs, just before a matching call, which then goes on (`RemoveFiles`).

Where their effect lands in the history, and how the checker reads it: `harness.faults.damage`.
"""

from __future__ import annotations

import errno as _errno
import random
from typing import Any, ClassVar

from harness.faults._faultbase import Fault, _fault
from harness.faults._faultbase import State as _State
from harness.faults._validate import chance as _chance
from harness.faults._validate import fail as _fail
from harness.faults._validate import glob as _glob
from harness.faults._validate import kinds as _kinds
from harness.faults._validate import nat as _nat
from harness.faults._validate import one_of as _one_of
from harness.faults.actions import Action, Call, Damage, RemoveFiles, SyncFailed

__all__ = ["DAMAGES", "Corruption", "FileRemoved", "FsyncFailure"]

DAMAGES = ("bitflip", "sector", "truncate", "delete")
"""What `Corruption` may do to a file."""


def _damages(owner: str, name: str, value: Any) -> Any:
    if isinstance(value, str) and value in DAMAGES:
        return value
    if (isinstance(value, tuple | list) and value and not isinstance(value, str)
            and all(isinstance(v, str) and v in DAMAGES for v in value)):
        return tuple(value)
    return _fail(owner, name, value, f"one of {', '.join(map(repr, DAMAGES))} or a non-empty "
                 "tuple of them (one is drawn at each firing)")


@_fault
class Corruption(Fault):
    """Damage at rest to a file the target wrote, while no processor is inside a call.

    Model: a file matching ``path`` (a glob on the sandbox-relative path) is picked in
    proportion to its size (damage strikes bytes) and gets one ``damage``: ``"bitflip"``
    (``flips`` bits flipped in place: silent data corruption that slipped past the
    drive's ECC, or a bad DMA/RAM path), ``"sector"`` (one aligned ``sector``-byte sector,
    512 or 4096, zeroed: a lost or misdirected write, or a sector the drive remapped),
    ``"truncate"`` (the file cut at a random length, as after a file-system repair) or
    ``"delete"`` (the file gone, as fsck leaves it in lost+found). A tuple of kinds draws
    one at each firing. Positions, file and kind come from the run's seeded generator.
    The damage is durable: a later power loss keeps it (the durability model is told).

    It fires at quiet points only: ``before="restart"`` at the restart of a crashed
    processor (every other processor parked between two calls), ``"drain"`` once, after
    every processor closed the queue and before the final drain opens it; only once at
    least ``at_op`` file calls were made; ``times`` / ``probability`` as for the other
    faults.

    Sources: Bairavasundaram et al., "An Analysis of Data Corruption in the Storage
    Stack" (FAST 2008: checksum mismatches, misdirected and lost writes, found on 400,000
    drives); Bairavasundaram et al., "An Analysis of Latent Sector Errors in Disk Drives"
    (SIGMETRICS 2007); Ganesan et al., "Redundancy Does Not Imply Fault Tolerance"
    (FAST 2017, CORDS: one zeroed or garbled block per file of a distributed store);
    Prabhakaran et al., "IRON File Systems" (SOSP 2005).
    """

    kind: ClassVar[str] = "corruption"
    _rules = {"damage": _damages, "path": _glob, "before": _one_of("drain", "restart"),
              "at_op": _nat(1), "times": _nat(1), "probability": _chance, "flips": _nat(1),
              "sector": _one_of(512, 4096)}
    damage: str | tuple[str, ...] = "bitflip"
    path: str = "q/*"
    before: str = "drain"
    at_op: int = 1
    times: int = 1
    probability: float = 1.0
    flips: int = 1
    sector: int = 512

    def _decide(self, st: _State, call: Call, rng: random.Random) -> Action | None:
        return None  # damage at rest never strikes inside a call

    def _at_rest(self, st: _State, where: str, op: int, rng: random.Random) -> Action | None:
        if where != self.before or op < self.at_op or not self._draw(rng):
            return None
        damage = self.damage if isinstance(self.damage, str) else rng.choice(self.damage)
        return Damage(repr(self), self.kind, damage, self.path, rng.getrandbits(32),
                      self.flips, self.sector)


@_fault
class FileRemoved(Fault):
    """Another program removes files of the target while it runs.

    Model: at a matching call (``calls``, default any; its path or second path matching
    the glob ``path``; from op ``at_op``; ``times``, ``probability``), every regular file
    matching ``path`` is unlinked just before the call goes on: a tmp cleaner
    (systemd-tmpfiles' age rule, tmpwatch) or an operator deleting a "stale" lock. A call
    that is about to create its file does not match (there is nothing to remove yet).
    unlink(2) removes the name only: descriptors already open keep the inode, with its
    data and its flock(2) locks, so a process that re-creates the file by name gets a new
    inode that the old holder's lock does not cover (flock(2), unlink(2) man pages). The
    removal is durable, as for `MissingDirectory`.

    The event is ``destroyed`` only when the removed files could hold entries' only copy:
    when an entry's bytes (or its queue id) were found in them, or, for a non-empty file,
    when some entry could not be found in any file of the sandbox (see `harness.faults.damage`).
    """

    kind: ClassVar[str] = "file_removed"
    _rules = {"path": _glob, "calls": _kinds(none=True), "at_op": _nat(1), "times": _nat(1),
              "probability": _chance}
    path: str = "q/*.lock"
    calls: tuple[str, ...] | None = None
    at_op: int = 1
    times: int = 1
    probability: float = 1.0

    def _matches(self, call: Call) -> bool:
        return not call.creates and call.kind != "mkdir" and super()._matches(call)

    def _decide(self, st: _State, call: Call, rng: random.Random) -> Action | None:
        if not self._matches(call) or not self._draw(rng):
            return None
        return RemoveFiles(repr(self), self.kind, self.path)


@_fault
class FsyncFailure(Fault):
    """fsync/fdatasync of a file, or fsync of a directory, fails with EIO.

    Model (Linux 4.13+, ext4 data=ordered): writeback of the dirty pages failed. The
    caller is told once; the pages are marked clean, so they reach the disk only if
    written again, while reads still return them from the page cache. A later fsync
    that succeeds makes only what was written since durable: dropped bytes keep their
    old durable content (zeros past the old durable length) at a power loss. Every other
    descriptor open on the file then is told once, at its next fsync (errseq_t). A
    failed directory fsync leaves its entries as of its last successful one. The real
    fsync is not performed; the durability model records the drop (durability.py, rule
    7). sync(2) cannot fail: never matched. ``times``: failures (None: every match).

    Sources: pgsql-hackers, "PostgreSQL's handling of fsync() errors is unsafe and
    risks data loss at least on XFS" (2018, "fsyncgate"); LWN, "PostgreSQL's fsync()
    surprise" (2018), "Improved block-layer error handling" (2017, errseq_t); Rebello et
    al., "Can Applications Recover from fsync Failures?" (USENIX ATC 2020); fsync(2).
    """

    kind: ClassVar[str] = "fsync_failure"
    _rules = {"calls": _kinds(only=("fsync", "dirsync")), "path": _glob, "at_op": _nat(1),
              "times": _nat(1, none=True), "probability": _chance}
    calls: tuple[str, ...] = ("fsync", "dirsync")
    path: str = "*"
    at_op: int = 1
    times: int | None = 1
    probability: float = 1.0

    def _decide(self, st: _State, call: Call, rng: random.Random) -> Action | None:
        # sync(2) (a call without a path) returns no error: see sync(2), NOTES
        if call.path is None or not self._matches(call) or not self._draw(rng):
            return None
        return SyncFailed(repr(self), self.kind, _errno.EIO)
