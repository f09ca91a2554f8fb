"""The durability model's renames: each one commits whole, in both directories (rule 2).

Mixed into `harness.faults.durability.DurabilityModel`. ext4 (any journaled mode), XFS and
btrfs log a rename as one transaction that changes both directories, and an fsync of
either directory commits it: after a power loss the file is under its old name or its
new one, never both, never neither. A directory listing at an fsync (`dir_synced`)
only says what that directory holds, so the shim tells the model of every rename as it
happens (`renamed`); the model keeps the ones not yet durable and, when one of the two
directories is fsynced, applies the other half to the other directory's durable
entries.

Chains. A rename can only commit after the earlier ones it builds on: those of the same
inode (A->B then B->C: C's fsync commits both, so the file is not left in A too) and
those of the same name (a rename onto a name an earlier one put there: the later one
replaces what the earlier placed). So committing a rename commits first every earlier
pending rename that shares an inode or a (directory, name) with it, transitively, the
order a journal keeps. A rename followed by an unlink of its new name commits the rename
only: the unlink is the target directory's own change, durable at its own fsync. Renames
within one directory are not told (its listing says all, and a snapshot design renames
at every save): where one is a link of a chain, committing the next rename out of that
directory removes the inode's durable name there, whichever it is (hard links are left
out: one name per inode in a directory).

Process mode. The parent hears of a worker's rename after it returned, and may serve
another worker's directory fsync in between, whose listing already shows the rename:
that fsync committed it. So a rename told late is committed at once when its target's
durable entries name it already, or when its source's last fsync found its old name
gone (``_left``).
"""

from __future__ import annotations

import os
import stat as _stat
from dataclasses import dataclass
from typing import Any

__all__ = ["Renames"]


@dataclass(frozen=True, eq=False)  # two equal renames (there and back twice) are two
class _Rename:
    """One rename not yet durable: (src_dir, src_name) -> (dst_dir, dst_name) of ``ino``."""

    src_dir: int
    src_name: str
    dst_dir: int
    dst_name: str
    ino: int

    def keys(self) -> set[tuple]:
        return {("name", self.src_dir, self.src_name), ("name", self.dst_dir, self.dst_name),
                ("inode", self.ino)}


