"""The shim's patches: wrappers for the os/shutil/fcntl/time calls, and `open` rebuilt.

Why not hand back the object the original ``open`` returns: Python's buffer must sit
*above* the interception, as in a real process, so a ``write`` reaches the shim (and
the disk) only when the buffer flushes, and a killed processor's unflushed buffer never
lands. So we open the file with the original ``open`` in binary, unbuffered mode, wrap
it in `ShimRawFile` (every readinto/write/truncate/seek/close is intercepted), then stack
the standard ``io`` buffered and text layers on top exactly as ``io.open`` does.

`patch_all` finds the namespaces to patch: the real ``os``/``io``/``shutil``/``fcntl``
modules, or, when a pyfakefs ``Patcher`` is active, its fake module objects (which is
what a target's ``import os`` then refers to).
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import io
import os
import shutil
import stat as _stat
import sys
import time
import types
import warnings
from typing import Any

__all__ = ["ShimRawFile", "open_file", "patch_all"]

_OS_CALLS = ("open", "read", "write", "close", "fsync", "fdatasync", "lseek", "ftruncate",
             "fstat", "stat", "lstat", "replace", "rename", "unlink", "remove", "mkdir",
             "rmdir", "listdir", "scandir")
_SHUTIL_CALLS = {"move": "replace", "copy": "copy", "copy2": "copy", "copyfile": "copy"}
# path-taking calls that need nothing but a record: name -> (kind, writes)
_PATH_CALLS = {"stat": ("stat", False), "lstat": ("stat", False), "unlink": ("unlink", True),
               "remove": ("unlink", True), "mkdir": ("mkdir", True), "rmdir": ("rmdir", True),
               "listdir": ("listdir", False), "scandir": ("listdir", False)}
_FD_CALLS = {"read": "read", "lseek": "seek", "fstat": "stat", "ftruncate": "truncate",
             "fsync": "fsync", "fdatasync": "fsync"}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _arg(args, kwargs, index: int, name: str, default=None):
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


class ShimRawFile(io.RawIOBase):
    """The raw layer: delegates to the unbuffered underlying file, through the shim.

    When its processor is killed the underlying file is closed and the wrapper is
    marked dead: from then on writes are swallowed (a dead process's user-space buffer
    never reaches the disk, even when the garbage collector flushes it later) and close
    is a no-op, so unwinding and finalisers stay silent.
    """

    def __init__(self, shim: Any, under: Any, path: str, process: int,
                 closefd: bool = True) -> None:
        super().__init__()
        self.closefd = closefd
        self._shim = shim
        self._under = under
        self._path = path
        self._process = process
        self._dead = False
        self.name = getattr(under, "name", path)
        self.mode = getattr(under, "mode", "rb")
        # cached: a dead wrapper must still answer these without touching the file
        self._readable = under.readable()
        self._writable = under.writable()
        self._seekable = under.seekable()

    # -- plumbing ---------------------------------------------------------------

    def _op(self, kind: str, perform, **kw):
        return self._shim._file_op(self, kind, perform, **kw)

    def _refuse_dead(self):
        self._shim._check_caller_alive()
        raise ValueError("I/O operation on a file of a killed processor")

    def _die(self) -> None:
        """Called by the shim when the owning processor is killed."""
        self._dead = True
        try:
            self._under.close()
        except OSError:
            pass

    # -- io.RawIOBase -----------------------------------------------------------

    def readable(self) -> bool:
        return self._readable

    def writable(self) -> bool:
        return self._writable

    def seekable(self) -> bool:
        return self._seekable

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._under.fileno()

    def readinto(self, buffer) -> int:
        if self._dead:
            self._refuse_dead()
        view = memoryview(buffer).cast("B")

        def perform() -> int:
            data = self._under.read(len(view)) or b""
            view[: len(data)] = data
            return len(data)

        return self._op("read", perform, nbytes=len(view), count=lambda n: n)

    def readall(self) -> bytes:
        if self._dead:
            self._refuse_dead()
        return self._op("read", lambda: self._under.read() or b"", count=len)

    def write(self, data) -> int:
        payload = bytes(data)
        if self._dead:
            return len(payload)  # discarded: see the class docstring
        return self._op(
            "write",
            lambda: self._under.write(payload),
            nbytes=len(payload),
            writes=True,
            prefix=lambda keep: self._under.write(payload[:keep]),
            count=lambda n: n,
        )

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if self._dead:
            return 0
        return self._op("seek", lambda: self._under.seek(offset, whence))

    def tell(self) -> int:
        if self._dead:
            return 0
        return self._under.tell()

    def truncate(self, size: int | None = None) -> int:
        if self._dead:
            self._refuse_dead()
        target = self._under.tell() if size is None else size
        return self._op("truncate", lambda: self._under.truncate(size),
                        nbytes=target, writes=True)

    def flush(self) -> None:
        # FileIO.flush is a no-op too; the recorded "flush" is the buffered layer's
        return None

    def close(self) -> None:
        if self.closed:
            return
        try:
            if not self._dead:
                self._shim._file_close(self)
        finally:
            super().close()


def _flush_through_shim(buffered, flush) -> None:
    raw = buffered.raw
    if buffered.closed or not isinstance(raw, ShimRawFile) or raw._dead:
        return flush()
    # the flush is one intercepted call; the raw writes it causes are recorded inside it
    return raw._op("flush", flush)


class _Writer(io.BufferedWriter):
    def flush(self) -> None:
        _flush_through_shim(self, super().flush)


class _Random(io.BufferedRandom):
    def flush(self) -> None:
        _flush_through_shim(self, super().flush)


def _parse_mode(mode: str, buffering: int, encoding, errors, newline) -> tuple[str, bool]:
    """Validate like io.open; return (raw binary mode, binary?)."""
    chars = set(mode)
    if chars - set("axrwb+t") or len(mode) > len(chars):
        raise ValueError(f"invalid mode: {mode!r}")
    if "t" in chars and "b" in chars:
        raise ValueError("can't have text and binary mode at once")
    primary = [c for c in "xrwa" if c in chars]
    if len(primary) != 1:
        raise ValueError("must have exactly one of create/read/write/append mode")
    binary = "b" in chars
    if binary and encoding is not None:
        raise ValueError("binary mode doesn't take an encoding argument")
    if binary and errors is not None:
        raise ValueError("binary mode doesn't take an errors argument")
    if binary and newline is not None:
        raise ValueError("binary mode doesn't take a newline argument")
    if not binary and buffering == 0:
        raise ValueError("can't have unbuffered text I/O")
    return primary[0] + ("+" if "+" in chars else "") + "b", binary


def open_file(shim: Any, process: int, path: str, builtin_open, file, mode: str = "r",
              buffering: int = -1, encoding: str | None = None, errors: str | None = None,
              newline: str | None = None, closefd: bool = True, opener=None):
    """``io.open`` for an intercepted call: raw layer through the shim, io layers on top."""
    raw_mode, binary = _parse_mode(mode, buffering, encoding, errors, newline)
    if binary and buffering == 1:
        warnings.warn("line buffering (buffering=1) isn't supported in binary mode, "
                      "the default buffer size will be used", RuntimeWarning, stacklevel=3)
        buffering = -1

    def perform() -> ShimRawFile:
        under = builtin_open(file, raw_mode, buffering=0, closefd=closefd, opener=opener)
        raw = ShimRawFile(shim, under, path, process, closefd)
        shim._track_file(raw, path, process)
        return raw

    writes = raw_mode[0] != "r" or "+" in raw_mode
    raw = shim._run(process, "open", path, perform, writes=writes)
    try:
        line_buffering = buffering == 1
        if buffering in (1, -1):
            buffering = io.DEFAULT_BUFFER_SIZE
        if buffering == 0:
            return raw
        if "+" in raw_mode:
            buffer = _Random(raw, buffering)
        elif raw_mode[0] == "r":
            buffer = io.BufferedReader(raw, buffering)
        else:
            buffer = _Writer(raw, buffering)
        if binary:
            return buffer
        text = io.TextIOWrapper(buffer, encoding, errors, newline, line_buffering)
        text.mode = mode
        return text
    except BaseException:
        raw.close()
        raise


# -- the wrappers ----------------------------------------------------------------------


def _fd_target(shim, fd):
    """(processor, fd, info) when this call is to be intercepted, else None."""
    p = shim._bound()
    if p is None:
        return None
    if not isinstance(fd, int) and hasattr(fd, "fileno"):
        fd = fd.fileno()
    info = shim._fds.get(fd)
    return None if info is None else (p, fd, info)


def _path_wrapper(shim, orig, kind: str, writes: bool):
    def wrapper(*args, **kwargs):
        p = shim._bound()
        path = _arg(args, kwargs, 0, "path")
        path = None if p is None else shim._resolve("." if path is None else path,
                                                     kwargs.get("dir_fd"))
        if path is None:
            return orig(*args, **kwargs)
        return shim._run(p, kind, path, lambda: orig(*args, **kwargs), writes=writes)
    return wrapper


def _fd_wrapper(shim, real, orig, name: str):
    def wrapper(fd, *args, **kwargs):
        target = _fd_target(shim, fd)
        if target is None:
            return orig(fd, *args, **kwargs)
        p, fd, info = target
        kind = "dirsync" if name.endswith("sync") and info.is_dir else _FD_CALLS[name]

        def perform():
            result = orig(fd, *args, **kwargs)
            if kind in ("fsync", "dirsync") and shim.model is not None:
                with shim._quiet():
                    (shim.model.dir_synced if info.is_dir else shim.model.file_synced)(fd)
            return result
        if name == "read":
            return shim._run(p, kind, info.path, perform, nbytes=args[0], count=len)
        if name == "ftruncate":
            return shim._run(p, kind, info.path, perform, nbytes=args[0], writes=True)
        return shim._run(p, kind, info.path, perform)
    return wrapper


def _os_wrappers(shim, o) -> dict[str, Any]:
    w = {name: _path_wrapper(shim, getattr(o, name), *spec) for name, spec in _PATH_CALLS.items()}
    w.update({name: _fd_wrapper(shim, o, getattr(o, name), name) for name in _FD_CALLS})

    def os_open(*args, **kwargs):
        p = shim._bound()
        path = None if p is None else shim._resolve(_arg(args, kwargs, 0, "path"),
                                                    kwargs.get("dir_fd"))
        if path is None:
            return o.open(*args, **kwargs)
        flags = _arg(args, kwargs, 1, "flags", 0)

        def perform() -> int:
            fd = o.open(*args, **kwargs)
            shim._track_fd(fd, path, p, _stat.S_ISDIR(o.fstat(fd).st_mode), flags)
            return fd
        return shim._run(p, "open", path, perform, writes=bool(flags & _WRITE_FLAGS))

    def os_write(fd, data):
        target = _fd_target(shim, fd)
        if target is None:
            return o.write(fd, data)
        p, fd, info = target
        view = memoryview(data).cast("B")
        return shim._run(p, "write", info.path, lambda: o.write(fd, view), nbytes=len(view),
                         writes=True, prefix=lambda keep: o.write(fd, view[:keep]),
                         count=lambda n: n)

    def os_close(fd):
        target = _fd_target(shim, fd)
        if target is None:
            return o.close(fd)
        p, fd, info = target
        ran = []

        def perform():
            ran.append(True)
            return o.close(fd)
        try:
            return shim._run(p, "close", info.path, perform)
        finally:
            # close(2) frees the descriptor even when it fails; a kill already closed it
            if not ran and shim._fds.get(fd) is info:
                with contextlib.suppress(OSError):
                    o.close(fd)
            if shim._fds.get(fd) is info:
                shim._untrack(fd)

    def two_paths(orig, kind, quiet=False, a="src", b="dst"):
        def wrapper(*args, **kwargs):
            p = shim._bound()
            src, dst = _arg(args, kwargs, 0, a), _arg(args, kwargs, 1, b)
            inside = p is not None and (
                shim._resolve(src, kwargs.get("src_dir_fd")) is not None
                or shim._resolve(dst, kwargs.get("dst_dir_fd")) is not None)
            if not inside:
                return orig(*args, **kwargs)

            def perform():
                if not quiet:
                    return orig(*args, **kwargs)
                with shim._quiet():  # one call in the history, not its inner os calls
                    return orig(*args, **kwargs)
            return shim._run(p, kind, shim._abs(src, kwargs.get("src_dir_fd")), perform,
                             path2=shim._abs(dst, kwargs.get("dst_dir_fd")), writes=True)
        return wrapper

    w.update(open=os_open, write=os_write, close=os_close,
             replace=two_paths(o.replace, "replace"), rename=two_paths(o.rename, "replace"))
    w.update({name: two_paths(getattr(o, name), kind, quiet=True)
              for name, kind in _SHUTIL_CALLS.items()})
    return w


def _other_wrappers(shim, o) -> dict[str, Any]:
    def flock(fd, operation):
        target = _fd_target(shim, fd)
        if target is None:
            return o.flock(fd, operation)
        p, fd, info = target
        return shim._run(p, "lock", info.path,
                         lambda: shim._flock(p, fd, operation, info.path))

    def sleep(seconds):
        p = shim._bound()
        if p is None:
            return o.sleep(seconds)
        # a bound thread yields to the schedule instead of sleeping: fast and deterministic
        shim._check_alive(p)
        if shim.scheduler is not None:
            shim.scheduler.switch_point(p)
            shim._check_alive(p)
        return None

    def open_(file, mode="r", buffering=-1, encoding=None, errors=None, newline=None,
              closefd=True, opener=None):
        p = shim._bound()
        path = None if p is None else shim._resolve(file)
        if path is None:
            return o.builtin_open(file, mode, buffering, encoding, errors, newline, closefd,
                                  opener)
        return open_file(shim, p, path, o.builtin_open, file, mode, buffering, encoding,
                         errors, newline, closefd, opener)
    return {"flock": flock, "sleep": sleep, "open": open_}


def _fake_path_wrappers(pathmod, osmod) -> dict[str, Any]:
    """pyfakefs's os.path and os.makedirs skip os.stat/os.mkdir; route them through."""
    def stat_or_none(path, stat_call):
        try:
            return stat_call(path)
        except (OSError, ValueError):
            return None

    def makedirs(name, mode=0o777, exist_ok=False):
        head, tail = pathmod.split(name)
        if not tail:
            head, tail = pathmod.split(head)
        if head and tail and stat_or_none(head, osmod.stat) is None:
            with contextlib.suppress(FileExistsError):
                makedirs(head, exist_ok=exist_ok)
        try:
            osmod.mkdir(name, mode)
        except OSError:
            st = stat_or_none(name, osmod.stat)
            if not exist_ok or st is None or not _stat.S_ISDIR(st.st_mode):
                raise

    def test(mode_test, stat_name="stat"):
        def check(path):
            st = stat_or_none(path, getattr(osmod, stat_name))
            return st is not None and mode_test(st.st_mode)
        return check
    return {"makedirs": (osmod, makedirs), "exists": (pathmod, test(lambda m: True)),
            "lexists": (pathmod, test(lambda m: True, "lstat")),
            "isdir": (pathmod, test(_stat.S_ISDIR)), "isfile": (pathmod, test(_stat.S_ISREG)),
            "getsize": (pathmod, lambda path: osmod.stat(path).st_size)}


