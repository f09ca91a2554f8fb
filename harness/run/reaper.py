"""Nothing left behind: real processes reaped and cleanup run even on SIGINT and SIGTERM.

Process mode and soak start real processes, mount file systems and make directories;
all of it must go whatever ends the run. Three layers do that:

- the run's own ``finally`` blocks (kill and reap every child, unmount, remove the
  sandbox), which `interruptible` makes run on SIGTERM too: it turns the first SIGINT or
  SIGTERM into an `Interrupted` exception in the main thread, and ignores any further
  one so that a second Ctrl-C cannot cut the cleanup short;
- `reap`, which SIGKILLs and waits for processes that are still there;
- in every child, ``PR_SET_PDEATHSIG`` (`death_signal`): if the
  harness itself is SIGKILLed, the kernel kills its children.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["Interrupted", "death_signal", "deferred", "interrupted", "interruptible",
           "make_sandbox", "reap", "remove_sandbox", "spawning", "sweep"]

_REAP_TIMEOUT_S = 10.0


class Interrupted(KeyboardInterrupt):
    """The harness got SIGINT or SIGTERM; cleanup runs as the exception unwinds."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


_depth = 0
_held = 0  # `deferred` blocks open in the main thread
_pending: int | None = None  # a signal that came during one of them


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """SIGINT/SIGTERM raise `Interrupted` inside the block (main thread only; nests)."""
    global _depth
    if _depth or threading.current_thread() is not threading.main_thread():
        yield  # an outer block (or the main thread's) already translates the signals
        return

    def handler(signum: int, frame: Any) -> None:
        global _pending
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)  # the cleanup must not be interrupted in turn
        if _held:
            _pending = signum  # raised when the cleanup under way is done
            return
        raise Interrupted(signum)

    def unraisable(args: Any) -> None:
        # Raised where Python cannot let it propagate (a gc callback, hypothesis has one;
        # a __del__): deliver the signal again, at the main thread's next bytecode, instead
        # of printing "Exception ignored" with a traceback and losing the interrupt.
        if isinstance(args.exc_value, Interrupted):
            signal.signal(args.exc_value.signum, handler)
            # from another thread, a moment later: sent from here, the handler would run
            # inside this hook, where Python cannot propagate it either
            threading.Thread(target=_resend, args=(args.exc_value.signum,),
                             daemon=True).start()
            return
        hook(args)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    hook, sys.unraisablehook = sys.unraisablehook, unraisable
    _depth = 1
    try:
        yield
    finally:
        _depth = 0
        sys.unraisablehook = hook
        for s, h in old.items():
            signal.signal(s, h)


def _resend(signum: int) -> None:
    time.sleep(0.05)
    os.kill(os.getpid(), signum)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A cleanup that a signal must not cut in two: the `Interrupted` of a signal that
    comes inside waits for the block's end (main thread; elsewhere nothing to hold)."""
    global _held, _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _held += 1
    try:
        yield
    finally:
        _held -= 1
        if not _held and _pending is not None:
            signum, _pending = _pending, None
            raise Interrupted(signum)


def interrupted(who: str, exc: BaseException, *, cleaned: bool) -> int:
    """A command's end on an interrupt: `sweep`, one line on stderr, no traceback, and the
    shell's code for the signal (130 SIGINT, 143 SIGTERM). ``cleaned``: the command makes
    sure of its cleanup (its sandboxes are registered here), so the line may say so."""
    signum = getattr(exc, "signum", signal.SIGINT)
    sweep()  # a sandbox whose run was cut short before its own cleanup began
    done = ("; every process it started is stopped and its temporary files are removed"
            if cleaned else "")
    print(f"{who}: interrupted by {signal.Signals(signum).name}{done}", file=sys.stderr)
    return 128 + signum


_SIGNALS = {signal.SIGINT, signal.SIGTERM}
_PR_SET_PDEATHSIG = 1


def death_signal(signum: int, parent: int | None = None) -> Callable[[], None]:
    """A function that, called in a child, has the kernel send it ``signum`` when its
    parent (``parent``, default: the calling process, for a ``preexec_fn``) dies, and exits
    at once if the parent is already gone. prctl is looked up here, before any fork, so the
    child loads nothing; where there is none (not Linux) the function only checks the
    parent, and the parent's own cleanup still reaps."""
    parent = os.getpid() if parent is None else parent
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        prctl = None

    def arm() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return arm


@contextlib.contextmanager
def spawning() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while a child is forked and registered.

    Otherwise the interrupt could land between the fork and the moment the run knows the
    child's pid, and nobody would reap it. The child inherits the mask and lifts it
    itself (`harness.run._worker.quiet_signals`); the parent's held signal arrives after.
    """
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def reap(processes: Iterable[Any]) -> None:
    """SIGKILL every process still alive and wait for it (multiprocess ``Process`` objects)."""
    procs = list(processes)
    for proc in procs:
        pid = getattr(proc, "pid", None)
        if pid is not None and proc.exitcode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    for proc in procs:
        if getattr(proc, "pid", None) is not None:
            with contextlib.suppress(Exception):
                proc.join(_REAP_TIMEOUT_S)


_sandboxes: set[str] = set()  # made and not yet removed: what `sweep` removes


def make_sandbox(prefix: str = "harness-") -> str:
    """A fresh temporary directory, registered until `remove_sandbox` removes it."""
    with deferred():
        path = tempfile.mkdtemp(prefix=prefix)
        _sandboxes.add(path)
    return path


def sweep() -> list[str]:
    """Unmount and remove every sandbox still registered (an interrupt cut its run's own
    cleanup short); the ones removed."""
    left = sorted(_sandboxes)
    for path in left:
        for point in _mounted_under(path):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False,
                           timeout=10)
        remove_sandbox(path)
    return left


def _mounted_under(path: str) -> list[str]:
    try:
        with open("/proc/mounts", encoding="utf-8") as f:
            points = [line.split()[1] for line in f if len(line.split()) > 1]
    except OSError:  # not Linux: nothing of ours is mounted
        return []
    # deepest first, so a mount inside another comes off before it
    return sorted((p for p in points if p == path or p.startswith(path + os.sep)),
                  key=len, reverse=True)


def remove_sandbox(path: str) -> None:
    """Remove the sandbox even where a fault took the permissions away."""
    with deferred():
        _remove(path)
        _sandboxes.discard(path)


def _remove(path: str) -> None:
    def unlock(_func: Any, failed: str, _exc: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(failed), 0o700)
            os.chmod(failed, 0o700)
        with contextlib.suppress(OSError):
            if os.path.isdir(failed) and not os.path.islink(failed):
                shutil.rmtree(failed, ignore_errors=True)
            else:
                os.unlink(failed)

    shutil.rmtree(path, onerror=unlock)
    shutil.rmtree(path, ignore_errors=True)