class Renames:
    """Mixin for `DurabilityModel`: ``_renames`` (oldest first) are the renames no fsync
    made durable yet; ``_left`` holds, per directory, the entries its last fsync found
    gone (for a rename reported after that fsync, see `renamed`).

    Uses the model's ``root``, ``_lock``, ``_real``, ``_nodes``, ``_abs``, ``_rel``,
    ``_lstat``, ``_track`` and ``_locate``.
    """

    _renames: list[_Rename]
    _left: dict[int, dict[str, int]]

    def renamed(self, src: str, dst: str, ino: int) -> None:
        """``src`` (absolute) was renamed to ``dst``; ``ino`` is the inode ``dst`` named
        right after (the caller's lstat: in process mode another worker may have moved
        it on by the time the parent hears of it)."""
        inside = [os.path.normpath(p) for p in (src, dst)]
        if not all(p.startswith(self.root + os.sep) for p in inside):
            return  # a move in or out: a create or an unlink, as the listings say
        with self._lock:
            ends = [self._dir_of(self._rel(path)) for path in inside]
            if None in ends or ends[0][0] == ends[1][0]:
                return  # a directory is gone; or within one directory: its own change
            if not self._follow(self._rel(inside[1]), ino):
                return  # the file is gone already: nothing left to commit
            (src_dir, src_name), (dst_dir, dst_name) = ends
            rename = _Rename(src_dir, src_name, dst_dir, dst_name, ino)
            self._renames.append(rename)
            # An fsync served between the rename and this report (another process's) saw
            # the rename in its listing: it already committed the rename, whole.
            done = {d for d, seen in ((src_dir, self._left.get(src_dir, {}).get(src_name)),
                                      (dst_dir, self._nodes[dst_dir].entries.get(dst_name)))
                    if seen == ino}
            self._left.get(dst_dir, {}).pop(dst_name, None)  # the name holds ino again
            if done:
                self._settle(lambda r: r is rename, done)

    def _dir_of(self, rel: str) -> tuple[int, str] | None:
        """(inode of the parent directory of ``rel``, tracked now; the last name)."""
        parent, _, name = rel.rpartition("/")
        try:
            st = self._real.lstat(self._abs(parent))
        except OSError:
            return None
        if not _stat.S_ISDIR(st.st_mode):
            return None
        self._track(parent, st.st_ino, True, _stat.S_IMODE(st.st_mode))
        return st.st_ino, name

    def _follow(self, rel: str, ino: int) -> bool:
        """Track (and pin) inode ``ino``, found at ``rel`` or wherever it went since, so
        its number is not reused while a pending rename names it."""
        node = self._nodes.get(ino)
        if node is not None and (node.is_dir or node.pin is not None):
            return True
        try:
            st = self._real.lstat(self._abs(rel))
        except OSError:
            st = None
        if st is None or st.st_ino != ino:
            rel = self._locate(ino)
            st = None if rel is None else self._lstat(rel)
        if st is None or st.st_ino != ino or not (
                _stat.S_ISDIR(st.st_mode) or _stat.S_ISREG(st.st_mode)):
            return node is not None
        self._track(rel, ino, _stat.S_ISDIR(st.st_mode), _stat.S_IMODE(st.st_mode))
        return True

    def _settle(self, pick: Any, fresh: set[int]) -> None:
        """Commit the pending renames ``pick`` chooses and every earlier one they build on
        (an inode or a name in common), oldest first. ``fresh``: directories whose
        durable entries were just read from the disk, which already hold both halves."""
        chosen: list[_Rename] = []
        keys: set[tuple] = set()
        for rename in reversed(self._renames):
            if pick(rename) or rename.keys() & keys:
                chosen.append(rename)
                keys |= rename.keys()
        if not chosen:
            return
        self._renames = [r for r in self._renames if r not in chosen]
        for rename in reversed(chosen):
            src, dst = self._nodes.get(rename.src_dir), self._nodes.get(rename.dst_dir)
            if src is not None and rename.src_dir not in fresh:
                # its name there, or the one an untold rename within src/ gave it before
                gone = [n for n, i in src.entries.items() if i == rename.ino]
                for name in [rename.src_name] if rename.src_name in gone else gone:
                    del src.entries[name]
            if dst is not None and rename.dst_dir not in fresh:
                dst.entries[rename.dst_name] = rename.ino  # and what it replaced is gone

    def _renames_synced(self, ino: int, before: dict[str, int]) -> None:
        """Directory ``ino`` was fsynced (its entries were ``before``): the renames into or
        out of it are durable, both halves."""
        now = self._nodes[ino].entries
        self._left[ino] = {n: i for n, i in before.items() if now.get(n) != i}
        self._settle(lambda r: ino in (r.src_dir, r.dst_dir), {ino})

    def _renamed_inodes(self) -> set[int]:
        """Inodes (files and directories) a pending rename names: records to keep."""
        return {i for r in self._renames for i in (r.ino, r.src_dir, r.dst_dir)}

    def _renames_moved(self, new_of: dict[int, int]) -> None:
        """The tree was copied: inode ``old`` is ``new_of[old]`` now (`moved`)."""
        def m(i: int) -> int:
            return new_of.get(i, i)
        self._renames = [_Rename(m(r.src_dir), r.src_name, m(r.dst_dir), r.dst_name, m(r.ino))
                         for r in self._renames]
        self._left = {m(d): {n: m(i) for n, i in left.items()} for d, left in self._left.items()}

    def _renames_forgotten(self) -> None:
        """Everything is durable (a snapshot, or the rebuild after a power loss)."""
        self._renames, self._left = [], {}
