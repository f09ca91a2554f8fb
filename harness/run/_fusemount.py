"""One run's FUSE mount: the server process, its two pipes, mount and unmount.

``--layer fuse`` (`harness.run.processes`) puts the sandbox below every process: the
run's directory is ``<sandbox>/mnt``, a FUSE mount served by a process of ours over
``<sandbox>/disk`` (`harness.intercept.fusefs`). That server owns the armed plan, the op
count and the durability model, because it is the one that sees every call; the
conductor keeps the history. Two pipes join them:

- ``records``: the server's ``fs``/``fault``/``budget`` records, one way; it never waits
  for the conductor (see `harness.intercept.fusegate`);
- ``control``: the conductor's requests (damage at rest, heal, the final count) and the
  op records it forwards (damage at rest names the entries it destroys from them).

Unmounting: ``fusermount3 -u`` ends the server's loop, then the process is reaped; a mount
still there after that (a server that died) comes off with a lazy unmount. `refusal`
says why the layer cannot run here, for a clear message and for the tests' skips.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from typing import Any

from harness.faults.durability import DurabilityModel, real_os
from harness.run.reaper import death_signal, spawning

__all__ = ["FuseMount", "FuseError", "refusal"]

_MOUNT_WAIT_S = 10.0


class FuseError(Exception):
    """The FUSE layer could not be set up or taken down (a harness error, not a verdict)."""


def refusal() -> str | None:
    """Why ``--layer fuse`` cannot run on this machine, or None."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing (no FUSE in this kernel or container)"
    if os.geteuid() != 0:
        return "the FUSE layer mounts with allow_other and needs root"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is not installed (Debian/Ubuntu: apt-get install fuse3)"
    try:
        import mfusepy  # noqa: F401
    except (ImportError, OSError) as exc:  # OSError: the package is there, libfuse3 is not
        return f"mfusepy cannot load libfuse 3 ({exc}); apt-get install fuse3, pip install mfusepy"
    return None


def _mounted(point: str) -> bool:
    with open("/proc/mounts", encoding="utf-8") as f:
        return any(line.split()[1] == point for line in f if len(line.split()) > 1)


def _serve(mount: str, backing: str, plan: Any, model: bool, rng: Any, records: Any,
           control: Any, max_ops: int, parent: int) -> None:
    """The server process: mount, serve until unmounted."""
    death_signal(signal.SIGTERM, parent)()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    import mfusepy

    from harness.intercept.fusefs import make_operations
    from harness.intercept.fusegate import Gate

    durability = None
    if model:
        durability = DurabilityModel(backing, real_os())
        durability.snapshot_all()
    gate = Gate(backing=backing, plan=plan, model=durability, rng=rng, out=records.send,
                max_ops=max_ops, caller=lambda: mfusepy.fuse_get_context()[2])
    threading.Thread(target=_control, args=(gate, control), daemon=True,
                     name="fuse-control").start()

    class _Fuse(mfusepy.FUSE):
        def rename_fuse_3(self, old: bytes, new: bytes, flags: int) -> int:
            return self.operations.rename(os.fsdecode(old), os.fsdecode(new), flags)

    _Fuse(make_operations(mfusepy, gate), mount, foreground=True, nothreads=True,
          allow_other=True, default_permissions=True, hard_remove=True, use_ino=True,
          entry_timeout=0, attr_timeout=0, negative_timeout=0, fsname="harness")


def _control(gate: Any, conn: Any) -> None:
    while True:
        try:
            what, *args = conn.recv()
        except (EOFError, OSError):
            return
        if what == "rec":
            gate.records.append(args[0])
            continue
        try:
            if what == "at_rest":
                answer: Any = gate.at_rest(args[0])
            elif what == "heal":
                with gate.lock:
                    if gate.plan is not None:
                        gate.plan.heal()
                answer = None
            elif what == "final":
                with gate.lock:
                    answer = (gate.plan, gate.ops, gate.fired, list(gate.errors))
            else:
                answer = ("error", f"unknown control request {what!r}")
        except Exception as exc:  # noqa: BLE001 - the conductor reports it as an ERROR
            answer = ("error", f"{type(exc).__name__}: {exc}")
        conn.send(answer)


class FuseMount:
    """Start the server over ``<sandbox>/disk`` mounted at ``<sandbox>/mnt``; see above."""

    def __init__(self, sandbox: str, *, ctx: Any, plan: Any, model: bool, rng: Any,
                 max_ops: int) -> None:
        self.backing = os.path.join(sandbox, "disk")
        self.mount = os.path.join(sandbox, "mnt")
        os.mkdir(self.backing, 0o755)
        os.mkdir(self.mount, 0o755)
        self.records, child_records = ctx.Pipe(duplex=False)
        self._control, child_control = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, name="harness-fuse", daemon=True, args=(
            self.mount, self.backing, plan, model, rng, child_records, child_control,
            max_ops, os.getpid()))
        with spawning():
            self.proc.start()
        child_records.close()
        child_control.close()
        deadline = time.monotonic() + _MOUNT_WAIT_S
        while not _mounted(self.mount):
            if not self.proc.is_alive():
                raise FuseError(f"the FUSE server exited (code {self.proc.exitcode}) before "
                                f"{self.mount} was mounted")
            if time.monotonic() > deadline:
                self.unmount()
                raise FuseError(f"{self.mount} was not mounted after {_MOUNT_WAIT_S:.0f} s")
            time.sleep(0.01)

    def ask(self, *request: Any) -> Any:
        try:
            self._control.send(request)
            answer = self._control.recv()
        except (EOFError, OSError) as exc:
            raise FuseError(f"the FUSE server is gone ({type(exc).__name__}) while asked "
                            f"{request[0]!r}") from exc
        if isinstance(answer, tuple) and answer[:1] == ("error",):
            raise FuseError(f"the FUSE server failed {request[0]!r}: {answer[1]}")
        return answer

    def forward(self, record: Any) -> None:
        with contextlib.suppress(OSError):
            self._control.send(("rec", record))

    def unmount(self) -> None:
        """Unmount, reap the server; a lazy unmount if it will not go. Never raises."""
        for _ in range(50):
            if not _mounted(self.mount):
                break
            done = subprocess.run(["fusermount3", "-u", self.mount], capture_output=True,
                                  check=False, timeout=10)
            if done.returncode == 0:
                break
            time.sleep(0.05)  # EBUSY: a dying process still has a file open there
        if _mounted(self.mount):
            subprocess.run(["fusermount3", "-uz", self.mount], capture_output=True,
                           check=False, timeout=10)
        self.proc.join(5.0)
        if self.proc.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.join(5.0)
        if _mounted(self.mount):
            subprocess.run(["umount", "-l", self.mount], capture_output=True, check=False,
                           timeout=10)
        for conn in (self.records, self._control):
            with contextlib.suppress(OSError):
                conn.close()
