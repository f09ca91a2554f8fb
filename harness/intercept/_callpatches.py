"""The wrappers for calls that are not plain os file calls, and what every wrapper shares.

``fcntl.flock`` (emulated in thread mode so a blocked processor hands its turn on),
``time.sleep`` (a bound thread yields to the schedule instead), ``open`` (file objects
rebuilt in `_shimfile`), ``os.sync``, ``os.urandom`` (seeded in thread mode), and under
``--platform windows`` ``shutil.rmtree`` (walks by name) and ``platform.system``; and the
two helpers `_patches` uses for every os call: an argument by position or name, and the
descriptor an fd call is about.
"""

from __future__ import annotations

import shutil
import threading
from typing import Any

from harness.intercept._shimfile import open_file

__all__ = ["other_wrappers"]


def _arg(args, kwargs, index: int, name: str, default=None):
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)

def _fd_target(shim, fd):
    """(processor, fd, info) when this call is to be intercepted, else None."""
    p = shim._bound()
    if p is None:
        return None
    if not isinstance(fd, int) and hasattr(fd, "fileno"):
        fd = fd.fileno()
    info = shim._fds.get(fd)
    if info is not None and info.dead:
        shim._dead_fd(p, info)  # a killed processor's descriptor: refused, unrecorded
    return None if info is None else (p, fd, info)


def other_wrappers(shim, o) -> dict[str, Any]:
    def flock(fd, operation):
        target = _fd_target(shim, fd)
        if target is None:
            return o.flock(fd, operation)
        p, fd, info = target
        if shim.real_processes:  # the emulation could not see the other processes
            return shim._run(p, "lock", info.path, lambda: o.flock(fd, operation))
        return shim._run(p, "lock", info.path,
                         lambda: shim._flock(p, fd, operation, info.path))

    def sleep(seconds):
        p = shim._bound()
        if p is None or shim.real_processes:
            return o.sleep(seconds)
        # a bound thread yields to the schedule instead of sleeping: fast and deterministic
        shim._check_alive(p)
        if shim.scheduler is not None:
            # counted apart from file calls, so a hang can say which it was doing
            getattr(shim.scheduler, "slept", shim.scheduler.switch_point)(p)
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
    def sync():
        # sync(2) makes every file and directory durable: the model must know, or a queue
        # that relies on it would be taken for one that never syncs.
        p = shim._bound()
        if p is None:
            return o.sync()

        def perform():
            o.sync()
            if shim.model is not None:
                with shim._own(), shim._quiet():
                    shim.model.snapshot_all()
        return shim._run(p, "fsync", None, perform)
    entropy_lock = threading.Lock()

    by_name = [0]  # nested rmtree calls walking by name (no lock: a lock would hold the baton)

    def rmtree(*args, **kwargs):
        if shim.windows is None or shim._bound() is None:
            return o.rmtree(*args, **kwargs)
        # Windows' rmtree walks by name; Linux's opens each directory, refused there (W6)
        name = "_rmtree_impl" if hasattr(shutil, "_rmtree_impl") else "_use_fd_functions"
        walk = getattr(shutil, "_rmtree_unsafe", None) if name == "_rmtree_impl" else False
        saved = getattr(shutil, name)
        by_name[0] += 1
        setattr(shutil, name, walk)
        try:
            return o.rmtree(*args, **kwargs)
        finally:
            by_name[0] -= 1
            if not by_name[0]:
                setattr(shutil, name, saved)

    def system():  # a processor asking at call time takes its Windows branch (`windows`)
        if shim.windows is not None and shim._bound() is not None:
            return "Windows"
        return o.system()

    def urandom(n):
        # Real processes keep real entropy: seeded alike, they would mint the same names.
        if shim.real_processes or shim._bound() is None:
            return o.urandom(n)
        with entropy_lock:
            return shim.entropy.randbytes(n)
    return {"flock": flock, "sleep": sleep, "open": open_, "sync": sync, "urandom": urandom,
            "system": system, "rmtree": rmtree}


