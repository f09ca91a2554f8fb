"""Targets outside Python: ``--target exec:COMMAND``, one child program per opened queue.

The protocol (the only statement of it; docs/exec-targets.md explains it for authors):
the harness starts COMMAND (split with `shlex`, in the harness's working directory) with
the queue's directory appended as its last argument and in the environment as
``QUEUE_DIR``, once per queue the harness opens. It then writes one JSON object per line
to the program's stdin and reads exactly one JSON line back from its stdout per request:

    {"op": "enqueue", "payload": "<base64>"}  ->  {"ok": "<id>"}
    {"op": "claim", "worker": "p0"}           ->  {"ok": null} or {"ok": ["<id>", "<base64>"]}
    {"op": "ack", "id": "<id>"}               ->  {"ok": null}
    {"op": "recover"}                         ->  {"ok": null}
    {"op": "states"}                          ->  {"ok": {"<id>": "PENDING", ...}}
    {"op": "close"}                           ->  {"ok": null}, then the program exits

Any request may be answered ``{"error": "message"}``: the call raised (`ExecTargetError`),
which the harness records as the target's own error, like an exception from a Python
queue. A program that exits, closes its stdout or writes a line that is not such a reply
breaks the protocol: the call raises `ExecProtocolError`, naming the command, its exit
code and the last lines of its stderr (stderr is free for the program's logs). The
program must exit when its stdin closes; the adapter kills and reaps it anyway on
``close()``, when it is garbage collected (a processor the harness killed drops its queue
without closing it) and at interpreter exit, so no child outlives the harness.
"""

from __future__ import annotations

import base64
import binascii
import collections
import json
import os
import shlex
import shutil
import signal
import subprocess
import threading
import weakref
from collections.abc import Callable
from typing import Any

from harness.run.reaper import death_signal

__all__ = ["ExecProtocolError", "ExecTargetError", "exec_factory"]

_STDERR_LINES = 20  # kept for error messages: the program's last words
_CLOSE_WAIT_S = 5.0  # a program that does not exit after "close" is killed after this


class ExecTargetError(Exception):
    """The program answered ``{"error": message}``: the call raised, message as written."""


class ExecProtocolError(ExecTargetError):
    """The program exited, closed stdout or wrote a line that is not a reply."""


def parse_command(command: str) -> list[str]:
    """COMMAND -> argv; ValueError with a user-ready message when it cannot run."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ValueError(f"cannot split {command!r} into words ({exc})") from None
    if not argv:
        raise ValueError("no command after 'exec:' (e.g. exec:python3 examples/exec_queue.py)")
    if shutil.which(argv[0]) is None:
        raise ValueError(f"program {argv[0]!r} not found or not executable (searched the "
                         "working directory for a path, else PATH)")
    return argv


def exec_factory(command: str) -> Any:
    """The target factory of ``exec:COMMAND``: directory -> an `ExecQueue` over a new child.

    Raises ValueError (with a user-ready message) when COMMAND cannot be run at all."""
    argv = parse_command(command)

    def open_exec_queue(directory: str) -> ExecQueue:
        return ExecQueue(argv, directory)

    open_exec_queue.__qualname__ = open_exec_queue.__name__ = f"exec:{command}"
    return open_exec_queue


def _reap(proc: subprocess.Popen, wait: float = 0.0) -> int | None:
    """Close its stdin, give it ``wait`` seconds to exit, then SIGKILL and reap it.

    A module function, not a method: `weakref.finalize` must not hold the queue alive.
    stdout is closed only once the child is dead: a thread of an abandoned (hung) call may
    still be blocked reading it, and closing a reader under it would wait for that read."""
    try:
        if proc.stdin is not None:
            proc.stdin.close()
    except OSError:  # a broken pipe on the flush of an unsent line: nothing to keep
        pass
    if wait:
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            pass
    code = _kill(proc)
    try:
        if proc.stdout is not None:
            proc.stdout.close()
    except OSError:
        pass
    return code


def _die_with_us() -> Callable[[], None] | None:
    """In the main thread, a ``preexec_fn`` that has the kernel SIGKILL the child when this
    process dies (a process-mode worker the harness SIGKILLed leaves no program behind,
    even one that never reads its stdin again). Not from other threads: the kernel ties
    the signal to the forking thread's exit, and a fork among threads must not run Python
    code that could wait for a lock another thread held."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return death_signal(signal.SIGKILL)


def _kill(proc: subprocess.Popen) -> int | None:
    if proc.poll() is None:
        try:
            proc.kill()
        except ProcessLookupError:
            pass
    return proc.wait()


