"""What a processor that never finished its queue call was doing, said as it was.

A run stops a processor two ways: the op budget (``workload.max_ops``: intercepted calls
of the whole run, so a target polling a lock nobody will release ends in seconds, not at
a clock) and the run's timeout (``--timeout``, a scenario's ``timeout``, else
`DEFAULT_TIMEOUT_S`: what the budget cannot see, a loop or a blocking call that makes no
file call). Each ends in one sentence naming the queue call it never returned from
(``enqueue(e2)``), what it made inside that call (file calls, and in thread mode
``time.sleep`` calls, which the shim turns into turns of the schedule), what it was doing
when the time ran out (polling: still making intercepted calls; spinning: on the CPU or
in its run queue, from ``/proc/.../schedstat`` over a short look; or asleep in a system
call), and, in thread mode, the line of the target it was at.

`Abandoned` is raised asynchronously in a thread-mode processor the run gives up on, so a
busy loop stops using a CPU once its run is over (a thread blocked in a system call gets
it when the call returns).
"""

from __future__ import annotations

import ctypes
import linecache
import os
import sys
import sysconfig
import threading
import time
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

from harness.check.history import DRAIN, FsOp, Op
from harness.intercept.shimerrors import RunStopped
from harness.run.reaper import deferred

__all__ = ["DEFAULT_TIMEOUT_S", "Abandoned", "abandon", "activity", "bounded",
           "budget_sentence", "current_call", "doing", "give_up", "join", "overdue",
           "spinning", "stop_threads", "target_line", "thread_frames", "timeout_sentence",
           "traceback_frames", "who"]

DEFAULT_TIMEOUT_S = 120.0
"""Seconds a run's workload (and again its final drain) may take when nothing says."""

_STOP_S = 5.0  # a stopped processor ends at its next file call: seconds to wait for it
_LOOK_S = 0.3  # how long the CPU time is watched
_BUSY = 0.5  # a share of one CPU above this is a busy loop, below it a sleep
_HARNESS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # harness/
_EXEC_ADAPTER = os.path.join(_HARNESS, "run", "_exectarget.py")
_STDLIB = {os.path.abspath(sysconfig.get_paths()[k]) for k in ("stdlib", "platstdlib")}


class Abandoned(BaseException):  # noqa: N818 - not an error: the run gave up on the thread
    """Raised in a processor thread whose run is over (see the module docstring)."""


def abandon(thread: threading.Thread) -> None:
    """Raise `Abandoned` in ``thread`` at its next Python instruction."""
    if thread.ident is not None and thread.is_alive():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident),
                                                   ctypes.py_object(Abandoned))


def join(thread: threading.Thread, timeout: float) -> None:
    """``thread.join(timeout)`` that an interrupt cannot corrupt.

    Python 3.11's `Thread.join` marks a thread stopped when a signal handler raises inside
    it while the thread still runs (bpo-45274's fix releases the running thread's state
    lock): from then on ``is_alive()`` says False and every join returns at once, so the
    run would remove its sandbox under a processor still writing in it. Joined in short
    slices under `deferred`, the interrupt is raised between two slices instead."""
    end = time.monotonic() + timeout
    while thread.is_alive() and (left := end - time.monotonic()) > 0:
        with deferred():
            thread.join(min(left, 0.1))


def stop_threads(threads: list[threading.Thread], grace: float = _STOP_S) -> None:
    """Wait for processor threads that were told to stop (`Shim.stop`: their next file
    call raises) before their shim goes and their sandbox is removed; one that a call
    outside the shim holds past ``grace`` seconds is abandoned.

    Start threads under `harness.run.reaper.deferred`: a thread whose start an interrupt cut
    short is not joinable yet, and would run the target on the real disk once the shim is
    gone.
    """
    deadline = time.monotonic() + grace
    for t in threads:
        join(t, deadline - time.monotonic())
    for t in threads:
        abandon(t)
    for t in threads:
        join(t, 1.0)


# -- the call it was in

def who(process: int) -> str:
    return "the final drain" if process == DRAIN else f"processor {process}"


def current_call(history: Any, process: int) -> tuple[str | None, int]:
    """The queue call ``process`` is inside (``"enqueue(e2)"``), None when it is between
    two calls; and the file calls recorded since that call began."""
    files = 0
    for rec in reversed(history.records):
        if getattr(rec, "process", None) != process:
            continue
        if isinstance(rec, FsOp):
            files += 1
        elif isinstance(rec, Op):
            if rec.type != "invoke":
                return None, 0
            return f"{rec.f}({rec.key or ''})", files
    return None, 0


# -- where it was, and what it was doing

