"""The fault-injecting FUSE filesystem: a passthrough to a backing directory, every call gated.

Served by `serve` in a process of its own (`harness.intercept.fuselayer` starts it), with
mfusepy, a ctypes binding of libfuse 3's high-level API (why mfusepy: docs/fuse-layer.md).
Each request the kernel sends for a file of the mount becomes the same call on the backing
directory, passed through `harness.intercept.fusegate.Gate.run`, which numbers it, asks
the fault plan and records it. Call kinds are the shim's (`harness.faults.actions`):

- create/open -> ``open`` (flags as given; O_CREAT of a new name ``creates``), read,
  write (a torn prefix is a ``pwrite`` of the first bytes), flush -> ``close`` (one per
  close(2) of a descriptor), fsync, fsyncdir -> ``dirsync``, rename -> ``replace``,
  unlink, mkdir, rmdir, readdir -> ``listdir``, truncate, link, symlink, chmod, chown
  and utimens -> ``setattr``.
- Not calls of the program, so neither numbered nor recorded: getattr (the kernel's
  lookups; a program's stat is one too, indistinguishable), statfs, readlink, release.
- Locks: POSIX (fcntl) and flock locks are left to the kernel, which then keeps them for
  the mount across every process, as on a local disk; they are not seen, so a fault
  matching ``lock`` calls never fires under this layer.
- mmap: shared mappings work through the kernel's page cache (SQLite's ``-shm``); their
  write-back is the kernel's, not a call of any processor, so it is not recorded.
- O_DIRECT is dropped on the backing file (its alignment rules are the backing file
  system's); O_SYNC/O_DSYNC writes reach us as a write then an fsync, as the kernel sends
  them. RENAME_EXCHANGE and RENAME_WHITEOUT are refused with EINVAL.
"""

from __future__ import annotations

import errno as _errno
import os
import stat as _stat
import threading
from typing import Any

from harness.intercept.fusegate import Gate, Handle

__all__ = ["ATTRS", "make_operations"]

ATTRS = ("st_mode", "st_ino", "st_nlink", "st_uid", "st_gid", "st_size", "st_atime",
         "st_mtime", "st_ctime", "st_blocks", "st_blksize")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_RENAME_NOREPLACE = 1


def _entries(path: str) -> list[tuple[str, dict, int]]:
    out = []
    for entry in os.scandir(path):
        try:
            mode = entry.stat(follow_symlinks=False).st_mode
        except FileNotFoundError:
            continue  # removed while we listed: as if listed a moment later
        out.append((entry.name, {"st_ino": entry.inode(), "st_mode": mode}, 0))
    return out