def _read_stderr(stream: Any, lines: collections.deque[str]) -> None:
    try:
        for line in stream:
            lines.append(line.rstrip("\n"))
    except (OSError, ValueError):  # the stream was closed under us: the child is gone
        pass
    finally:
        stream.close()


class ExecQueue:
    """The target contract over one child program speaking the protocol above."""

    def __init__(self, argv: list[str], directory: str) -> None:
        self._argv = list(argv)
        self._command = shlex.join(self._argv)
        self._stderr: collections.deque[str] = collections.deque(maxlen=_STDERR_LINES)
        env = dict(os.environ, QUEUE_DIR=directory)
        try:
            self._proc = subprocess.Popen(
                [*self._argv, directory], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace",
                bufsize=1, env=env, preexec_fn=_die_with_us())
        except OSError as exc:
            raise ExecProtocolError(f"exec target {self._command!r}: cannot start: {exc}"
                                    ) from None
        self._finalizer = weakref.finalize(self, _reap, self._proc)
        # stderr is drained by a thread so that a chatty program never blocks on a full pipe;
        # the thread holds the buffer, not the queue, which must stay collectable
        threading.Thread(target=_read_stderr, args=(self._proc.stderr, self._stderr),
                         daemon=True, name=f"exec-stderr-{self._proc.pid}").start()
        self._lock = threading.Lock()  # one request/reply at a time on the pipes
        self._closed = False
        self._gone = ""  # why the protocol broke: every later call repeats it

    def _broken(self, what: str) -> ExecProtocolError:
        """The protocol broke: kill and reap the child, say what happened and its last words."""
        self._closed = True
        code = _reap(self._proc, wait=1.0)
        self._finalizer.detach()
        how = f"exit code {code}" if code is None or code >= 0 else f"killed by signal {-code}"
        tail = "; ".join(list(self._stderr)[-5:]) or "(nothing on stderr)"
        self._gone = (f"exec target {self._command!r} {what} ({how}); "
                      f"last stderr: {tail}")
        return ExecProtocolError(self._gone)

    def _call(self, request: dict[str, Any]) -> Any:
        with self._lock:
            if self._closed:
                raise ExecProtocolError(self._gone or f"exec target {self._command!r} was "
                                        f"closed before {request['op']!r}")
            try:
                self._proc.stdin.write(json.dumps(request) + "\n")
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                raise self._broken(f"stopped reading its stdin before {request['op']!r}"
                                   ) from None
            line = self._proc.stdout.readline()  # waiting for the exec program's reply
            if not line:
                raise self._broken(f"exited or closed its stdout during {request['op']!r}")
            try:
                reply = json.loads(line)
            except ValueError:
                raise self._broken(f"wrote a line that is not JSON in reply to "
                                   f"{request['op']!r}: {line.strip()[:200]!r}") from None
        if isinstance(reply, dict) and "error" in reply:
            raise ExecTargetError(str(reply["error"]))
        if not isinstance(reply, dict) or "ok" not in reply:
            raise self._broken(f"wrote a reply to {request['op']!r} without 'ok' or 'error': "
                               f"{line.strip()[:200]!r}")
        return reply["ok"]

    def _decode(self, text: Any, op: str) -> bytes:
        try:
            return base64.b64decode(str(text), validate=True)
        except (binascii.Error, ValueError):
            raise self._broken(f"answered {op!r} with a payload that is not base64: "
                               f"{str(text)[:80]!r}") from None

    # -- the target contract

    def enqueue(self, payload: bytes) -> str:
        data = base64.b64encode(bytes(payload)).decode("ascii")
        return str(self._call({"op": "enqueue", "payload": data}))

    def claim(self, worker: str) -> tuple[str, bytes] | None:
        got = self._call({"op": "claim", "worker": worker})
        if got is None:
            return None
        if not isinstance(got, list) or len(got) != 2:
            raise self._broken(f"answered 'claim' with {got!r}, not null or [id, payload]")
        return str(got[0]), self._decode(got[1], "claim")

    def ack(self, entry_id: str) -> None:
        self._call({"op": "ack", "id": str(entry_id)})

    def recover(self) -> None:
        self._call({"op": "recover"})

    def states(self) -> dict[str, str]:
        got = self._call({"op": "states"})
        if not isinstance(got, dict):
            raise self._broken(f"answered 'states' with {got!r}, not an object")
        return {str(k): str(v) for k, v in got.items()}

    def close(self) -> None:
        """Send close, let the program exit (bounded), kill it if it does not; always reap."""
        if self._closed:
            return
        try:
            self._call({"op": "close"})
        finally:
            self._closed = True
            self._finalizer.detach()
            _reap(self._proc, wait=_CLOSE_WAIT_S)

    @property
    def pid(self) -> int:
        """The child's pid (tests check it is gone)."""
        return self._proc.pid
