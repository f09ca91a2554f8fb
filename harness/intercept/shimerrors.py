"""The shim's exceptions: a processor killed, the shim misused, the harness's own bug.

Kept apart from `harness.intercept.shim` (which re-exports them, their public home) so that the
modules the shim is built from can raise them without importing the shim. Also
`OpBudgetExceeded`, raised by the shim (the drain's budget) and by the baton (the run's),
whose public home is `harness.run.schedule`: here the shim raises it without importing the
schedule above it.
"""

from __future__ import annotations

import contextlib
import errno as _errno
import os

from harness.faults.actions import SyncFailed

__all__ = ["HarnessError", "OpBudgetExceeded", "ProcessorKilled", "RunStopped", "ShimError"]


class ProcessorKilled(BaseException):  # noqa: N818 - the name says what happened
    """The calling processor died. A BaseException so ``except Exception`` cannot eat it."""

    __module__ = "harness.intercept.shim"  # its public home, in tracebacks and pickles

    def __init__(self, process: int, message: str | None = None) -> None:
        super().__init__(message or f"processor {process} was killed")
        self.process = process


class RunStopped(BaseException):  # noqa: N818 - not an error: the run is over
    """The run was stopped (interrupted): every processor, the final drain included, ends
    at its next intercepted call. Unlike `ProcessorKilled`, no restart brings it back, so
    no thread goes on to run the target on the real disk once the shim is gone."""

    __module__ = "harness.intercept.shim"

    def __init__(self, reason: str) -> None:
        super().__init__(f"run stopped: {reason}")


class ShimError(RuntimeError):
    """The shim was misused (installed twice, unknown action)."""

    __module__ = "harness.intercept.shim"  # its public home, in tracebacks and pickles


class HarnessError(BaseException):
    """The harness's own code failed inside an intercepted call: a bug of the harness.

    A BaseException so that a target's ``except Exception`` cannot take it for its own
    error; the runner ends the run as ERROR naming the harness (`Shim.harness_errors`
    keeps it even if a target swallows everything)."""

    __module__ = "harness.intercept.shim"

    def __init__(self, message: str) -> None:
        super().__init__(f"harness error (a bug in the harness, not a finding about the "
                         f"target): {message}")


class OpBudgetExceeded(BaseException):  # noqa: N818 - a verdict, not a bug of ours
    """A processor kept making intercepted calls past the run's budget: it never finishes
    its queue call (polling a lock nobody will release?). ``calls`` and ``sleeps``: what it
    made inside its current queue call (None: not counted); `harness.run.hung` says it all."""

    __module__ = "harness.run.schedule"  # its public home, in tracebacks and pickles

    def __init__(self, process: int, budget: int, *, calls: int | None = None,
                 sleeps: int | None = None) -> None:
        inside = "" if calls is None else (
            f" ({calls} file calls and {sleeps or 0} sleeps inside its current call)")
        super().__init__(f"processor {process} used up the run's budget of {budget} "
                         f"intercepted calls{inside} without finishing its call")
        self.process, self.budget, self.calls, self.sleeps = process, budget, calls, sleeps


def _mark(exc: BaseException) -> BaseException:
    """Flag an exception as recorded, so a call it passes through (a flush) does not
    record the same failure again."""
    with contextlib.suppress(AttributeError, TypeError):
        exc._shim_recorded = True  # type: ignore[attr-defined]
    return exc


def _injected(action, path, path2=None) -> BaseException:
    """The OSError an injected `Raise`/`ShortWrite` raises, tagged with its fault."""
    exc = OSError(action.errno, os.strerror(action.errno), path, None, path2)
    exc._shim_fault = action.fault  # type: ignore[attr-defined]  # a retry's repeat=
    exc._shim_dropped = isinstance(action, SyncFailed)  # type: ignore[attr-defined]
    return _mark(exc)


def _errname(exc: BaseException) -> str:
    if isinstance(exc, ProcessorKilled):
        return "killed"
    if isinstance(exc, OSError) and exc.errno is not None:
        return _errno.errorcode.get(exc.errno, str(exc.errno))
    return type(exc).__name__