def _ours(filename: str) -> bool:
    path = os.path.abspath(filename)
    if path == _EXEC_ADAPTER:  # waiting for an exec: program's reply is the target's time
        return False
    return (path.startswith(_HARNESS + os.sep) or filename.startswith("<")
            or any(path.startswith(d + os.sep) for d in _STDLIB))


def target_line(frames: list[tuple[str, int, str]]) -> str | None:
    """``at FILE:LINE in FUNC: `source``` for the innermost frame outside the harness and
    the standard library (``frames`` outermost first), or None when there is none."""
    for filename, lineno, func in reversed(frames):
        if not _ours(filename):
            source = linecache.getline(filename, lineno).strip()
            shown = os.path.relpath(filename) if not os.path.relpath(filename).startswith(
                "..") else filename
            return f"at {shown}:{lineno} in {func}" + (f": `{source}`" if source else "")
    return None


def _stack(frame: FrameType | None) -> list[tuple[str, int, str]]:
    out = []
    while frame is not None:
        out.append((frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name))
        frame = frame.f_back
    return out[::-1]


def thread_frames(thread: threading.Thread) -> list[tuple[str, int, str]]:
    """The thread's stack now, outermost first (empty when it is gone)."""
    return _stack(sys._current_frames().get(thread.ident))


def traceback_frames(tb: TracebackType | None) -> list[tuple[str, int, str]]:
    out = []
    while tb is not None:
        out.append((tb.tb_frame.f_code.co_filename, tb.tb_lineno, tb.tb_frame.f_code.co_name))
        tb = tb.tb_next
    return out


