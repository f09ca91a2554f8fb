"""The shim's patch table: wrappers for the os/shutil/fcntl/time calls and `open`, applied.

Each wrapper asks the shim whether the calling thread is bound to a processor and the
call touches the sandbox; if not, the original runs untouched. `patch_all` finds the
namespaces to patch: the real ``os``/``io``/``shutil``/``fcntl`` modules, or, when a
pyfakefs ``Patcher`` is active, its fake module objects (which is what a target's
``import os`` then refers to). File objects themselves are built in `_shimfile`.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import fcntl
import io
import os
import platform
import random
import shutil
import stat as _stat
import time
import types
from typing import Any

from harness.intercept._callpatches import _arg, _fd_target, other_wrappers
from harness.intercept._pyfakefs import active_patcher as _active_patcher
from harness.intercept._pyfakefs import fake_path_wrappers as _fake_path_wrappers
from harness.intercept._pyfakefs import fake_pathlib_patches as _fake_pathlib_patches
from harness.intercept._pyfakefs import rebind_imported_names as _rebind_imported_names

__all__ = ["patch_all"]

_OS_CALLS = ("open", "read", "write", "close", "fsync", "fdatasync", "lseek", "ftruncate",
             "fstat", "stat", "lstat", "replace", "rename", "unlink", "remove", "mkdir",
             "rmdir", "listdir", "scandir", "link", "symlink", "utime", "chmod", "truncate",
             "access", "pread", "pwrite", "writev")
_SHUTIL_CALLS = {"move": "replace", "copy": "copy", "copy2": "copy", "copyfile": "copy"}
# path-taking calls that need nothing but a record: name -> (kind, writes)
_PATH_CALLS = {"stat": ("stat", False), "lstat": ("stat", False), "unlink": ("unlink", True),
               "remove": ("unlink", True), "mkdir": ("mkdir", True), "rmdir": ("rmdir", True),
               "listdir": ("listdir", False), "scandir": ("listdir", False),
               "access": ("stat", False), "utime": ("setattr", True),
               "chmod": ("setattr", True)}
_FD_CALLS = {"read": "read", "lseek": "seek", "fstat": "stat", "ftruncate": "truncate",
             "fsync": "fsync", "fdatasync": "fsync"}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_SYNC_FLAGS = os.O_SYNC | os.O_DSYNC


def _path_wrapper(shim, orig, kind: str, writes: bool):
    def wrapper(*args, **kwargs):
        p = shim._bound()
        path = _arg(args, kwargs, 0, "path")
        path = None if p is None else shim._resolve("." if path is None else path,
                                                     kwargs.get("dir_fd"))
        if path is None:
            return orig(*args, **kwargs)
        def stat_call():
            st = orig(*args, **kwargs)
            with shim._own():
                return shim.alias(st)
        call = stat_call if kind == "stat" else (lambda: orig(*args, **kwargs))
        if kind == "unlink" and shim.windows is not None:
            call = _checked(lambda: shim.windows.unlink(path), call)
        return shim._run(p, kind, path, call, writes=writes, creates=kind == "mkdir")
    return wrapper


def _checked(check, perform):
    """``perform`` after ``check`` (a `windows` rule: it raises what Windows refuses)."""
    return lambda: (check(), perform())[1]


def _fd_wrapper(shim, real, orig, name: str):
    def wrapper(fd, *args, **kwargs):
        target = _fd_target(shim, fd)
        if target is None:
            return orig(fd, *args, **kwargs)
        p, fd, info = target
        kind = "dirsync" if name.endswith("sync") and info.is_dir else _FD_CALLS[name]

        def perform():
            result = orig(fd, *args, **kwargs)
            if name == "fstat":
                with shim._own():
                    return shim.alias(result)
            if name == "ftruncate":
                with shim._own():
                    shim._truncated(fd, args[0])
            if kind in ("fsync", "dirsync"):
                with shim._own():
                    late = None
                    if shim.model is not None:
                        with shim._quiet():  # a process-mode model answers for others
                            late = (shim.model.dir_synced if info.is_dir
                                    else shim.model.file_synced)(fd)
                    late = shim._untold_error(fd, info) or late
                if late:  # written back now, but an earlier failure is reported (errseq_t)
                    exc = OSError(errno.EIO, os.strerror(errno.EIO), info.path)
                    exc._shim_fault = late  # type: ignore[attr-defined]
                    raise exc
            return result
        if kind == "fsync" and shim.windows is not None:
            perform = _checked(lambda: shim.windows.fsync(info), perform)
        if name == "read":
            return shim._run(p, kind, info.path, perform, nbytes=args[0], count=len)
        if name == "ftruncate":
            return shim._run(p, kind, info.path, perform, nbytes=args[0], writes=True)
        try:
            return shim._run(p, kind, info.path, perform)
        except OSError as exc:
            if getattr(exc, "_shim_dropped", False):  # an injected fsync failure
                shim._sync_failed(fd, info, exc._shim_fault)  # type: ignore[attr-defined]
            raise
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
            if shim.windows is not None:
                shim.windows.open(path)
            with shim._quiet():  # pyfakefs's open calls its own (patched) chmod: one call
                fd = o.open(*args, **kwargs)
            is_dir = _stat.S_ISDIR(o.fstat(fd).st_mode)
            with shim._own():
                shim._track_fd(fd, path, p, is_dir, flags)
                if shim.windows is not None:
                    shim.windows.note(fd, opened=True)
                if flags & os.O_TRUNC:
                    shim._truncated(fd, 0)
            return fd
        creates = bool(flags & os.O_CREAT) and shim._creates(path)  # looked before asking
        return shim._run(p, "open", path, perform, writes=bool(flags & _WRITE_FLAGS),
                         creates=creates, flags=flags)

    def os_write(fd, data):
        target = _fd_target(shim, fd)
        if target is None:
            return o.write(fd, data)
        p, fd, info = target
        view = memoryview(data).cast("B")

        def perform() -> int:
            n = o.write(fd, view)
            with shim._own():
                n = shim._wrote(fd, n)
            # (a file object's descriptor has no flags of ours: open() never sets O_SYNC)
            if (info.flags or 0) & _SYNC_FLAGS and shim.model is not None:
                # O_SYNC / O_DSYNC: the data is durable when write() returns
                with shim._own(), shim._quiet():
                    shim.model.file_synced(fd)
            return n
        return shim._run(p, "write", info.path, perform, nbytes=len(view),
                         writes=True, prefix=lambda keep: shim._wrote(fd, o.write(fd, view[:keep])),
                         count=lambda n: n)

    def os_close(fd):
        buried = shim._fds.get(fd) if shim._active and isinstance(fd, int) else None
        if buried is not None and buried.dead:
            # a killed processor's late close (a finaliser, from any thread): a no-op, so
            # the number stays taken until uninstall and cannot close a live file
            return None
        target = _fd_target(shim, fd)
        if target is None:
            return o.close(fd)
        p, fd, info = target
        ran = []

        def perform():
            ran.append(True)
            if shim.windows is not None:
                shim.windows.note(fd, opened=False)  # told before: never held when closed
            return o.close(fd)
        try:
            return shim._run(p, "close", info.path, perform)
        finally:
            # close(2) frees the descriptor even when it fails; a kill buried it instead
            if not info.dead:
                if not ran:
                    with contextlib.suppress(OSError):
                        o.close(fd)
                shim._untrack(fd, info)

    def two_paths(orig, kind, quiet=False, a="src", b="dst", windows=None):
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
            path, path2 = (shim._abs(src, kwargs.get("src_dir_fd")),
                           shim._abs(dst, kwargs.get("dst_dir_fd")))
            if shim.windows is not None and windows is not None:
                perform = _on_windows(shim, windows, path, path2, perform)
            if kind == "replace" and shim.model is not None:
                perform = _told(shim, path, path2, perform)
            return shim._run(p, kind, path, perform, path2=path2, writes=True)
        return wrapper

    def os_truncate(path, length):
        p = shim._bound()
        where = None if p is None else shim._resolve(path)
        if where is None:
            return o.truncate(path, length)
        return shim._run(p, "truncate", where, lambda: o.truncate(path, length),
                         nbytes=length, writes=True)

    def os_symlink(src, dst, target_is_directory=False, *, dir_fd=None):
        # the link's text may point anywhere; only the new name is in the sandbox
        p = shim._bound()
        where = None if p is None else shim._resolve(dst, dir_fd)
        if where is None:
            return o.symlink(src, dst, target_is_directory, dir_fd=dir_fd)
        return shim._run(p, "symlink", where,
                         lambda: o.symlink(src, dst, target_is_directory, dir_fd=dir_fd),
                         writes=True, creates=shim._creates(where))

    def os_pwrite(fd, data, offset):
        target = _fd_target(shim, fd)
        if target is None:
            return o.pwrite(fd, data, offset)
        p, fd, info = target
        view = memoryview(data).cast("B")
        return shim._run(p, "write", info.path, lambda: o.pwrite(fd, view, offset),
                         nbytes=len(view), writes=True,
                         prefix=lambda keep: o.pwrite(fd, view[:keep], offset),
                         count=lambda n: n)

    def os_writev(fd, buffers):
        target = _fd_target(shim, fd)
        if target is None:
            return o.writev(fd, buffers)
        p, fd, info = target
        data = b"".join(bytes(b) for b in buffers)  # one write(2) of the gathered bytes
        return shim._run(p, "write", info.path, lambda: o.write(fd, data), nbytes=len(data),
                         writes=True, prefix=lambda keep: o.write(fd, data[:keep]),
                         count=lambda n: n)

    def os_pread(fd, n, offset):
        target = _fd_target(shim, fd)
        if target is None:
            return o.pread(fd, n, offset)
        p, fd, info = target
        return shim._run(p, "read", info.path, lambda: o.pread(fd, n, offset), nbytes=n,
                         count=len)

    w.update(open=os_open, write=os_write, close=os_close,
             replace=two_paths(o.replace, "replace", windows="replace"),
             rename=two_paths(o.rename, "replace", windows="rename"),
             link=two_paths(o.link, "link"), symlink=os_symlink, truncate=os_truncate,
             pwrite=os_pwrite, writev=os_writev, pread=os_pread)
    w.update({name: two_paths(getattr(o, name), kind, quiet=True,
                              windows="move" if name == "move" else None)
              for name, kind in _SHUTIL_CALLS.items()})
    return w


def _told(shim, src: str | None, dst: str | None, perform):
    """``perform`` (a rename), then the durability model told of it: it commits a rename
    whole, in both directories, at an fsync of either (crash-model rule 2). Only a move
    of one inode between two directories of the sandbox is told: a move in or out is a
    create or an unlink to the model, and a copy (Windows' shutil.move) makes a new file."""
    if src is None or dst is None or not (shim._inside(src) and shim._inside(dst)) or (
            shim._path.dirname(src) == shim._path.dirname(dst)):
        return perform  # within one directory: its own listing says all (rule 2)

    def run():
        with shim._own():
            try:
                before = shim.real.lstat(src).st_ino
            except OSError:
                before = None  # the rename fails, or another process took it just now
        result = perform()
        with shim._own():
            try:
                ino = shim.real.lstat(dst).st_ino  # now, before another process moves it on
            except FileNotFoundError:
                ino = None  # gone already: the listings alone decide (rule 8)
            if ino is not None and ino == before:
                with shim._quiet():  # a process-mode model answers for others
                    shim.model.renamed(src, dst, ino)
        return result
    return run


def _on_windows(shim, how: str, src, dst, perform):
    """``perform`` as Windows runs it: os.replace, os.rename or shutil.move (`windows`)."""
    if how == "move":
        return lambda: shim.windows.move(src, dst, perform)
    return _checked(lambda: shim.windows.rename(src, dst, replace=how == "replace"), perform)


def patch_all(make_shim):
    """Capture the originals, build the shim, patch; return (undo, shim)."""
    patcher = _active_patcher()
    if patcher is None:
        osm, shm, fcm, open_targets = os, shutil, fcntl, [builtins, io]
    else:
        fake = patcher.fake_modules
        osm, shm, fcm = fake["os"], fake["shutil"], fake.get("fcntl", fcntl)
        open_targets = [builtins] + [fake[n] for n in ("io", "_io") if n in fake]
    # (pyfakefs's fake os lacks a few of them: those stay unpatched there)
    real = types.SimpleNamespace(**{n: getattr(osm, n, None) for n in _OS_CALLS},
                                 **{n: getattr(shm, n) for n in _SHUTIL_CALLS},
                                 builtin_open=builtins.open, flock=fcm.flock,
                                 sync=getattr(osm, "sync", None),
                                 sleep=time.sleep, makedirs=osm.makedirs, urandom=os.urandom,
                                 system=platform.system, rmtree=shm.rmtree,
                                 # a kill dup2s a placeholder over the dead descriptors,
                                 # on the real disk only (pyfakefs keeps them open)
                                 dup2=getattr(osm, "dup2", None), fake=patcher is not None)
    shim = make_shim(real, osm.path)
    wrappers = _os_wrappers(shim, real)
    plan = [(shm if name in _SHUTIL_CALLS else osm, name, fn) for name, fn in wrappers.items()
            if name in _SHUTIL_CALLS or getattr(real, name, None) is not None]
    other = other_wrappers(shim, real)
    plan += [(fcm, "flock", other["flock"]), (time, "sleep", other["sleep"]),
             (os, "urandom", other["urandom"]), (random, "_urandom", other["urandom"]),
             (platform, "system", other["system"]), (shm, "rmtree", other["rmtree"])]
    if real.sync is not None:
        plan.append((osm, "sync", other["sync"]))
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
        if patcher is None:
            _rebind_imported_names(plan, saved)
    except BaseException:
        undo()
        raise
    return undo, shim
