"""Copies of a sandbox at every op of one run: what explore restores a crash state from.

A `Tree` is the sandbox as ``{relative path: bytes, or None for a directory}``. The
`Camera` takes one before every intercepted call of the recording run, cheaply: the
tree is re-read only after a call that changed the disk (``Call.writes``), and only the
files whose identity, size or time changed (or that the call named) are read again, so
unchanged files share one ``bytes`` object from op to op. The durable image (what a
power loss would leave, per the durability model) is re-taken only after an fsync.

Every read goes through the shim's ``real`` calls, so the recording run never sees
the camera. `write_tree` lays a tree out in an empty directory for one state.
"""

from __future__ import annotations

import os
import stat as _stat
from typing import Any

try:  # the durability model's own tearing (rule 5), wherever the model keeps it
    from harness.faults.torn import tear as _tear
except ImportError:  # before the model's helpers moved out of durability.py
    from harness.faults.durability import _tear  # type: ignore[attr-defined,no-redef]

__all__ = ["Camera", "Tree", "torn_tree", "tear_write", "write_tree"]

Tree = dict[str, bytes | None]

_SYNCS = ("fsync", "dirsync")


class Camera:
    """Snapshots of the sandbox (current and durable) taken before each intercepted call."""

    def __init__(self, root: str, real: Any, model: Any = None) -> None:
        self.root = root
        self._real = real
        self._model = model
        self._stamps: dict[str, tuple[int, int, int]] = {}
        self.inodes: dict[str, int] = {}
        self.tree: Tree = {}
        self.version = 0
        self.durable: list[tuple[str, int, bytes | None]] = []
        self.durable_version = 0
        self._dirty = True
        self._sync = model is not None

    def before(self, previous: Any) -> None:
        """Bring the snapshots up to date; ``previous`` is the call that just finished."""
        if previous is not None:
            self._dirty = self._dirty or previous.writes
            self._sync = self._sync or previous.kind in _SYNCS
        named = {previous.path, previous.path2} if previous is not None else set()
        if self._dirty:
            self._rescan(named)
            self._dirty = False
        if self._sync and self._model is not None:
            self._take_durable()
            self._sync = False

    def after_last(self, previous: Any) -> None:
        """After the run's last call: the tree as the run left it."""
        self.before(previous)

    def inode_content(self) -> dict[int, bytes]:
        return {self.inodes[rel]: data for rel, data in self.tree.items()
                if data is not None and rel in self.inodes}

    def _rescan(self, named: set[str | None]) -> None:
        real, tree, stamps, inodes = self._real, {}, {}, {}
        todo = [""]
        while todo:
            rel = todo.pop()
            base = os.path.join(self.root, rel) if rel else self.root
            for name in sorted(real.listdir(base)):
                child = f"{rel}/{name}" if rel else name
                st = real.lstat(os.path.join(self.root, child))
                if _stat.S_ISDIR(st.st_mode):
                    tree[child] = None
                    todo.append(child)
                elif _stat.S_ISREG(st.st_mode):
                    stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
                    old = self.tree.get(child)
                    if old is not None and self._stamps.get(child) == stamp and (
                            child not in named):
                        tree[child] = old
                    else:
                        tree[child] = self._read(os.path.join(self.root, child))
                    stamps[child], inodes[child] = stamp, st.st_ino
        if tree != self.tree:
            self.version += 1
        self.tree, self._stamps, self.inodes = tree, stamps, inodes

    def _read(self, path: str) -> bytes:
        fd = self._real.open(path, os.O_RDONLY)
        try:
            chunks = []
            while chunk := self._real.read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            self._real.close(fd)

    def _take_durable(self) -> None:
        # The model has no read-only view of its durable state; reading its records here
        # keeps one crash model instead of a second copy of its rules.
        model = self._model
        image = []
        for rel, ino in model._durable_tree():
            node = model._nodes[ino]
            image.append((rel, ino, None if node.is_dir else node.content))
        if image != self.durable:
            self.durable_version += 1
        self.durable = image


def tear_write(before: bytes | None, after: bytes | None, nbytes: int, keep: int) -> bytes:
    """A file as it is when only ``keep`` of the ``nbytes`` written reached it."""
    before, after = before or b"", after or b""
    if len(after) > len(before):
        offset = max(0, len(after) - nbytes)
    else:
        offset = next((i for i, (a, b) in enumerate(zip(after, before, strict=False))
                       if a != b), len(after))
        offset = min(offset, max(0, len(after) - nbytes))
    end = offset + keep
    return after[:end] + before[end:]


def torn_tree(durable: list[tuple[str, int, bytes | None]], current: dict[int, bytes],
              rng: Any, torn: str | None) -> Tree:
    """What a power loss leaves: the durable image, torn against the current content."""
    tree: Tree = {}
    for rel, ino, data in durable:
        now = current.get(ino)
        if torn and data is not None and now is not None and now != data:
            data, _note = _tear(data, now, rng, torn)
        tree[rel] = data
    return tree


def write_tree(root: str, tree: Tree) -> None:
    """Lay ``tree`` out under the existing empty directory ``root``."""
    for rel in sorted(tree):  # a directory sorts before what is in it
        path = os.path.join(root, rel)
        data = tree[rel]
        if data is None:
            os.mkdir(path)
            continue
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
