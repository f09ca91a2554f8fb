"""What the shim asks a fault plan at each intercepted call, and what the plan may answer.

The shim describes every intercepted call as a `Call`; an armed plan answers
with ``None`` (let it through) or one `Action`. The shim carries the action out
and records it; the plan never touches the disk itself. Keeping the two apart
lets the same plan drive the in-process shim and, later, real processes.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CALL_KINDS",
    "Call",
    "Action",
    "Raise",
    "SyncFailed",
    "ShortWrite",
    "Kill",
    "PowerCut",
    "RemoveDirectory",
    "RemoveFiles",
    "Damage",
]

CALL_KINDS = (
    "open",      # open a file; Call.flags says read/write/create/truncate
    "read",
    "write",
    "truncate",
    "flush",     # a file object's flush (the bytes already reached the raw write)
    "close",
    "fsync",     # os.fsync / os.fdatasync on a file
    "dirsync",   # os.fsync on a directory descriptor
    "replace",   # os.replace / os.rename / shutil.move (path -> path2)
    "unlink",
    "mkdir",
    "rmdir",
    "listdir",   # os.listdir / os.scandir
    "stat",      # os.stat / os.lstat / os.fstat
    "seek",
    "lock",      # fcntl.flock
    "copy",      # shutil.copy* (path -> path2)
    "link",      # os.link (path -> path2: a new name for an existing file)
    "symlink",   # os.symlink (path: the new name; the link's text is not a path of ours)
    "setattr",   # os.utime / os.chmod (metadata only)
)


@dataclass(frozen=True, slots=True)
class Call:
    """An intercepted call, as the plan sees it.

    ``op`` is the 1-based number of this call among all intercepted calls of
    the run (not counting the final drain): "at op N" triggers use it.
    ``path`` and ``path2`` are relative to the sandbox, with ``/`` separators.
    ``writes`` is true for calls that change the disk (open for writing or
    creating, write, truncate, replace, unlink, mkdir, rmdir, copy).
    ``creates`` is true only for a call that will add a new directory entry: an
    open with O_CREAT of a path that does not exist yet (in an existing
    directory; the shim looks before it asks) and a mkdir. Opening an existing
    file with O_CREAT or O_TRUNC needs no new space, so a full disk lets it through.
    ``fails`` is the errno name the kernel returns for this call before any permission
    or space check (EEXIST for mkdir of an existing directory, ENOENT for a missing
    file; see `harness.faults.errnos.natural_error`), or None: a plan never injects an error
    into a call that is doomed anyway, because the kernel would have answered that first.
    """

    op: int
    process: int
    kind: str
    path: str | None = None
    path2: str | None = None
    nbytes: int = 0
    writes: bool = False
    creates: bool = False
    fails: str | None = None


class Action:
    """Base of what a plan answers; ``fault`` is the repr of the fault that chose it."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Raise(Action):
    """Fail the call before it does anything: ``OSError(errno)`` on its path."""

    fault: str
    kind: str
    errno: int


@dataclass(frozen=True, slots=True)
class SyncFailed(Raise):
    """Fail an fsync with ``OSError(errno)`` (EIO) before it does anything, and drop what it
    was to write: the dirty pages are marked clean, so they never reach the disk unless
    written again, while reads still see them (see `harness.faults.FsyncFailure`)."""


@dataclass(frozen=True, slots=True)
class ShortWrite(Action):
    """Write the first ``keep`` bytes and return that count, as write(2) does when the
    medium fills mid-write; ``errno`` is what the *next* write meets (disk full). Only a
    write that can land nothing raises (that is a `Raise`)."""

    fault: str
    kind: str
    keep: int
    errno: int


@dataclass(frozen=True, slots=True)
class Kill(Action):
    """The calling processor dies here. A write in flight lands its first ``keep`` bytes
    (None: nothing of it). Raised in the target as `harness.intercept.shim.ProcessorKilled`."""

    fault: str
    kind: str
    keep: int | None = None


@dataclass(frozen=True, slots=True)
class PowerCut(Action):
    """Every processor dies and the sandbox is rolled back to what was durable.

    ``torn``: None (exactly the durable state), ``"prefix"`` (sectors written
    since the last fsync persist in order up to a random point), ``"sectors"``
    (each such sector persists or not, at random) or ``"holes"`` (each such sector
    persists, stays old, or, in space the file gained since its last fsync, reads as
    zeros: NUL-filled holes, the file's new length on disk before its data).
    ``names``: ``"strict"`` (a name change survives only a directory fsync) or
    ``"eager"`` (every name change made so far persists, file data only as fsynced,
    as XFS, btrfs or ext4 data=writeback may leave it). See durability.py.
    """

    fault: str
    kind: str
    torn: str | None = None
    keep: int | None = None
    names: str = "strict"


@dataclass(frozen=True, slots=True)
class RemoveDirectory(Action):
    """Delete the sandbox-relative directory ``path`` and everything in it, then go on
    with the call (which usually fails on its own)."""

    fault: str
    kind: str
    path: str


@dataclass(frozen=True, slots=True)
class RemoveFiles(Action):
    """Another program unlinks every regular file whose sandbox-relative path matches the
    glob ``path`` (a tmp cleaner, an operator), then the call goes on."""

    fault: str
    kind: str
    path: str


@dataclass(frozen=True, slots=True)
class Damage(Action):
    """Damage at rest, at a quiet point (no processor inside a call): one file matching the
    glob ``path``, chosen with a generator seeded by ``seed`` (in proportion to its size, as
    bit rot strikes bytes), gets ``damage``: ``"bitflip"`` (``flips`` random bits),
    ``"sector"`` (one aligned ``sector``-byte sector zeroed), ``"truncate"`` (cut at a random
    length) or ``"delete"`` (unlinked). Never asked of the plan at a call: see
    `harness.faults.ArmedPlan.at_rest`."""

    fault: str
    kind: str
    damage: str
    path: str
    seed: int
    flips: int = 1
    sector: int = 512
