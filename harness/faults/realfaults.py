"""Faults the parent carries out on the real file system, so the kernel answers the worker.

In process mode the plan still decides when a fault fires (one global op count, seeded),
but where the machine allows it the parent makes the fault real instead of handing the
shim an exception to raise:

- `MissingDirectory`: the parent deletes the real directory between two of the worker's
  file calls; the worker's call then meets whatever the kernel says; `FileRemoved`: the
  parent unlinks the real files (`harness.faults.damage`), the same way;
- `DiskFull`, on a tmpfs sandbox: the parent cuts the tmpfs down to the pages in use, so
  the worker's write ends short or with ENOSPC from the kernel; space comes back when
  the fault heals (``heal_after_ops``) and always before the final drain;
- `PermissionDenied`, with workers that permission bits bind (not root), when a mode
  change of the queue directory denies exactly the calls the fault names: no read bits
  for a fault on listings only (``calls = ["listdir"]``), no write bits for a fault on
  every change of a directory entry (replace, mkdir, unlink, rmdir). Any other
  ``calls`` (reads of files, open_write of an existing file, a subset of the entry
  changes, a path glob narrower than the directory) cannot be said with mode bits
  without refusing more or less than the plan names, so the worker's shim raises
  EACCES at exactly the plan's calls instead, as in thread mode.

When a real variant is not possible the shim's action goes to the worker as in thread
mode, and `skipped` says why, for the run's observations.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

from harness.check.history import History
from harness.check.words import count
from harness.faults import damage as _damage
from harness.faults import mounts as _mounts
from harness.faults.actions import Action, Call, Raise, RemoveDirectory, RemoveFiles, ShortWrite

__all__ = ["RealFaults"]

_LISTING = frozenset({"listdir"})
_ENTRY_CHANGES = frozenset({"replace", "mkdir", "unlink", "rmdir"})


def _mode_says_it(fault: Any) -> bool:
    """Can chmod of the queue directory deny exactly what ``fault`` names?"""
    calls = frozenset(getattr(fault, "calls", ()) or ())
    # and in time: a mode stays until healed, so a fault firing once or by chance is not it
    return (calls in (_LISTING, _ENTRY_CHANGES) and getattr(fault, "path", "*") in ("*", "q/*")
            and not getattr(fault, "once", False) and getattr(fault, "probability", 1.0) >= 1)


def remove_tree(target: str) -> int | None:
    """Remove directory ``target`` and all in it, as another program's rm -rf would: the
    files it held, or None if it was already absent."""
    if not os.path.isdir(target):
        return None
    files = sum(len(names) for _root, _dirs, names in os.walk(target))
    shutil.rmtree(target)
    return files


class RealFaults:
    """The parent's hands on the sandbox; see the module docstring."""

    def __init__(self, *, sandbox: str, queue_dir: str, history: History, model: Any,
                 faults: tuple, tmpfs: _mounts.Tmpfs | None, chmod: bool) -> None:
        self.sandbox, self.queue_dir, self.history, self.model = (
            sandbox, queue_dir, history, model)
        self.tmpfs = tmpfs
        self.chmod = chmod
        self.notes: list[str] = []
        self._by_repr = {repr(f): f for f in faults}
        self._active: dict[str, tuple[int, Any]] = {}  # fault repr -> (first op, undo)
        # directory -> (its mode before the first chmod, the faults keeping it denied): two
        # faults may deny one directory; the second must not take 000 for the original
        self._denied: dict[str, tuple[int, set[str]]] = {}

    def carry_out(self, p: int, call: Call, action: Action) -> tuple[Action | None, str | None]:
        """(the action the worker's shim carries out, or None; the fault made real, or None)."""
        if isinstance(action, RemoveDirectory):
            self._remove(p, action)
            return None, action.fault
        if isinstance(action, RemoveFiles):
            self.history.fault(p, action.kind, action.fault, **_damage.remove(
                action, root=self.sandbox, records=self.history.records, model=self.model))
            return None, action.fault
        if isinstance(action, Raise | ShortWrite):
            if action.kind == "disk_full" and self.tmpfs is not None:
                if action.fault not in self._active:
                    self._fill(p, call, action)
                return None, action.fault
            if action.kind == "permission_denied" and self.chmod and _mode_says_it(
                    self._by_repr.get(action.fault)):
                if action.fault not in self._active:
                    self._deny(p, call, action)
                return None, action.fault
        return action, None

    def tick(self, op: int) -> None:
        """Heal the real faults whose ``heal_after_ops`` ran out by op ``op``."""
        for fault, (first, undo) in list(self._active.items()):
            heal = getattr(self._by_repr.get(fault), "heal_after_ops", None)
            once = getattr(self._by_repr.get(fault), "once", False)
            if (heal is not None and op >= first + heal) or (once and op > first):
                undo()
                del self._active[fault]

    def heal_all(self) -> None:
        for _first, undo in self._active.values():
            undo()
        self._active.clear()

    # -- the three real faults

    def _remove(self, p: int, action: RemoveDirectory) -> None:
        target = os.path.normpath(os.path.join(self.sandbox, action.path))
        if not target.startswith(self.sandbox.rstrip("/") + "/"):
            raise AssertionError(f"refusing to remove {target!r}: outside the sandbox")
        files = remove_tree(target)
        if files is not None:
            effect = (f"the harness process removed directory {action.path}/ with "
                      f"{count(files, 'file')} between two file calls of the worker")
        else:
            effect = f"directory {action.path}/ was already absent"
        files = files or 0
        self.history.fault(p, action.kind, action.fault, effect, destroyed=bool(files))
        if self.model is not None:
            self.model.removed_by_fault(target)

    def _fill(self, p: int, call: Call, action: Action) -> None:
        assert self.tmpfs is not None
        size = self.tmpfs.fill()
        self.history.fault(p, action.kind, action.fault,
                           f"the sandbox's tmpfs cut down to the {size} bytes in use at op "
                           f"{call.op}: the kernel answers ENOSPC (or a short write) from here")
        self.notes.append(f"disk_full: real full file system (tmpfs cut to {size} bytes at "
                          f"op {call.op}), ENOSPC from the kernel")
        self._active[action.fault] = (call.op, self.tmpfs.grow)

    def _deny(self, p: int, call: Call, action: Action) -> None:
        where = self.queue_dir if os.path.isdir(self.queue_dir) else self.sandbox
        fault = self._by_repr.get(action.fault)
        reads = frozenset(getattr(fault, "calls", ()) or ()) == _LISTING
        old = _mounts.deny(where, reads=reads)
        original, holders = self._denied.setdefault(where, (old, set()))
        holders.add(action.fault)
        rel = os.path.relpath(where, self.sandbox)
        mode = f"{old & 0o333:03o}" if reads else f"{old & 0o555:03o}"
        self.history.fault(p, action.kind, action.fault,
                           f"the harness process chmod {mode} {rel}/ at op {call.op}: the "
                           "kernel answers EACCES to the worker (no DAC capabilities)")
        self.notes.append(f"permission_denied: real EACCES from the kernel (chmod {mode} "
                          f"{rel}/ at op {call.op}, workers without DAC capabilities)")
        def undo() -> None:
            holders.discard(action.fault)
            if not holders:  # the last fault keeping it denied is healed
                del self._denied[where]
                _mounts.restore(where, original)
        self._active[action.fault] = (call.op, undo)
