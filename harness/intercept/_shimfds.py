"""The shim's descriptor table and its flock emulation: who opened what, who holds which lock.

`Descriptors` is mixed into `harness.intercept.shim.Shim` and works on state that ``Shim.__init__``
sets up (``_cond``, ``_fds``, ``_locks``, ``_lock_key``, ``_waiting``, ``_threads``,
``_untold``) and on its ``real`` calls, ``model``, ``scheduler``, ``lock_timeout``,
``_check_alive``, ``_quiet``, ``_rel`` and ``_file_op``. It lives apart so the shim's
call pipeline and fault handling stay short.

Locks are emulated rather than passed to the real ``flock`` so that a blocked processor
hands its turn to the schedule (or is reported as deadlocked) instead of sleeping in the
kernel. As with ``flock(2)``, a lock belongs to an open file description (here: a
tracked descriptor) and conflicts with any other description of the same file, keyed
by ``(st_dev, st_ino)``.

A killed processor's descriptors are buried, not closed: each number is kept taken by a
placeholder (``/dev/null`` dup2'd over it, so the real file is released at once) and
marked dead until the shim is uninstalled. Closing them would free the numbers, the
next open anywhere would get one, and a late ``os.close(n)`` from the dead processor
(a finaliser, an unwinding ``finally``, the garbage collector) would close a live
processor's file. Under pyfakefs the fake descriptor itself stays open as the
placeholder (nothing is on a real disk to release).

An injected fsync failure (`FsyncFailure`) is told, as Linux's errseq_t tells it, to
the descriptor whose fsync failed and, once each at their next fsync, to the others
open on the same file then; while the model has dropped bytes, writes and truncations
are reported to it (``_wrote``, ``_truncated``; crash-model rule 7).
"""

from __future__ import annotations

import contextlib
import errno as _errno
import fcntl
import os
import stat
import threading
import time

__all__ = ["DeadlockError", "Descriptors", "Fd"]

# File objects whose descriptor number was taken over by someone else before the shim
# could close it: kept alive forever, because closing (or collecting) them would close
# that someone else's descriptor.
_NEVER_CLOSE: list = []


class DeadlockError(BaseException):
    """A blocking flock can never be granted: every processor that could release it waits."""

    # public as harness.intercept.shim.DeadlockError: tracebacks name it there, as before the split
    __module__ = "harness.intercept.shim"


class Fd:
    """What the shim knows about one tracked descriptor (and the file object owning it)."""

    __slots__ = ("path", "process", "is_dir", "flags", "file", "dead")

    def __init__(self, path, process, is_dir, flags, file=None) -> None:
        self.path, self.process, self.is_dir, self.flags, self.file = (
            path, process, is_dir, flags, file)
        self.dead = False  # its processor was killed: the number is a placeholder


