"""Intercept a target's file calls inside a sandbox: record them, inject faults, emulate flock.

`installed(...)` patches the standard library's file API (``open``, ``os.*``,
``shutil`` moves and copies, ``fcntl.flock``, ``time.sleep``) for the duration of a
``with`` block. A call is intercepted only when the calling thread is bound to a
processor (``with shim.processor(p):``) and it touches a path (or a descriptor opened
on a path) inside the sandbox; everything else passes straight through, unrecorded.

Each intercepted call: a dead processor raises `ProcessorKilled` at once; the scheduler
gets a switch point (deterministic interleaving); the call gets the next op number and
is shown to the plan as an `actions.Call`; the plan's `Action` is carried out; one
`history.FsOp` is recorded. File objects are rebuilt in `_shimfile` so Python's buffer
sits above the shim, as in a real process; the wrappers and the patching are in
`_patches`, the descriptor table and the flock emulation in `_shimfds`.

Under pyfakefs the target's modules hold fake module *objects* instead of ``os``,
``io``, ``shutil`` and ``fcntl``; the shim then patches the attributes of those fake
objects (and ``builtins.open``), and the "original" calls it captures are the fake ones,
so the real disk is never touched.
``platform="windows"`` adds Windows' refusals (rules and sources in `windows`).
"""

from __future__ import annotations

import contextlib
import errno as _errno
import os
import random
import threading
import types
from collections.abc import Iterator

from harness.check.history import DRAIN, NEMESIS, History
from harness.faults import damage as _damage
from harness.faults.actions import (
    Call,
    Kill,
    PowerCut,
    Raise,
    RemoveDirectory,
    RemoveFiles,
    ShortWrite,
)
from harness.faults.errnos import PATH_CALLS, natural_error
from harness.faults.windows import PLATFORMS, Rules
from harness.intercept import _patches
from harness.intercept._shimacts import Acts as _Acts
from harness.intercept._shimfds import DeadlockError
from harness.intercept._shimfds import Descriptors as _Descriptors
from harness.intercept._shimfds import Fd as _Fd
from harness.intercept.shimerrors import (
    HarnessError,
    OpBudgetExceeded,
    ProcessorKilled,
    RunStopped,
    ShimError,
    _errname,
    _injected,
    _mark,
)

__all__ = ["DeadlockError", "HarnessError", "ProcessorKilled", "RunStopped", "Shim", "ShimError",
           "installed"]

_ACTIVE: list[Shim] = []
_ACTIVE_LOCK = threading.Lock()


