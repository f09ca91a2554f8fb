"""The durability model's hands on the sandbox: walk, scan, read, wipe and rebuild it.

Mixed into `harness.faults.durability.DurabilityModel`, which decides what a power loss keeps;
these methods only touch the tree, and only through the model's ``real`` calls (the
unpatched os functions), so the shim never sees the model's own I/O. They use the
model's ``root``, ``_real`` and ``_nodes`` (a record's ``path``, ``pin``, ``is_dir``
and ``mode``).
"""

from __future__ import annotations

import os
import stat as _stat
from typing import Any

__all__ = ["TreeIO"]

_CHUNK = 1 << 20


class TreeIO:
    """Mixin for `DurabilityModel`: the tree under ``root``, through ``_real`` only."""

    root: str
    _real: Any
    _nodes: dict[int, Any]

    def _abs(self, rel: str) -> str:
        path = os.path.normpath(os.path.join(self.root, *rel.split("/"))) if rel else self.root
        assert path == self.root or path.startswith(self.root + os.sep), path
        return path

    def _rel(self, path: str) -> str:
        path = os.path.normpath(path)
        assert path == self.root or path.startswith(self.root + os.sep), path
        return os.path.relpath(path, self.root).replace(os.sep, "/") if path != self.root else ""

    def _walk(self) -> list[tuple[str, os.stat_result]]:
        """Every entry under the root, parents before children, names sorted.

        Not one instant: in process mode the other workers go on while the parent walks,
        so a name listed may be gone by its lstat (skipped: the walk saw it go), and a
        file renamed from a directory not walked yet into one already walked is seen
        nowhere (`_collect` must not take that for its end).
        """
        out: list[tuple[str, os.stat_result]] = []
        todo = [""]
        while todo:
            rel = todo.pop()
            try:
                names = self._real.listdir(self._abs(rel))
            except (FileNotFoundError, NotADirectoryError):
                continue  # removed (or replaced) since it was listed
            for name in sorted(names, reverse=True):
                child = f"{rel}/{name}" if rel else name
                st = self._lstat(child)
                if st is None:
                    continue
                out.append((child, st))
                if _stat.S_ISDIR(st.st_mode):
                    todo.append(child)
        return out

    def _scan(self) -> dict[str, tuple[int, bool, int]]:
        """Regular files and directories now under the root: path -> (inode, is_dir, mode)."""
        out: dict[str, tuple[int, bool, int]] = {}
        for rel, st in self._walk():
            if not (_stat.S_ISDIR(st.st_mode) or _stat.S_ISREG(st.st_mode)):
                continue
            out[rel] = (st.st_ino, _stat.S_ISDIR(st.st_mode), _stat.S_IMODE(st.st_mode))
            node = self._nodes.get(st.st_ino)
            if node is not None:
                node.path = rel
        return out

    def _lstat(self, rel: str) -> os.stat_result | None:
        """lstat of ``rel``, None when another process removed it since it was listed."""
        try:
            return self._real.lstat(self._abs(rel))
        except FileNotFoundError:
            return None

    def _locate(self, ino: int) -> str | None:
        """The current path of an inode: the cached one if it still holds, else a walk."""
        node = self._nodes.get(ino)
        if node is not None and node.path is not None:
            try:
                if self._real.lstat(self._abs(node.path)).st_ino == ino:
                    return node.path
            except OSError:
                pass
        return next((rel for rel, (i, _d, _m) in self._scan().items() if i == ino), None)

    def _pin(self, rel: str, ino: int) -> int | None:
        try:
            fd = self._real.open(self._abs(rel), os.O_RDONLY)
        except OSError:
            return None
        if self._real.fstat(fd).st_ino != ino:  # replaced between lstat and open
            self._real.close(fd)
            return None
        return fd

    def _read_current(self, node: Any) -> bytes | None:
        """An inode's current bytes, through our pin (or its path), None if unreadable."""
        fd, own = node.pin, False
        try:
            if fd is None:
                if node.path is None:
                    return None
                fd, own = self._real.open(self._abs(node.path), os.O_RDONLY), True
            self._real.lseek(fd, 0, os.SEEK_SET)
            chunks = []
            while chunk := self._real.read(fd, _CHUNK):
                chunks.append(chunk)
            return b"".join(chunks)
        except OSError:
            return None
        finally:
            if own:
                self._real.close(fd)

    def _wipe(self) -> None:
        for rel, st in reversed(self._walk()):  # children before their directory
            if _stat.S_ISDIR(st.st_mode):
                self._real.rmdir(self._abs(rel))
            else:
                self._real.unlink(self._abs(rel))

    def _create(self, rel: str, node: Any, data: bytes | None) -> None:
        path = self._abs(rel)
        if node.is_dir:
            self._real.mkdir(path, node.mode or 0o700)
            return
        fd = self._real.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, node.mode or 0o600)
        try:
            view = memoryview(data or b"")
            while view:
                view = view[self._real.write(fd, view):]
        finally:
            self._real.close(fd)
