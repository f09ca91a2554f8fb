"""The durability model: what is left of the sandbox after a power loss.

The crash model (written down before the code, as SQLite's test6.c does)
------------------------------------------------------------------------
A running program sees the file system through the kernel's caches; a power loss
keeps only what reached the disk. We assume the strictest behaviour POSIX allows,
the one LazyFS and ALICE use to find bugs, not what one file system happens to do:

1. File data. The bytes of a file (an inode) are durable as of the last fsync or
   fdatasync of any descriptor of that inode. Everything written, truncated or
   extended since may be lost: after the power loss the file holds exactly its
   content as of that fsync. A file never fsynced holds nothing, or its content at
   the snapshot if it existed then. An fsync makes data durable, never names: it
   does not make the file's own directory entry durable.
2. Names. A directory's entries (create, rename or replace onto or away, unlink,
   mkdir, rmdir) are durable as of the last fsync of that directory. A file whose
   creation was never made durable vanishes, even if its data was fsynced. An unlink
   or rename never made durable is undone: the old inode is back under the old name,
   with that inode's durable content. A rename between two directories is one change
   to both: ext4 (any journaled mode), XFS and btrfs log it as one transaction, and an
   fsync of either directory commits it. So an fsync of either makes both halves
   durable (the old name gone; the new name present, replacing what it named, with
   the inode's durable content per rule 1), and with neither fsynced since it is
   undone whole: after a power loss the file is under its old name or its new one,
   never both, never neither. A rename commits with the earlier ones not yet durable
   that it builds on, the same inode's or onto a name one of them placed (a journal
   commits in order): after A/x -> B/x -> C/x, an fsync of C/ or B/ leaves x in C/
   alone, one of A/ leaves it in B/. The shim tells the model of each rename between
   two directories as it returns (`harness.faults._renames`); an unlink after a rename is its
   directory's own change.
3. Directories are modelled as inodes too: a directory created after the snapshot
   holds no durable entries until it is itself fsynced, and it exists only if its
   parent's durable entries name it. The sandbox root always exists.
4. Snapshot. At the start of a run and after every rebuild, all that is under the
   root is durable. A directory the fault itself deleted (`removed_by_fault`) is
   durably gone: a real disk would not bring back what a nemesis rm -rf'd.
5. Torn writes (optional). Disks write 512-byte sectors, and a power cut during
   writeback leaves some sectors of the newer content and not others. Only sectors
   where the current content differs from the durable content are in doubt.
   "prefix": they persist in file order up to a random one (an append-only log
   written back in order). "sectors": each persists or not on its own (a disk that
   reorders). "holes": as "sectors", and one wholly past the durable length may
   also read as zeros, the new size on disk before the data (XFS, ext4 delayed
   allocation; persist-queue issue #56); blocks overwritten in place hold old or new
   data, never zeros. The file has its current length if every differing sector
   persisted, otherwise its durable length, stretched to cover a persisted (or
   zeroed) sector beyond it; a gap reads as zeros. Unlike test6.c a sector is old,
   new or zeros, never garbage.
6. Eager names (optional, ``names="eager"``; the default is ``"strict"``, rule 2).
   XFS, btrfs and ext4 with data=writeback commit metadata on their own schedule,
   so a create, rename or unlink can reach the disk before the data of the file it
   names. Under this flavour every directory change made before the power loss
   persists, as if the journal had just committed, while file data (length
   included) is still exactly as in rule 1: as of its inode's last fsync, empty if
   never fsynced, torn if asked (rule 5). So a file written, renamed into place and
   only then fsynced comes back empty (or with its last synced content) if the power
   goes between the rename and the fsync: the bug the strict flavour cannot see,
   because there the rename is undone too. *All* changes persist, not each at random:
   a journal commits a rename's two halves together and metadata in order, so a
   random subset would invent states (a file under neither name) that no such file
   system produces, and "all" exposes rename-before-fsync on every cut. A directory
   the fault removed stays gone; modes are the current ones.
7. A failed fsync (`FsyncFailure`, Linux 4.13+) makes nothing durable and drops the
   bytes it was to write (pages marked clean): no later fsync or sync(2) writes them,
   they keep their durable bytes (zeros past the durable length) until written or
   truncated over again, while reads still return them (`harness.faults._dropped`). A failed
   directory fsync leaves its entries as of its last successful fsync; a later one
   makes them durable (a journal that commits again; no read-only remount).
8. Left out: metadata (times; modes are kept as they were), symlinks and other
   special files (not recreated), hard links (each name gets its own copy on
   rebuild; a link then an unlink is not taken for a rename), fsync of one file
   making others durable (ext4 data=ordered does this in practice; we do not count
   on it), the rest of a journal transaction (on ext4 an fsync commits every metadata
   change made before it, in any directory; we count only a directory's own changes
   and the renames of rule 2), a rename whose file another process moved on or
   removed before the shim could see it (the listings alone decide, as before), space,
   and journals cut part-way through their metadata (only "none since the last
   directory fsync", strict, and "all", eager, are modelled).

Inode identity. Content is keyed by inode number, because fsync acts on an inode
and a rename keeps it. The kernel reuses a number once a file's last name and last
descriptor are gone, and Python 3.11's stat has no birth time on Linux, so a reused
inode looks exactly like a renamed one: a generation counter would have to guess,
and a wrong guess either empties a correctly renamed file or hands an old durable
name the content of an unrelated new file. Instead the model pins every file it
tracks: it holds its own read-only descriptor on it, so the number cannot be
reused while the model may still need it. A record (and its pin) is dropped once
neither a durable entry nor the current tree names the inode (checked at each
directory fsync). The pin also reads an inode's current content after it was
renamed or unlinked. If a pin cannot be had (out of descriptors) the record is kept
unpinned and reuse is then possible; the model never reads a file through the
target's own descriptors.
"""