class Shim(_Descriptors, _Acts):
    """The state of one installation: bindings, descriptors, locks, dead processors."""

    lock_timeout = 5.0
    """Seconds a blocking flock waits (without a scheduler) before giving up as a deadlock."""

    real_processes = False
    """Process mode sets this: each processor is a real process, alone in its shim, so the
    kernel's flock decides and ``time.sleep`` really sleeps (there is no one to yield to)."""

    def __init__(self, sandbox, history: History, plan=None, rng=None, model=None,
                 scheduler=None, *, real: types.SimpleNamespace, pathmod,
                 platform: str = "linux") -> None:
        if platform not in PLATFORMS:
            raise ShimError(f"platform={platform!r}; expected one of {', '.join(PLATFORMS)}")
        self.history, self.plan, self.rng = history, plan, rng
        # The target's own entropy (os.urandom: uuid4, secrets, SystemRandom), drawn in
        # thread mode from the run's seed: random names it makes (temp files, owner
        # tokens) change listdir orders and so the calls the schedule switches at, and a
        # replay must meet the same ones. Seeded from the state, not drawn from rng, so
        # the disk's own choices stay as they were.
        self.entropy = random.Random(str(rng.getstate()) if rng is not None else "0")
        self.model, self.scheduler, self.real = model, scheduler, real
        self._path = pathmod
        self.sandbox = pathmod.abspath(os.fsdecode(os.fspath(sandbox)))
        if self.sandbox == pathmod.dirname(self.sandbox):
            raise ShimError(f"sandbox {self.sandbox!r} is a filesystem root; refusing")
        self._active = True
        self._local = threading.local()
        self._cond = threading.Condition(threading.RLock())
        self._ops = 0
        self._fired = 0
        self.platform_refusals = 0  # calls the platform's rules refused: not faults
        self.platform = platform
        self.windows = Rules(self) if platform == "windows" else None
        self._known: set[int] = set()
        self._dead: set[int] = set()
        self._stopped: str | None = None  # why the run was stopped (`stop`)
        self._threads: dict[int, list[int]] = {}
        self._waiting: dict[int, int] = {}
        self._fds: dict[int, _Fd] = {}
        self._locks: dict[tuple[int, int], dict[int, tuple[int, int]]] = {}
        self._lock_key: dict[int, tuple[int, int]] = {}
        self.harness_errors: list[str] = []  # HarnessError messages: the run is an ERROR
        self.drain_budget: int | None = None  # file calls the final drain may make
        self._drain_ops = 0
        self._graves: list[tuple[int, _Fd]] = []  # killed processors' descriptors
        self._null: int | None = None  # the placeholder dup2'd over them
        self._untold: dict[int, tuple[_Fd, str]] = {}  # fsync errors not yet reported
        # (st_dev, st_ino) of a copy -> of its original: explore's fork children run on a
        # copy of the sandbox that must look, to the target, like the directory it had.
        self.identities: dict[tuple[int, int], tuple[int, int]] = {}

    # -- public ---------------------------------------------------------------

    @property
    def ops(self) -> int:
        """Intercepted calls so far, not counting the drain's."""
        return self._ops

    @property
    def faults_fired(self) -> int:
        return self._fired

    @contextlib.contextmanager
    def processor(self, p: int) -> Iterator[Shim]:
        """Bind the current thread to processor ``p`` for the block (thread-local)."""
        prev = getattr(self._local, "p", None)
        me = threading.get_ident()
        with self._cond:
            self._known.add(p)
            self._threads.setdefault(p, []).append(me)
        self._local.p = p
        try:
            yield self
        finally:
            self._local.p = prev
            with self._cond:
                self._threads[p].remove(me)

    def kill(self, p: int, reason: str) -> None:
        """Kill processor ``p`` from outside (the runner); its next call raises."""
        self._kill(p, "kill", reason, f"processor {p} killed: {reason}")

    def kill_all(self, reason: str) -> None:
        with self._cond:
            victims = sorted(self._known - self._dead)
        for p in victims:
            self._kill(p, record=False)
        self.history.fault(NEMESIS, "kill", reason, f"every processor killed: {reason}",
                           crashed=victims)

    def stop(self, reason: str) -> None:
        """End the run: every processor's next intercepted call (or sleep) raises
        `RunStopped`, whatever restarts it attempts. For an interrupt: a kill would only
        make a processor restart and go on."""
        with self._cond:
            self._stopped = reason
            self._cond.notify_all()

    def revive(self, p: int) -> None:
        """Processor ``p`` lives again (a fresh process: no descriptors, no locks)."""
        with self._cond:
            self._dead.discard(p)

    def is_dead(self, p: int) -> bool:
        return p in self._dead

    def alias(self, st: os.stat_result) -> os.stat_result:
        """``st`` with the identity of the file it stands in for (see ``identities``)."""
        was = self.identities.get((st.st_dev, st.st_ino)) if self.identities else None
        if was is None:
            return st
        _cls, (fields, extra) = st.__reduce__()
        fields = list(fields)
        fields[2], fields[1] = was  # st_dev, st_ino
        return os.stat_result(fields, extra)

    # -- paths and binding ------------------------------------------------------

    def _bound(self) -> int | None:
        if not self._active or getattr(self._local, "quiet", 0):
            return None
        return getattr(self._local, "p", None)

    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        """Calls made by the harness itself in this thread pass through unrecorded."""
        self._local.quiet = getattr(self._local, "quiet", 0) + 1
        try:
            yield
        finally:
            self._local.quiet -= 1

    def _inside(self, path: str | None) -> bool:
        return path is not None and (
            path == self.sandbox or path.startswith(self.sandbox.rstrip("/") + "/"))

    def _abs(self, path, dir_fd=None) -> str | None:
        """Absolute path of a path or tracked descriptor, or None if we cannot tell."""
        if isinstance(path, int):
            info = self._fds.get(path)
            return info.path if info else None
        try:
            text = os.fsdecode(os.fspath(path))
        except TypeError:
            return None
        if dir_fd is not None:
            base = self._fds.get(dir_fd)
            if base is None:
                return None
            text = self._path.join(base.path, text)
        return self._path.abspath(text)

    def _resolve(self, path, dir_fd=None) -> str | None:
        absolute = self._abs(path, dir_fd)
        return absolute if self._inside(absolute) else None

    def _rel(self, path: str | None) -> str | None:
        if path is None or not self._inside(path):
            return path
        return self._path.relpath(path, self.sandbox).replace(os.sep, "/")

    def _check_alive(self, p: int) -> None:
        if self._stopped is not None:
            raise RunStopped(self._stopped)
        if p in self._dead:
            raise ProcessorKilled(p)

    def _check_caller_alive(self) -> None:
        p = getattr(self._local, "p", None)
        if p is not None:
            self._check_alive(p)

    def _seq(self) -> int:
        """Intercepted calls of this thread so far, flushes aside (tells a retry apart)."""
        return getattr(self._local, "seq", 0)

    # -- the intercepted call -----------------------------------------------------

    def _run(self, p: int, kind: str, path: str | None, perform, *, path2=None,
             nbytes=None, writes=False, prefix=None, count=None, creates=False, repeat=None,
             flags=0):
        """Steps (1)-(6) of the design: alive, switch, number, decide, act, record.

        ``repeat``: the fault whose injected error these very bytes met on this file's
        previous call (a buffered file retrying them); failing them again is the same
        failure, so it is neither counted nor recorded a second time. ``flags``: open(2)
        flags, for the errors the kernel checks before any fault (`harness.faults.errnos`).

        Everything but ``perform`` and ``prefix`` (the real call) is the harness's own
        code: an exception there is a `HarnessError`, never the target's failure."""
        self._check_alive(p)
        if self.scheduler is not None:
            self.scheduler.switch_point(p)
            self._check_alive(p)
        if p == DRAIN and self.drain_budget is not None:
            # the baton does not count the drain: a target spinning there would hang the run
            self._drain_ops += 1
            if self._drain_ops > self.drain_budget:
                raise OpBudgetExceeded(p, self.drain_budget)
        with self._own():
            with self._cond:
                if p != DRAIN:
                    self._ops += 1
                op = self._ops
            if kind != "flush":  # a flush only wraps the writes it causes
                self._local.seq = self._seq() + 1
            rel, rel2 = self._rel(path), self._rel(path2)
            action = None
            if self.plan is not None and p != DRAIN and not getattr(self.plan, "exhausted",
                                                                    False):
                fails = None
                if kind in PATH_CALLS:
                    with self._quiet():
                        fails = natural_error(kind, path, path2, flags=flags,
                                              lstat=self.real.lstat, dirname=self._path.dirname)
                action = self.plan.decide(Call(
                    op=op, process=p, kind=kind, path=rel, path2=rel2, nbytes=nbytes or 0,
                    writes=writes, creates=creates, fails=fails))
            fault = None if action is None else action.fault
            again = isinstance(action, Raise) and repeat is not None and fault == repeat
            if again:
                if hasattr(self.plan, "repeated"):  # a plan that counts firings takes it back
                    self.plan.repeated(action)
            elif action is not None:
                self._fired += 1

        def record(outcome: str, n=nbytes, label=None) -> None:
            with self._own():
                self.history.fs(p, kind, path=rel, path2=rel2, nbytes=n, outcome=outcome,
                                fault=label or fault)

        if action is None or isinstance(action, RemoveDirectory | RemoveFiles):
            if isinstance(action, RemoveFiles):
                with self._own():
                    _damage.in_shim(self, p, action)  # another program removes files
            elif action is not None:
                with self._own():
                    self._remove_directory(p, action)
            try:
                result = perform()
            except HarnessError:
                raise
            except BaseException as exc:
                # a call inside this one (a flush's raw write) already recorded it
                if not getattr(exc, "_shim_recorded", False):
                    rule = getattr(exc, "_shim_platform", None)  # refused by `windows`
                    self.platform_refusals += rule is not None
                    record(_errname(exc), label=rule or getattr(exc, "_shim_fault", None))
                    _mark(exc)
                raise
            record("ok", count(result) if count is not None else nbytes)
            return result
        short = isinstance(action, ShortWrite)
        if isinstance(action, Raise) or (short and prefix is None):
            if not again:
                record(_errno.errorcode.get(action.errno, str(action.errno)))
            raise _injected(action, path, path2)
        landed = 0
        keep = getattr(action, "keep", None)
        if prefix is not None and keep:
            with contextlib.suppress(OSError):
                landed = prefix(min(keep, nbytes)) or 0
        if short:
            if landed:
                # write(2) on a medium that fills mid-write returns the short count; the
                # caller's next write meets ENOSPC (a buffered file retries the rest)
                record("ok", landed)
                return landed
            record(_errno.errorcode.get(action.errno, str(action.errno)), 0)
            raise _injected(action, path)
        with self._own():
            if isinstance(action, Kill):
                record("killed", landed if prefix is not None else nbytes)
                if prefix is not None:
                    effect = (f"processor {p} killed during {kind} to {rel} "
                              f"({landed} of {nbytes} bytes landed)")
                else:
                    effect = f"processor {p} killed before {kind} of {rel}" + (
                        f" -> {rel2}" if rel2 else "")
                self._kill(p, action.kind, action.fault, effect)
                killed = ProcessorKilled(p)
            elif isinstance(action, PowerCut):
                record("killed", landed if prefix is not None else nbytes)
                self._power_cut(action)
                killed = ProcessorKilled(p, f"processor {p} died in a power loss")
            else:
                raise ShimError(f"the plan answered {action!r}, which the shim cannot "
                                "carry out")
        raise _mark(killed)

    def _file_op(self, raw, kind: str, perform, **kw):
        p = self._bound()
        if p is None:
            return perform()
        return self._run(p, kind, raw._path, perform, **kw)

@contextlib.contextmanager
def installed(*, sandbox, history: History, plan=None, rng=None, model=None,
              scheduler=None, platform: str = "linux") -> Iterator[Shim]:
    """Patch the file API for the block and yield the `Shim`; every patch is undone on exit.
    ``platform``: ``"linux"`` (the kernel's own semantics) or ``"windows"`` (`windows`)."""
    with _ACTIVE_LOCK:
        if _ACTIVE:
            raise ShimError("the shim is already installed (installed() is not re-entrant; "
                            f"active sandbox {_ACTIVE[0].sandbox!r})")
        undo, shim = _patches.patch_all(
            lambda real, pathmod: Shim(sandbox, history, plan, rng, model, scheduler,
                                       real=real, pathmod=pathmod, platform=platform))
        _ACTIVE.append(shim)
    try:
        yield shim
    finally:
        shim._active = False
        with _ACTIVE_LOCK:
            _ACTIVE.clear()
            undo()
            shim._close_graves()