def _fake_pathlib_patches() -> list:
    """pyfakefs's FakePath opens files itself; give it back pathlib's own methods, which
    go through ``io.open`` (patched) as they do on the real disk."""
    fake_path = getattr(sys.modules.get("pyfakefs.fake_pathlib"), "FakePath", None)
    if fake_path is None:
        return []
    real_path = next((c for c in fake_path.__mro__
                      if c.__module__ == "pathlib" and c.__name__ == "Path"), None)
    return [] if real_path is None else [
        (fake_path, name, vars(real_path)[name])
        for name in ("open", "read_bytes", "read_text", "write_bytes", "write_text")]


def _active_patcher():
    """The running pyfakefs Patcher, if any (looked up, never imported: no dependency)."""
    module = sys.modules.get("pyfakefs.fake_filesystem_unittest")
    patcher = getattr(getattr(module, "Patcher", None), "PATCHER", None)
    return patcher if patcher is not None and getattr(patcher, "is_patching", False) else None


def patch_all(make_shim):
    """Capture the originals, build the shim, patch; return (undo, shim)."""
    patcher = _active_patcher()
    if patcher is None:
        osm, shm, fcm, open_targets = os, shutil, fcntl, [builtins, io]
    else:
        fake = patcher.fake_modules
        osm, shm, fcm = fake["os"], fake["shutil"], fake.get("fcntl", fcntl)
        open_targets = [builtins] + [fake[n] for n in ("io", "_io") if n in fake]
    real = types.SimpleNamespace(**{n: getattr(osm, n) for n in _OS_CALLS},
                                 **{n: getattr(shm, n) for n in _SHUTIL_CALLS},
                                 builtin_open=builtins.open, flock=fcm.flock,
                                 sleep=time.sleep, makedirs=osm.makedirs)
    shim = make_shim(real, osm.path)
    wrappers = _os_wrappers(shim, real)
    plan = [(shm if name in _SHUTIL_CALLS else osm, name, fn) for name, fn in wrappers.items()]
    other = _other_wrappers(shim, real)
    plan += [(fcm, "flock", other["flock"]), (time, "sleep", other["sleep"])]
    plan += [(target, "open", other["open"]) for target in open_targets]
    if patcher is not None:
        plan += [(obj, name, fn)
                 for name, (obj, fn) in _fake_path_wrappers(osm.path, osm).items()]
        plan += _fake_pathlib_patches()
    saved = []

    def undo() -> None:
        for obj, name, had, old in reversed(saved):
            if had:
                setattr(obj, name, old)
            else:
                with contextlib.suppress(AttributeError):
                    delattr(obj, name)
    try:
        for obj, name, fn in plan:
            own = vars(obj)
            saved.append((obj, name, name in own, own.get(name)))
            setattr(obj, name, fn)
    except BaseException:
        undo()
        raise
    return undo, shim