class Descriptors:
    """Mixin for `Shim`: tracks descriptors and file objects, emulates flock on them."""

    # -- descriptors --------------------------------------------------------------

    def _track_fd(self, fd: int, path: str, p: int, is_dir: bool, flags: int) -> None:
        with self._cond:
            self._fds[fd] = Fd(path, p, is_dir, flags)

    def _track_file(self, raw, path: str, p: int) -> None:
        fd = raw.fileno()
        with self._cond:
            info = self._fds.get(fd)
            if info is None:
                self._fds[fd] = Fd(path, p, False, None, raw)
            else:  # open(fd): the file object now owns the descriptor
                info.file = raw
        if info is None and self.windows is not None:
            self.windows.note(fd, opened=True)  # process mode: the parent's table

    def _untrack(self, fd: int, info: Fd | None = None) -> None:
        """Forget ``fd``; given ``info``, only if the number still means that descriptor
        (once closed, another thread's open may already have it)."""
        with self._cond:
            if info is not None and self._fds.get(fd) is not info:
                return
            self._fds.pop(fd, None)
            self._unlock(fd)

    def _file_close(self, raw) -> None:
        try:
            fd = raw.fileno()
        except (OSError, ValueError):
            return
        info = self._fds.get(fd)
        if self.windows is not None and raw.closefd:
            self.windows.note(fd, opened=False)  # told before the close, never after
        try:
            self._file_op(raw, "close", raw._under.close)
        finally:
            if not raw._dead:  # killed during the close: buried, closed at uninstall
                if not getattr(raw._under, "closed", True):
                    with contextlib.suppress(OSError):
                        raw._under.close()  # close(2) frees the descriptor even when it fails
                if raw.closefd:
                    self._untrack(fd, info)

    def _creates(self, path: str) -> bool:
        """Would creating ``path`` add a directory entry (absent, in an existing directory)?

        Asked with the original stat before an open with O_CREAT or a mkdir, so a full
        disk can refuse only what needs space (see `actions.Call.creates`)."""
        try:
            self.real.stat(path)
            return False
        except FileNotFoundError:
            pass
        except (OSError, ValueError):
            return False
        try:
            return stat.S_ISDIR(self.real.stat(self._path.dirname(path)).st_mode)
        except (OSError, ValueError):
            return False

    # -- fsync errors and dropped writes (see the module docstring) -----------------

    def _sync_failed(self, fd: int, info: Fd, fault: str) -> None:
        """``fault`` failed the fsync of ``fd``: the model drops what it was to write; the
        other descriptors open on the file now are told at their next fsync."""
        if info.is_dir:
            return
        with self._quiet():
            if self.model is not None:
                self.model.file_sync_failed(fd)
            st = self.real.fstat(fd)
            with self._cond:
                self._untold.pop(fd, None)  # told now, an earlier failure included
                for other, o in list(self._fds.items()):
                    if other == fd or o.dead or o.is_dir:
                        continue
                    try:
                        ost = self.real.fstat(other)
                    except OSError:
                        continue
                    if (ost.st_dev, ost.st_ino) == (st.st_dev, st.st_ino):
                        self._untold[other] = (o, fault)

    def _untold_error(self, fd: int, info: Fd) -> str | None:
        """The fault behind an fsync failure ``fd`` was not told of yet (it is now)."""
        with self._cond:
            pending = self._untold.pop(fd, None)
        return pending[1] if pending is not None and pending[0] is info else None

    def _wrote(self, fd: int, n: int) -> int:
        """``n`` bytes just landed before ``fd``'s offset: written again, not dropped."""
        if n and self.model is not None and getattr(self.model, "dropping", False):
            with self._quiet():
                end = self.real.lseek(fd, 0, os.SEEK_CUR)
                if end is None:  # pyfakefs's lseek moves but says nothing; its file tells
                    end = self.real.lseek.__self__.filesystem.get_open_file(fd).tell()
                self.model.file_written(fd, end - n, end)
        return n

    def _truncated(self, fd: int, size: int) -> None:
        if self.model is not None and getattr(self.model, "dropping", False):
            with self._quiet():
                self.model.file_written(fd, size, None)

    # -- a killed processor's descriptors (see the module docstring) -----------------

    def _bury(self, p: int) -> None:
        """Processor ``p`` died: release its files and locks, keep its descriptor numbers."""
        with self._cond:
            mine = [(fd, i) for fd, i in self._fds.items() if i.process == p and not i.dead]
            for fd, info in mine:
                self._unlock(fd)
                info.dead = True
                self._graves.append((fd, info))
            self._cond.notify_all()
        dup2 = None if getattr(self.real, "fake", False) else getattr(self.real, "dup2", None)
        for fd, info in mine:
            if info.file is not None:
                info.file._die()  # its buffer's later flushes are swallowed
            if dup2 is not None:
                with contextlib.suppress(OSError):
                    dup2(self._placeholder(), fd)  # atomic: the number is never free

    def _placeholder(self) -> int:
        if self._null is None:
            self._null = self.real.open(os.devnull, os.O_RDWR)
        return self._null

    def _dead_fd(self, p: int, info: Fd) -> None:
        """A call other than close on a buried descriptor: refused, never recorded."""
        self._check_alive(p)  # the dead processor itself (its unwinding, its finalisers)
        # anyone else (a revived processor's old object): the descriptor is not theirs
        raise OSError(_errno.EBADF, os.strerror(_errno.EBADF), info.path)

    def _close_graves(self) -> None:
        """At uninstall: really close the buried descriptors, so nothing outlives the shim."""
        with self._cond:
            graves, self._graves = self._graves, []
            ours = [(fd, info) for fd, info in graves if self._fds.get(fd) is info]
            for fd, _info in ours:
                del self._fds[fd]
        for fd, info in graves:
            under = None if info.file is None else info.file._under
            if (fd, info) not in ours or not self._still_buried(fd):
                if under is not None:  # the number went to someone else: never close it
                    _NEVER_CLOSE.append(under)
                continue
            if under is not None:
                with contextlib.suppress(OSError):
                    under.close()
            if under is None or not info.file.closefd:
                with contextlib.suppress(OSError):
                    self.real.close(fd)
        if self._null is not None:
            with contextlib.suppress(OSError):
                self.real.close(self._null)
            self._null = None

    def _still_buried(self, fd: int) -> bool:
        """Does ``fd`` still hold our placeholder (not a number someone else reopened)?"""
        if self._null is None:  # pyfakefs, or nothing was ever dup2'd
            return True
        try:
            a, b = self.real.fstat(fd), self.real.fstat(self._null)
        except OSError:
            return False
        return (a.st_dev, a.st_ino, a.st_rdev) == (b.st_dev, b.st_ino, b.st_rdev)

    # -- flock emulation: per open file description, keyed by (st_dev, st_ino) -------

    def _unlock(self, fd: int) -> None:
        key = self._lock_key.pop(fd, None)
        if key is not None:
            self._locks.get(key, {}).pop(fd, None)
            self._cond.notify_all()

    def _flock(self, p: int, fd: int, op: int, path: str) -> None:
        if op & fcntl.LOCK_UN:
            with self._cond:
                self._unlock(fd)
            return
        if not op & (fcntl.LOCK_SH | fcntl.LOCK_EX):
            raise OSError(_errno.EINVAL, os.strerror(_errno.EINVAL), path)
        want = fcntl.LOCK_EX if op & fcntl.LOCK_EX else fcntl.LOCK_SH
        st = self.real.fstat(fd)
        key = (st.st_dev, st.st_ino)
        me, deadline = threading.get_ident(), time.monotonic() + self.lock_timeout
        while True:
            with self._cond:
                self._check_alive(p)
                holders = self._locks.setdefault(key, {})
                others = {f: h for f, h in holders.items()
                          if f != fd and (want == fcntl.LOCK_EX or h[0] == fcntl.LOCK_EX)}
                if not others:
                    self._waiting.pop(me, None)
                    holders[fd] = (want, p)
                    self._lock_key[fd] = key
                    return
                if op & fcntl.LOCK_NB:
                    raise BlockingIOError(_errno.EWOULDBLOCK,
                                          os.strerror(_errno.EWOULDBLOCK), path)
                if self.scheduler is None:
                    stuck = not self._can_progress(others, me)
                    if stuck or time.monotonic() > deadline:
                        self._waiting.pop(me, None)
                        raise DeadlockError(self._waits_text(p, want, path, others))
                    self._waiting[me] = p
                    self._cond.wait(0.02)
                    continue
                self._waiting[me] = p
            try:
                go_on = self.scheduler.blocked(p)
            finally:
                with self._cond:
                    self._waiting.pop(me, None)
            if go_on is False:
                raise DeadlockError(self._waits_text(p, want, path, others)
                                    + "; every live processor is blocked")

    def _can_progress(self, others, me: int) -> bool:
        """Some holder runs in another thread that is not itself waiting for a lock."""
        return any(t != me and t not in self._waiting
                   for _, holder in others.values() for t in self._threads.get(holder, ()))

    def _waits_text(self, p: int, want: int, path: str, others) -> str:
        names = {fcntl.LOCK_EX: "LOCK_EX", fcntl.LOCK_SH: "LOCK_SH"}
        held = ", ".join(f"processor {h} (fd {f}, {names[m]})"
                         for f, (m, h) in sorted(others.items()))
        return f"processor {p} waits for {names[want]} on {self._rel(path)} held by {held}"
