#!/usr/bin/env python3
"""Reference client of ``--target exec:COMMAND``: a durable queue over one directory.

Run as ``harness run --target "exec:python3 examples/exec_queue.py"``. It reads the
protocol of `harness.run._exectarget` (docs/exec-targets.md) as JSON lines on stdin and
answers on stdout; the queue directory is its last argument (also ``$QUEUE_DIR``).

The queue is one file per entry, its state in the name: ``pending/<id>``,
``processing/<id>`` (claimed), and an ack deletes the file. Each step is durable on its
own: an enqueue writes ``tmp/<id>``, fsyncs it, renames it into ``pending/`` and fsyncs
that directory; a claim is one rename ``pending/ -> processing/`` (exclusive between
processes: only one rename of a name can succeed); an ack unlinks and fsyncs the directory;
``recover`` moves every ``processing/`` entry back to ``pending/`` (the harness calls it
only while no other processor is inside a call). Ids are time-ordered, so claims are
roughly FIFO. It is deliberately small and uses nothing outside the standard library.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time

__all__ = ["Queue", "main"]


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Queue:
    """Entries as files named by id in pending/, processing/; tmp/ holds half-written ones."""

    def __init__(self, directory: str) -> None:
        self.dirs = {d: os.path.join(directory, d) for d in ("tmp", "pending", "processing")}
        for path in self.dirs.values():
            os.makedirs(path, exist_ok=True)
        _fsync_dir(directory)
        self._seq = 0

    def _path(self, state: str, entry_id: str) -> str:
        if not entry_id or "/" in entry_id or entry_id.startswith("."):
            raise ValueError(f"not an id of this queue: {entry_id!r}")
        return os.path.join(self.dirs[state], entry_id)

    def enqueue(self, payload: bytes) -> str:
        self._seq += 1  # time, then pid and a counter: unique across processes, sortable
        entry_id = f"{time.time_ns():020d}-{os.getpid()}-{self._seq}"
        tmp = self._path("tmp", entry_id)
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, self._path("pending", entry_id))
        _fsync_dir(self.dirs["pending"])
        return entry_id

    def claim(self, worker: str) -> tuple[str, bytes] | None:
        for entry_id in sorted(os.listdir(self.dirs["pending"])):
            try:
                os.rename(self._path("pending", entry_id), self._path("processing", entry_id))
            except FileNotFoundError:  # another process claimed it first
                continue
            _fsync_dir(self.dirs["processing"])
            with open(self._path("processing", entry_id), "rb") as f:
                return entry_id, f.read()
        return None

    def ack(self, entry_id: str) -> None:
        os.unlink(self._path("processing", entry_id))
        _fsync_dir(self.dirs["processing"])

    def recover(self) -> None:
        for entry_id in os.listdir(self.dirs["processing"]):
            os.rename(self._path("processing", entry_id), self._path("pending", entry_id))
        _fsync_dir(self.dirs["pending"])
        for name in os.listdir(self.dirs["tmp"]):  # never renamed: never enqueued
            os.unlink(os.path.join(self.dirs["tmp"], name))

    def states(self) -> dict[str, str]:
        found = {i: "PENDING" for i in os.listdir(self.dirs["pending"])}
        found.update({i: "PROCESSING" for i in os.listdir(self.dirs["processing"])})
        return found


def _answer(queue: Queue, request: dict) -> object:
    op = request.get("op")
    if op == "enqueue":
        return queue.enqueue(base64.b64decode(request["payload"]))
    if op == "claim":
        got = queue.claim(str(request.get("worker", "")))
        return None if got is None else [got[0], base64.b64encode(got[1]).decode("ascii")]
    if op == "ack":
        return queue.ack(str(request["id"]))
    if op == "recover":
        return queue.recover()
    if op == "states":
        return queue.states()
    if op == "close":
        return None
    raise ValueError(f"unknown op {op!r}")


def main(argv: list[str]) -> int:
    directory = argv[-1] if len(argv) > 1 else os.environ["QUEUE_DIR"]
    queue = Queue(directory)
    for line in sys.stdin:  # EOF (the harness went away) ends the program too
        request = json.loads(line)
        try:
            reply = {"ok": _answer(queue, request)}
        except Exception as exc:  # noqa: BLE001 - every failure is the call's error reply
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
        if request.get("op") == "close":
            break
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