from __future__ import annotations

import os
import random
import stat as _stat
import threading
import types
from dataclasses import dataclass, field
from typing import Any

from harness.faults._dropped import DroppedWrites
from harness.faults._modeltree import TreeIO
from harness.faults._renames import Renames
from harness.faults.torn import SECTOR, dropped, explain, rolled_back, tear

__all__ = ["NAMES", "SECTOR", "DurabilityModel", "real_os"]

def real_os() -> Any:
    """The ``real`` namespace of a model in a process with no shim: the os calls as they are."""
    names = ("open", "read", "write", "close", "stat", "lstat", "fstat", "listdir", "mkdir",
             "rmdir", "unlink", "lseek", "ftruncate", "fsync")
    return types.SimpleNamespace(**{n: getattr(os, n) for n in names})


NAMES = ("strict", "eager")
"""The power-loss flavours for directory entries (crash-model rules 2 and 6)."""

@dataclass
class _Inode:
    """What the model knows of one inode."""

    is_dir: bool
    mode: int
    path: str | None  # last known sandbox-relative path ("" is the root)
    pin: int | None = None  # our read-only descriptor on a file
    content: bytes = b""  # a file's durable bytes
    entries: dict[str, int] = field(default_factory=dict)  # a directory's durable entries
    since: str = "created"  # where the durable content came from: snapshot, fsync, created


