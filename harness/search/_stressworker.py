"""The worker processes of ``harness stress``, both ends: `Workers` in the command, `main`
in each worker (``python -m harness.search._stressworker``).

A worker is a fresh interpreter that imports the harness, never the caller's ``__main__``
(multiprocessing's spawn re-ran a console script without a ``__main__`` guard in every
worker). It reads its jobs (`harness.search._search.search`), one JSON line on stdin, and
answers on its own line (file descriptor 1 as it started; the target's prints go to
stderr) with JSON lines: ``{"job": i, "runs": n, "bugs": [...]}`` after every run, then
``{"job": i, "result": {...}}`` per job.

Nothing outlives the command:

- SIGTERM or SIGINT to a worker ends its search with what it found so far (its result
  says ``interrupted``), and it exits; the command sends SIGTERM to every worker when it
  is interrupted itself, waits `STOP_S` for their results, then SIGKILLs what is left;
- a worker whose parent dies, however it dies, gets SIGTERM from the kernel
  (``PR_SET_PDEATHSIG``, Linux) and from itself when its stdin reaches end of file (the
  parent's end closes when the parent dies): it stops as above, so its run's sandbox is
  removed and the replay files of what it found are saved, and `STOP_S` later it exits
  whatever it is doing.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from harness.run.reaper import death_signal

__all__ = ["STOP_S", "Workers", "main"]

STOP_S = 10.0
"""Seconds interrupted workers get to report what they found before they are killed."""



class Workers:
    """Runs the jobs on ``count`` worker processes (job i on worker i % count)."""

    def __init__(self, jobs: list[dict[str, Any]], count: int) -> None:
        self.jobs = jobs
        self.results: dict[int, dict[str, Any]] = {}
        self.progress: dict[int, tuple[int, list[str]]] = {}  # job -> (runs, bugs)
        self._procs: list[subprocess.Popen] = []
        self._buffers: dict[int, bytes] = {}
        self._sel = selectors.DefaultSelector()
        # the parent's own import path: the harness and a target found from the cwd
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        for w in range(min(count, len(jobs))):
            mine = [dict(job, index=i) for i, job in enumerate(jobs) if i % count == w]
            proc = subprocess.Popen([sys.executable, "-m", "harness.search._stressworker",
                                     str(os.getpid())],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
            self._procs.append(proc)
            with contextlib.suppress(BrokenPipeError):  # it died at once: failed() says so
                proc.stdin.write((json.dumps(mine) + "\n").encode())
                proc.stdin.flush()  # it stays open: its end of file is the parent's death
            os.set_blocking(proc.stdout.fileno(), False)
            self._sel.register(proc.stdout, selectors.EVENT_READ, proc)

    def pump(self, timeout: float, tick: Callable[[], None] | None = None) -> bool:
        """Read what the workers sent for up to ``timeout`` s; False once all are done."""
        if not self._sel.get_map():
            return False
        for key, _ in self._sel.select(timeout):
            self._read(key.data)
        if tick is not None:
            tick()
        return bool(self._sel.get_map())

    def _read(self, proc: subprocess.Popen) -> None:
        fd = proc.stdout.fileno()
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        if not chunk:  # it exited (or closed its line): nothing more will come
            self._sel.unregister(proc.stdout)
            proc.wait()
            return
        data = self._buffers.get(fd, b"") + chunk
        *lines, self._buffers[fd] = data.split(b"\n")
        for line in lines:
            message = json.loads(line)
            if "result" in message:
                self.results[message["job"]] = message["result"]
            else:
                self.progress[message["job"]] = (message["runs"], message["bugs"])

    def run(self, tick: Callable[[], None] | None = None) -> None:
        while self.pump(1.0, tick):
            pass

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Ask every live worker to stop with what it found; kill it after `STOP_S`."""
        for proc in self._procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signum)
        deadline = time.monotonic() + STOP_S
        while time.monotonic() < deadline and self.pump(0.2):
            pass
        self.close()

    def close(self) -> None:
        """Kill and reap whatever is still running (every exit path ends here)."""
        for proc in self._procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                with contextlib.suppress(OSError):
                    stream.close()
        self._sel.close()

    def failed(self) -> list[str]:
        """Workers that ended without a result for each of their jobs."""
        return [f"worker {w} (pid {p.pid}) exited with code {p.returncode} before "
                "reporting" for w, p in enumerate(self._procs)
                if any(i % len(self._procs) == w and i not in self.results
                       for i in range(len(self.jobs)))]


# -- the worker's side ---------------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    """SIGTERM from the kernel when the parent dies (Linux); the stdin watch elsewhere."""
    death_signal(signal.SIGTERM, parent)()


def _orphan_watch() -> None:
    """Stop when stdin closes (the parent is gone), and exit `STOP_S` later at the latest."""
    def watch() -> None:
        with contextlib.suppress(OSError):
            while os.read(0, 1 << 12):  # raw: a buffered read would block the shutdown
                pass
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(STOP_S)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="harness-orphan-watch").start()


def main() -> int:
    # Ctrl-C reaches the whole process group: the command decides, and sends SIGTERM.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(int(sys.argv[1]))
    line = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # the target's prints go to stderr, not into the line
    jobs = json.loads(sys.stdin.buffer.readline() or "[]")
    _orphan_watch()

    from harness.run.reaper import deferred, interruptible, sweep
    from harness.search._search import search

    def send(message: dict[str, Any]) -> None:
        try:
            with deferred():  # a signal never cuts a line in two
                line.write(json.dumps(message, default=str) + "\n")
        except OSError:  # the parent is gone: nobody to report to
            os._exit(1)

    try:
        with interruptible():
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # still the command's to decide
            for job in jobs:
                result = search(job, lambda runs, bugs, i=job["index"]: send(
                    {"job": i, "runs": runs, "bugs": bugs}))
                send({"job": job["index"], "result": result})
                if result["interrupted"]:
                    return 128 + result["interrupted"]  # the jobs left are not started
    except KeyboardInterrupt as exc:  # between two runs: nothing found is lost
        return 128 + getattr(exc, "signum", signal.SIGINT)
    finally:
        sweep()  # a sandbox whose run was interrupted before its own cleanup began
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