def _cpu(stat: str) -> tuple[str, float] | None:
    """(state letter, seconds the task ran or waited to run) from /proc; None: cannot tell.

    Waiting to run counts: on a loaded machine a busy loop spends much of its time in the
    run queue, and only ``schedstat`` (run and wait times) tells it from a sleeper."""
    try:
        with open(stat, encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None  # not Linux, or it is gone
    try:
        with open(stat[:-len("stat")] + "schedstat", encoding="ascii") as f:
            ran, waited = (int(x) for x in f.read().split()[:2])
        return fields[0], (ran + waited) / 1e9
    except (OSError, ValueError):
        return fields[0], (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def activity(*stats: str) -> list[tuple[str, float] | None]:
    """(kernel state letter, share of one CPU it used or waited for) of each task whose
    ``/proc/.../stat`` is given, watched together for a moment; None where /proc cannot
    tell."""
    first = [_cpu(stat) for stat in stats]
    started = time.monotonic()
    time.sleep(_LOOK_S)
    second = [_cpu(stat) for stat in stats]
    spent = max(time.monotonic() - started, 1e-3)
    return [None if a is None or b is None else (b[0], (b[1] - a[1]) / spent)
            for a, b in zip(first, second, strict=True)]


def spinning(seen: tuple[str, float] | None) -> bool:
    return seen is not None and seen[1] >= _BUSY


def doing(seen: tuple[str, float] | None, polling: bool) -> str:
    """What a task was doing, from `activity` and whether it made intercepted calls while
    it was watched (``polling``)."""
    if polling:
        return ("polling: it was still making file calls (or sleeps) as it waited for "
                "something that does not happen")
    if seen is None:
        return "doing something this machine's /proc cannot show"
    state, share = seen
    if share >= _BUSY:
        return "spinning: a busy loop on the CPU that makes no file call the shim could see"
    asleep = {"D": "in an uninterruptible wait (disk or network I/O)", "T": "stopped",
              "Z": "a zombie"}.get(state, "asleep or blocked in a system call")
    return f"{asleep}, outside the shim's sight"


# -- the sentences

def timeout_sentence(history: Any, process: int, timeout: float, what: str,
                     where: str | None) -> str:
    """A processor (or the drain) still inside a call when the run's time ran out, doing
    ``what`` (`doing`)."""
    call, files = current_call(history, process)
    inside = f"inside {call}" if call else "between two queue calls"
    text = (f"{who(process)} was still {inside} after the run's timeout of {timeout:g} s "
            f"(--timeout): {what}")
    if call:
        text += f"; it had made {files} file calls in that call"
    return text + (f"; {where}" if where else "")


def budget_sentence(history: Any, exc: Any, *, healed: bool = False) -> str:
    """A processor (or the drain) that used up the run's op budget inside one call; where
    it was, from the exception's own traceback (it is raised in the processor's thread)."""
    process, budget = exc.process, exc.budget
    where = target_line(traceback_frames(exc.__traceback__))
    call, files = current_call(history, process)
    files = files if exc.calls is None else exc.calls
    if call is None:
        return (f"{who(process)} used up the run's budget of {budget} intercepted calls "
                "(workload.max_ops) between two queue calls" + (f"; {where}" if where else ""))
    made = f"{files} file calls"
    if exc.sleeps:
        made += (f" and {exc.sleeps} calls to time.sleep (in thread mode the shim turns "
                 "each into a turn of the schedule: none sleeps)")
    counted = ("file calls" if process == DRAIN or exc.sleeps is None
               else "file calls and sleeps of every processor")
    scope = "the final drain's budget" if process == DRAIN else "the run's budget"
    text = (f"{who(process)} never returned from {call}: inside that one call it made {made}, "
            f"until {scope} of {budget} {counted} (workload.max_ops) ran out"
            + (" once every fault was healed" if healed else "")
            + ": it keeps waiting for something that does not happen (a lock nobody "
              "will release?)")
    return text + (f"; last {where}" if where else "")


# -- process mode

def overdue(inside: list[tuple[int, int, bool]], history: Any, timeout: float, held: bool
            ) -> tuple[list[tuple[int, str]], list[str]]:
    """The deadline passed with ``inside``, (processor, pid, heard from it just now) for
    each process still inside a queue call: (blocked, errors). Real processes all run, so
    each is stuck; unless a restart holds the others (``held``): then the wait may be the
    harness's gate, not the target, and it is an error."""
    blocked: list[tuple[int, str]] = []
    errors: list[str] = []
    seen = activity(*(f"/proc/{pid}/stat" for _, pid, _ in inside))
    for (p, _, heard), what in zip(inside, seen, strict=True):
        text = timeout_sentence(history, p, timeout, doing(what, heard), None)
        if held:
            errors.append(text + "; a restart was waiting for it to finish that call")
        else:
            blocked.append((p, text))
    if not inside:
        errors.append(f"the run's timeout of {timeout:g} s passed with no processor inside "
                      "a call: the harness waited for itself (a bug in the harness)")
    return blocked, errors


# -- thread mode

def give_up(threads: list[threading.Thread], baton: Any, history: Any,
            timeout: float) -> tuple[list[tuple[str, str]], list[str]]:
    """The run's time is out and ``threads`` (processor p is ``threads[p]``) are not all
    done: (blocked, errors) for the processor whose turn it was (the others wait for
    it), then every live one is abandoned.

    Polling (still making file calls or sleeps) and a busy loop are ``stuck``: with no
    file call a loop cannot be waiting for another processor, files being the contract's
    only channel. A thread asleep in a call the shim does not see is an error, not a
    verdict: only one processor runs at a time here, so it may wait for one the schedule
    holds (a threading lock held across a file call); process mode tells them apart."""
    blocked: list[tuple[str, str]] = []
    errors: list[str] = []
    alive = [p for p, t in enumerate(threads) if t.is_alive()]
    for p in [baton.current] if baton.current in alive else alive[:1]:
        t = threads[p]
        before = (baton.ops, len(history.records))
        seen = activity(f"/proc/self/task/{t.native_id}/stat")[0]
        polling = (baton.ops, len(history.records)) != before
        where = target_line(thread_frames(t))
        text = timeout_sentence(history, p, timeout, doing(seen, polling), where)
        if where is None:
            errors.append(text + "; it was in the harness's own code (a bug in the harness)")
        elif polling or spinning(seen):
            blocked.append((who(p), text))
        else:
            errors.append(text + "; in thread mode only one processor runs at a time, so "
                          "it may be waiting for another one (a lock outside the file "
                          "calls): run it with --mode process to tell")
    for p in alive:
        abandon(threads[p])
    return blocked, errors


def bounded(body: Any, timeout: float, history: Any, process: int,
            stop: Callable[[str], None] | None = None) -> tuple[Any, str | None]:
    """``body()`` in a thread of its own: (its result, None), or (None, why) when it was
    still running after ``timeout`` seconds (the thread is abandoned). Its exception is
    raised here; an interrupt calls ``stop`` (the shim's: the thread's next call raises)
    and waits for the thread, abandoning it if it does not end."""
    out: list[Any] = []

    def main() -> None:
        try:
            out.append((True, body()))
        except (Abandoned, RunStopped):
            pass
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller
            out.append((False, exc))

    t = threading.Thread(target=main, daemon=True, name=f"harness-{who(process)}")
    with deferred():  # started whole: an interrupt cannot leave it running unjoinable
        t.start()
    try:
        join(t, timeout)
    except BaseException:
        if stop is not None:
            stop("run interrupted")
        stop_threads([t])  # before the caller removes the sandbox it writes in
        raise
    if t.is_alive():
        before = len(history.records)
        seen = activity(f"/proc/self/task/{t.native_id}/stat")[0]
        why = timeout_sentence(history, process, timeout,
                               doing(seen, len(history.records) != before),
                               target_line(thread_frames(t)))
        abandon(t)
        return None, why
    ok, value = out[0]
    if not ok:
        raise value
    return value, None
