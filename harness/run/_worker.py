"""The child side of process mode: one real processor, its shim, and its line to the parent.

Each processor of a process-mode run is a forked OS process. It installs the shim with
proxies in place of the history, the plan and the durability model: every record, every
"does a fault fire here?" and every fsync goes to the parent over one pipe and waits for
the answer. Waiting is the point: the parent appends records in the order it receives
them, and a child only goes on once its record is in, so the one history the parent
keeps respects the real-time order of the children's calls (an ack that returned is in
the history before any claim that started after it). A record written before a SIGKILL
is in the pipe and survives it; what the child had not sent did not happen yet.

The parent owns the armed plan and the global op count, so "at op N" means the Nth file
call of the whole run, as in thread mode. Kills are real: when the shim's `Kill` action
records its fault event, the parent SIGKILLs the child before answering.
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass, field
from typing import Any

from harness.faults.mounts import drop_dac_capabilities
from harness.intercept.fusegate import hello_name
from harness.intercept.shim import HarnessError, installed
from harness.run._observe import LogCapture
from harness.run.client import Client, DrainProblem
from harness.run.hung import target_line, traceback_frames
from harness.run.reaper import death_signal
from harness.run.schedule import OpBudgetExceeded

__all__ = ["Spec", "main", "die_with_parent", "quiet_signals"]



@dataclass(frozen=True)
class Spec:
    """What one child runs: its processor, its program (from ``start``), how it starts."""

    process: int
    target: str
    directory: str
    sandbox: str
    steps: tuple = ()
    start: int = 0
    restart: bool = False  # a fresh process after a crash: open, recover, then go on
    drain: bool = False  # the final drain: open, recover, claim + ack until empty, states
    plan: bool = True  # ask the parent's plan at each call (the drain never does)
    model: bool = False  # report fsyncs to the parent's durability model
    drops: bool = False  # and writes: an FsyncFailure may drop some (crash-model rule 7)
    real_processes: bool = True
    unprivileged: bool = False  # obey permission bits even as root (a permission fault)
    platform: str = "linux"  # "windows": Windows' file semantics (harness.faults.windows)
    bound: int = 1000  # the drain's claim budget
    drain_ops: int = 200_000  # file calls the drain may make (a target spinning there)
    parent: int = field(default_factory=os.getpid)
    layer: str = "shim"  # "fuse": the sandbox is a FUSE mount that sees every call
    fuse_epoch: int = 0  # power cuts the parent knew of when it started us


def die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this process when the harness dies, however it dies."""
    death_signal(signal.SIGKILL, parent)()


def quiet_signals() -> None:
    """Ctrl-C reaches the whole process group; only the parent decides who dies, and how."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # the parent forks with these held (harness.run.reaper.spawning); the mask is inherited
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


class _Link:
    """Synchronous requests to the parent: send, then wait for the answer."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def ask(self, *message: Any) -> Any:
        try:
            self._conn.send(message)
            return self._conn.recv()
        except (EOFError, OSError):
            os._exit(3)  # the parent is gone: nothing left to report to


class _History:
    """Stands in for `History` in the child: each record is appended by the parent."""

    def __init__(self, link: _Link, process: int) -> None:
        self._link = link
        self._process = process
    def op(self, type: str, process: int, f: str, *, key=None, value=None, error=None,
           where=None):
        return self._link.ask("op", type, process, f, key, value, error, where)

    def fs(self, process: int, call: str, *, path=None, path2=None, nbytes=None,
           outcome="ok", fault=None):
        return self._link.ask("fs", process, call, path, path2, nbytes, outcome, fault)

    def fault(self, process: int, kind: str, fault: str, effect: str, *, crashed=(),
              destroyed=False):
        # When ``crashed`` names this process the parent SIGKILLs us and never answers.
        return self._link.ask("fault", process, kind, fault, effect, tuple(crashed), destroyed)


class _Plan:
    def __init__(self, link: _Link) -> None:
        self._link = link

    def decide(self, call: Any) -> Any:
        return self._link.ask("decide", call)


class _Handles:
    """Windows semantics across processes: every process's open files are in the parent's
    table; we report ours (opens after, closes before) and ask it who holds a file."""

    def __init__(self, link: _Link) -> None:
        self._link = link

    def opened(self, ident: tuple[int, int]) -> None:
        self._link.ask("handle", "opened", ident)

    def closed(self, ident: tuple[int, int]) -> None:
        self._link.ask("handle", "closed", ident)

    def held(self, ident: tuple[int, int]) -> bool:
        return self._link.ask("handle", "held", ident)