class DurabilityModel(TreeIO, DroppedWrites, Renames):
    """Tracks durable content and entries under ``root``; rebuilds the root on power loss.

    ``real`` holds the unpatched os functions (``open``, ``read``, ``write``, ``close``,
    ``lstat``, ``fstat``, ``listdir``, ``mkdir``, ``rmdir``, ``unlink``, ``lseek``, ...);
    all the model's I/O goes through it so the shim never sees it.
    """

    def __init__(self, root: str, real: Any) -> None:
        if not os.path.isabs(root):
            raise ValueError(f"root={root!r}; expected an absolute path (the sandbox)")
        self.root = os.path.normpath(root)
        self._real = real
        self._nodes: dict[int, _Inode] = {}
        self._root_ino = -1
        self._dropped: dict[int, list[tuple[int, int]]] = {}  # rule 7, `DroppedWrites`
        self._renames, self._left = [], {}  # rule 2's renames not yet durable, `Renames`
        # the shim calls from one thread per processor; one lock keeps the records whole
        self._lock = threading.RLock()

    # -- the shim's entry points

    def snapshot_all(self) -> None:
        """Everything now under the root is durable (but what a failed fsync dropped)."""
        with self._lock:
            before = {ino: (self._nodes[ino].content, ranges)
                      for ino, ranges in self._dropped.items() if ino in self._nodes}
            self._unpin_all()
            self._renames_forgotten()
            st = self._real.lstat(self.root)
            self._root_ino = st.st_ino
            self._nodes[st.st_ino] = _Inode(True, _stat.S_IMODE(st.st_mode), "", since="snapshot")
            tree = self._scan()
            for rel, (ino, is_dir, mode) in tree.items():
                parent_rel, _, name = rel.rpartition("/")
                self._nodes[tree[parent_rel][0] if parent_rel else st.st_ino].entries[name] = ino
                if ino in self._nodes:  # a second name of a hard-linked file
                    continue
                node = _Inode(is_dir, mode, rel, since="snapshot")
                self._nodes[ino] = node
                if not is_dir:
                    node.pin = self._pin(rel, ino)
                    node.content = self._read_current(node) or b""
            self._carry_dropped(before)

    def file_synced(self, fd: int) -> None:
        """fsync/fdatasync of ``fd`` returned: its inode's content is durable as it is now."""
        with self._lock:
            st = self._real.fstat(fd)
            if _stat.S_ISDIR(st.st_mode):
                return self.dir_synced(fd)
            node = self._file_node(st)
            current = None if node is None else self._read_current(node)
            if current is not None:
                node.content, node.since, node.mode = self._syncable(
                    st.st_ino, current, node.content), "fsync", _stat.S_IMODE(st.st_mode)

    def _file_node(self, st: os.stat_result) -> _Inode | None:
        """The record of file ``st``, tracked now if need be (None: it has no name)."""
        node = self._nodes.get(st.st_ino)
        if node is None or node.pin is None:
            rel = self._locate(st.st_ino)
            if rel is None:
                return None
            node = self._track(rel, st.st_ino, False, _stat.S_IMODE(st.st_mode))
        return node

    def dir_synced(self, fd: int) -> None:
        """fsync of directory ``fd`` returned: its current entries are its durable ones."""
        with self._lock:
            st = self._real.fstat(fd)
            ino = st.st_ino
            rel = "" if ino == self._root_ino else self._locate(ino)
            node = self._nodes.get(ino)
            if rel is None:
                if node is not None:
                    node.entries = {}  # removed, so empty: rmdir only takes empty ones
                return
            node = self._track(rel, ino, True, _stat.S_IMODE(st.st_mode))
            before, entries = node.entries, {}
            for name in sorted(self._real.listdir(self._abs(rel))):
                child = f"{rel}/{name}" if rel else name
                cst = self._lstat(child)  # None: another process removed it just now
                if cst is not None and (_stat.S_ISDIR(cst.st_mode) or _stat.S_ISREG(cst.st_mode)):
                    self._track(child, cst.st_ino, _stat.S_ISDIR(cst.st_mode),
                                _stat.S_IMODE(cst.st_mode))
                    entries[name] = cst.st_ino
            node.entries = entries
            self._renames_synced(ino, before)
            self._collect()

    def moved(self, new_of: dict[int, int]) -> None:
        """The tree was copied (explore's fork states): inode ``old`` is ``new_of[old]``
        now; the pins already point at the copy."""
        with self._lock:
            self._nodes = {new_of.get(i, i): n for i, n in self._nodes.items()}
            for node in self._nodes.values():
                node.entries = {k: new_of.get(i, i) for k, i in node.entries.items()}
            self._root_ino = new_of.get(self._root_ino, self._root_ino)
            self._dropped = {new_of.get(i, i): r for i, r in self._dropped.items()}
            self._renames_moved(new_of)

    def removed_by_fault(self, path: str) -> None:
        """The fault deleted the tree at absolute ``path``: it is durably gone."""
        with self._lock:
            rel = self._rel(path)
            assert rel, "a fault never removes the sandbox root"
            parent_rel, _, name = rel.rpartition("/")
            try:
                parent_ino = self._real.lstat(self._abs(parent_rel)).st_ino
            except OSError:
                return
            parent = self._nodes.get(parent_ino)
            if parent is not None:
                parent.entries.pop(name, None)
            self._collect()

    def power_loss(self, rng: random.Random, torn: str | None = None,
                   names: str = "strict") -> list[str]:
        """Rebuild the root from the durable state; sentences saying what was undone.
        ``torn``: tear unsynced sectors (rule 5); ``names="eager"``: rule 6, not 2."""
        if torn not in (None, "prefix", "sectors", "holes"):
            raise ValueError(f"torn={torn!r}; expected None, 'prefix', 'sectors' or 'holes'")
        if names not in NAMES:
            raise ValueError(f"names={names!r}; expected 'strict' or 'eager'")
        with self._lock:
            if self._root_ino not in self._nodes:
                raise RuntimeError("power_loss before snapshot_all: nothing is known durable")
            current = self._scan()
            plan_of = self._eager_plan if names == "eager" else self._strict_plan
            plan, said = plan_of(current, rng, torn)
            self._unpin_all()  # and forgets what was dropped: the files are rebuilt anew
            self._wipe()
            for rel, (_ino, node, data) in plan.items():
                self._create(rel, node, data)
            self.snapshot_all()
            return said

    def _strict_plan(self, current, rng, torn):
        """Rules 1-5: the durable entries, each file with its durable (or torn) bytes."""
        plan: dict[str, tuple[int, _Inode, bytes | None]] = {}
        said: list[str] = []
        for rel, ino in self._durable_tree():
            node = self._nodes[ino]
            data = None if node.is_dir else node.content
            now = None if node.is_dir else self._read_current(node)
            note = None
            if torn and now is not None:
                flight = self._syncable(ino, now, data)  # a dropped write is not in flight
                if flight != data:
                    data, note = tear(node.content, flight, rng, torn)
            plan[rel] = (ino, node, data)
            said += explain(rel, ino, node, data, now, note, current, plan)
            said += self._said_dropped(rel, ino)
        return plan, said + dropped(current, plan)

    def _eager_plan(self, current, rng, torn):
        """Rule 6: today's names, each file with its inode's durable (or torn) bytes."""
        plan: dict[str, tuple[int, _Inode, bytes | None]] = {}
        said: list[str] = []
        for rel, (ino, is_dir, mode) in current.items():  # parents come first
            known = self._nodes.get(ino)
            if known is None or known.is_dir != is_dir:
                known = _Inode(is_dir, mode, rel)  # never fsynced: no durable bytes
            shape = _Inode(is_dir, mode, rel)  # what to rebuild: the current mode
            if is_dir:
                plan[rel] = (ino, shape, None)
                continue
            data, now, note = known.content, self._read_current(known), None
            flight = None if now is None else self._syncable(ino, now, data)
            if torn and flight is not None and flight != data:
                data, note = tear(known.content, flight, rng, torn)
            plan[rel] = (ino, shape, data)
            if now is not None and now != data:
                said.append(rolled_back(rel, known, data, now, note))
                said += self._said_dropped(rel, ino)
        return plan, said

    # -- records (the tree itself is read and written in `harness.faults._modeltree`)

    def _track(self, rel: str, ino: int, is_dir: bool, mode: int) -> _Inode:
        """The record of an inode seen at ``rel`` now, made (and pinned) if new."""
        node = self._nodes.get(ino)
        if node is not None and node.is_dir != is_dir:  # an unpinned number came back
            self._drop(ino)
            node = None
        if node is None:
            node = self._nodes[ino] = _Inode(is_dir, mode, rel)
        node.path = rel
        if not is_dir and node.pin is None:
            node.pin = self._pin(rel, ino)
        return node

    def _durable_tree(self) -> list[tuple[str, int]]:
        """(path, inode) of everything the durable entries name, parents first."""
        out: list[tuple[str, int]] = []
        seen = {self._root_ino}  # a directory named twice (unsynced moves) is built once
        todo = [("", self._root_ino)]
        while todo:
            rel, ino = todo.pop(0)
            for name, child in sorted(self._nodes[ino].entries.items()):
                node = self._nodes.get(child)
                path = f"{rel}/{name}" if rel else name
                if node is None or (node.is_dir and child in seen):
                    continue
                out.append((path, child))
                if node.is_dir:
                    seen.add(child)
                    todo.append((path, child))
        return out

    def _collect(self) -> None:
        """Drop records no durable entry and no current name points to."""
        keep = {ino for _rel, ino in self._durable_tree()} | {self._root_ino}
        keep |= self._renamed_inodes()  # a pending rename may yet name it durably
        keep |= {ino for ino, _d, _m in self._scan().values()}
        for ino in [i for i in self._nodes if i not in keep and not self._named(i)]:
            self._drop(ino)

    def _named(self, ino: int) -> bool:
        """Has inode ``ino`` a name still, though the walk did not see it? In process mode
        a worker's rename can land mid-walk (`_walk`); dropping the record then would
        forget what its fsyncs made durable (a synced file rebuilt empty)."""
        node = self._nodes[ino]
        if node.pin is not None:
            return self._real.fstat(node.pin).st_nlink > 0  # a link count is one instant
        return self._locate(ino) is not None

    def _drop(self, ino: int) -> None:
        self._dropped.pop(ino, None)
        node = self._nodes.pop(ino)
        if node.pin is not None:
            self._real.close(node.pin)

    def close(self) -> None:
        """Let go of the descriptors that keep tracked inodes from being reused."""
        self._unpin_all()

    def _unpin_all(self) -> None:
        for ino in list(self._nodes):
            self._drop(ino)