def make_operations(mfusepy: Any, gate: Gate) -> Any:
    """An `mfusepy.Operations` over ``gate.backing`` (the class is built here so that
    importing this module does not need libfuse)."""

    class Passthrough(mfusepy.Operations):
        use_ns = True

        def __init__(self) -> None:
            self._ids = threading.Lock()

        # -- helpers

        @staticmethod
        def _rel(path: str | None) -> str | None:
            return None if path is None else path.lstrip("/")

        def _real(self, path: str | None) -> str:
            if path is None:
                raise OSError(_errno.ENOENT, "no path (an unlinked file)")
            return gate.path(self._rel(path))

        def _open(self, rel: str, flags: int, mode: int = 0o600) -> int:
            fd = os.open(gate.path(rel), (flags & ~os.O_DIRECT & ~os.O_NOCTTY) | os.O_CLOEXEC,
                         mode)
            is_dir = _stat.S_ISDIR(os.fstat(fd).st_mode)
            gate.handles[fd] = Handle(fd, rel, is_dir=is_dir)
            if flags & os.O_TRUNC:
                self._written(fd, 0, None)
            return fd

        @staticmethod
        def _written(fd: int, lo: int, hi: int | None) -> None:
            model = gate.model
            if model is not None and getattr(model, "dropping", False):
                model.file_written(fd, lo, hi)

        # -- metadata, not numbered

        def getattr(self, path, fh=None):
            if gate.hello(path):
                raise OSError(_errno.ENOENT, "hello")
            st = os.fstat(fh) if fh is not None and fh in gate.handles else os.lstat(
                self._real(path))
            out = {k: getattr(st, k) for k in ATTRS}
            out.update(st_atime=st.st_atime_ns, st_mtime=st.st_mtime_ns,
                       st_ctime=st.st_ctime_ns)
            return out

        def statfs(self, path):
            sv = os.statvfs(gate.backing)
            return {k: getattr(sv, k) for k in ("f_bavail", "f_bfree", "f_blocks", "f_bsize",
                                                 "f_favail", "f_ffree", "f_files", "f_flag",
                                                 "f_frsize", "f_namemax")}

        def readlink(self, path):
            return os.readlink(self._real(path))

        def release(self, path, fh):
            handle = gate.handles.pop(fh, None)
            if handle is not None:
                os.close(fh)
            return 0

        releasedir = release

        # -- directories

        def opendir(self, path):
            rel = self._rel(path)
            return gate.run("open", rel, lambda: self._open(rel, os.O_RDONLY | os.O_DIRECTORY),
                            flags=os.O_RDONLY | os.O_DIRECTORY)

        def readdir(self, path, fh):
            rel = self._rel(path)
            # with use_ino an entry needs its inode number: readdir(3) skips d_ino == 0
            return gate.run("listdir", rel, lambda: [".", "..", *_entries(self._real(path))])

        def fsyncdir(self, path, datasync, fh):
            handle = gate.handles.get(fh)

            def perform():
                os.fsync(fh)
                if gate.model is not None:
                    gate.model.dir_synced(fh)

            return gate.run("dirsync", self._rel(path), perform, handle=handle)

        def mkdir(self, path, mode):
            return gate.run("mkdir", self._rel(path), lambda: os.mkdir(self._real(path), mode),
                            writes=True, creates=True)

        def rmdir(self, path):
            return gate.run("rmdir", self._rel(path), lambda: os.rmdir(self._real(path)),
                            writes=True)

        def unlink(self, path):
            return gate.run("unlink", self._rel(path), lambda: os.unlink(self._real(path)),
                            writes=True)

        def rename(self, old, new, flags=0):
            if flags & ~_RENAME_NOREPLACE:
                raise OSError(_errno.EINVAL, "RENAME_EXCHANGE/WHITEOUT are refused by the "
                                             "FUSE layer")
            src, dst = self._real(old), self._real(new)

            def perform():
                if flags & _RENAME_NOREPLACE and os.path.lexists(dst):
                    raise OSError(_errno.EEXIST, os.strerror(_errno.EEXIST), new)
                before = os.lstat(src).st_ino
                os.rename(src, dst)
                if gate.model is not None and os.path.dirname(src) != os.path.dirname(dst):
                    gate.model.renamed(src, dst, before)  # rule 2: one change to both

            return gate.run("replace", self._rel(old), perform, rel2=self._rel(new),
                            writes=True)

        def link(self, target, source):
            return gate.run("link", self._rel(source),
                            lambda: os.link(self._real(source), self._real(target)),
                            rel2=self._rel(target), writes=True)

        def symlink(self, target, source):
            # mfusepy: ``target`` is the new name, ``source`` the link's text
            rel = self._rel(target)
            return gate.run("symlink", rel, lambda: os.symlink(source, self._real(target)),
                            writes=True, creates=True)

        def chmod(self, path, mode):
            return gate.run("setattr", self._rel(path), lambda: os.chmod(self._real(path), mode),
                            writes=True)

        def chown(self, path, uid, gid):
            return gate.run("setattr", self._rel(path),
                            lambda: os.chown(self._real(path), uid, gid), writes=True)

        def utimens(self, path, times=None):
            return gate.run("setattr", self._rel(path),
                            lambda: os.utime(self._real(path), ns=times), writes=True)

        # -- files

        def create(self, path, mode, flags=os.O_WRONLY):
            rel = self._rel(path)
            flags |= os.O_CREAT
            return gate.run("open", rel, lambda: self._open(rel, flags, mode), writes=True,
                            creates=not os.path.lexists(gate.path(rel)), flags=flags)

        def open(self, path, flags):
            rel = self._rel(path)
            return gate.run("open", rel, lambda: self._open(rel, flags),
                            writes=bool(flags & _WRITE_FLAGS), flags=flags)

        def read(self, path, size, offset, fh):
            handle = gate.handles.get(fh)
            rel = handle.rel if handle else self._rel(path)
            return gate.run("read", rel, lambda: os.pread(fh, size, offset), nbytes=size,
                            count=len, handle=handle)

        def write(self, path, data, offset, fh):
            handle = gate.handles.get(fh)
            rel = handle.rel if handle else self._rel(path)

            def put(view) -> int:
                n = os.pwrite(fh, view, offset)
                self._written(fh, offset, offset + n)
                return n

            return gate.run("write", rel, lambda: put(data), nbytes=len(data), writes=True,
                            prefix=lambda keep: put(data[:keep]), count=lambda n: n,
                            handle=handle)

        def truncate(self, path, length, fh=None):
            def perform():
                os.truncate(self._real(path), length)
                if gate.model is not None and getattr(gate.model, "dropping", False):
                    fd = os.open(self._real(path), os.O_RDONLY | os.O_CLOEXEC)
                    try:
                        self._written(fd, length, None)
                    finally:
                        os.close(fd)

            return gate.run("truncate", self._rel(path), perform, nbytes=length, writes=True)

        def flush(self, path, fh):
            handle = gate.handles.get(fh)
            rel = handle.rel if handle else self._rel(path)
            return gate.run("close", rel, lambda: 0, handle=handle)

        def fsync(self, path, datasync, fh):
            handle = gate.handles.get(fh)
            rel = handle.rel if handle else self._rel(path)

            def perform():
                (os.fdatasync if datasync else os.fsync)(fh)
                if gate.model is not None:
                    gate.model.file_synced(fh)

            return gate.run("fsync", rel, perform, handle=handle)

    return Passthrough()