class _Model:
    """The parent reads a synced inode through /proc/<our pid>/fd/<fd> while we wait."""

    def __init__(self, link: _Link, drops: bool = False) -> None:
        self._link = link
        self.dropping = drops  # the shim reports writes while this is true

    def file_synced(self, fd: int) -> str | None:
        # the answer: the fault of another process's failed fsync of this file, told now
        return self._link.ask("synced", fd, False)

    def file_sync_failed(self, fd: int) -> None:
        self._link.ask("sync_failed", fd)

    def file_written(self, fd: int, lo: int, hi: int | None) -> None:
        self._link.ask("written", fd, lo, hi)

    def dir_synced(self, fd: int) -> None:
        self._link.ask("synced", fd, True)

    def renamed(self, src: str, dst: str, ino: int) -> None:
        self._link.ask("renamed", src, dst, ino)

    def removed_by_fault(self, path: str) -> None:
        self._link.ask("removed", path)

    def power_loss(self, rng: Any, torn: str | None = None, names: str = "strict") -> list[str]:
        # The parent kills every processor, this one included, before it could answer.
        return self._link.ask("power_loss", torn, names) or []


def main(conn: Any, spec: Spec, factory: Any) -> None:
    """The child's whole life; it ends by returning (done) or by the parent's SIGKILL."""
    die_with_parent(spec.parent)
    quiet_signals()
    link = _Link(conn)
    logs = LogCapture()
    logging.getLogger().handlers[:] = [logs]
    try:
        if spec.unprivileged:
            drop_dac_capabilities()
        problem = _run(link, spec, factory)
    except BaseException as exc:  # noqa: BLE001 - told to the parent, which reports it
        link.ask("error", f"processor {spec.process}: {type(exc).__name__}: {exc}")
        return
    link.ask("done", problem, dict(logs.messages))


def _hello(spec: Spec) -> None:
    """Tell the FUSE server which processor this process (and its children) is."""
    path = os.path.join(spec.sandbox, hello_name(spec.process, spec.fuse_epoch))
    try:
        os.stat(path)
    except FileNotFoundError:
        return
    raise HarnessError(f"the FUSE server did not answer the hello at {path}")


def _run(link: _Link, spec: Spec, factory: Any) -> str | None:
    history = _History(link, spec.process)
    shimmed = spec.layer != "fuse"
    sandbox = spec.sandbox
    if not shimmed:
        _hello(spec)
        # the server below sees every call; this shim only binds the client, on a
        # directory nobody uses, so it intercepts nothing
        sandbox = os.path.join(spec.sandbox, ".harness-shim-off")
    with installed(sandbox=sandbox, history=history,
                   plan=_Plan(link) if spec.plan and shimmed else None,
                   model=_Model(link, spec.drops) if spec.model and shimmed else None,
                   platform=spec.platform) as shim:
        shim.real_processes = spec.real_processes
        if shim.windows is not None:
            shim.windows.handles = _Handles(link)
        client = Client(process=spec.process, factory=factory, target=spec.target,
                        directory=spec.directory, history=history, shim=shim, baton=None)
        with shim.processor(spec.process):
            if spec.drain:
                shim.drain_budget = spec.drain_ops
                try:
                    problem = client.drain(spec.bound)
                except OpBudgetExceeded as exc:
                    where = target_line(traceback_frames(exc.__traceback__))
                    problem = DrainProblem(
                        f"final drain: the queue was still making file calls after "
                        f"{spec.drain_ops} of them once every fault was healed (it waits "
                        "for something that does not happen?)"
                        + (f"; last {where}" if where else ""), kind="stuck")
            else:
                _program(client, link, spec)
                problem = None
        if shim.harness_errors:  # even one the target swallowed: the run is an ERROR
            raise HarnessError(shim.harness_errors[0])
    return problem


def _program(client: Client, link: _Link, spec: Spec) -> None:
    if spec.restart:
        # Alone: the parent holds every other processor between two calls until we say so.
        if client.open():
            client.recover()
        link.ask("restarted")
    else:
        client.open()
    worker = f"p{spec.process}"
    held: list[tuple[str, bytes]] = []  # claims not yet acked, oldest first
    for index in range(spec.start, len(spec.steps)):
        link.ask("idle", index)  # between two calls: the parent may hold us here
        if spec.steps[index].action == "wait":
            # The parent answers once the others have begun that many queue calls.
            link.ask("wait", spec.steps[index].count, spec.steps[index].of)
            continue
        if client.queue is None and not client.open():
            continue
        client.step(spec.steps[index], worker, held)
    link.ask("idle", len(spec.steps))
    client.close()
