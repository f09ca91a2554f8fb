"""Benchmark of ``--layer fuse``: file operations per second through the mount and without it.

Printed figures, not a pass/fail test. In one run, on one disk, the same small-file
workload goes (a) straight to a directory and (b) through the FUSE layer's mount of a
directory next to it, served by the same server a ``--layer fuse`` run uses
(`harness.run._fusemount`), with no fault plan. Two callers through the mount: one the
server does not know (the harness itself: passed through unnumbered and unrecorded) and
one that said hello (each call numbered and its record sent to the conductor's pipe, which
this benchmark drains, as a run does). Writes ``reports/bench-fuse.json``.

Workload per round: create a file, write 4 KiB, fsync it, close, rename it, stat it, list
the directory, read it back, unlink it: 9 calls the program makes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

__all__ = ["main"]

CALLS_PER_ROUND = 9
BLOCK = os.urandom(4096)


def _rounds(directory: str, seconds: float) -> tuple[int, float]:
    """Rounds of the workload in ``directory`` for about ``seconds``: (rounds, elapsed)."""
    n = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        a, b = os.path.join(directory, f"t{n}"), os.path.join(directory, f"f{n}")
        fd = os.open(a, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        os.write(fd, BLOCK)
        os.fsync(fd)
        os.close(fd)
        os.replace(a, b)
        os.stat(b)
        os.listdir(directory)
        with open(b, "rb") as f:
            f.read()
        os.unlink(b)
        n += 1
    return n, time.perf_counter() - started


def _through_mount(seconds: float, hello: bool) -> tuple[int, float, int]:
    import multiprocess

    from harness.intercept.fusegate import hello_name
    from harness.run._fusemount import FuseMount
    from harness.run.reaper import make_sandbox, remove_sandbox

    sandbox = make_sandbox("bench-fuse-")
    ctx = multiprocess.get_context("fork")
    mount = FuseMount(sandbox, ctx=ctx, plan=None, model=False, rng=random.Random(1),
                      max_ops=10**9)
    records = 0
    stop = threading.Event()

    def drain() -> None:  # the conductor's side: take every record the server sends
        nonlocal records
        while not stop.is_set():
            if mount.records.poll(0.05):
                mount.records.recv()
                records += 1

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        work = os.path.join(mount.mount, "w")
        os.mkdir(work)
        if hello:  # this process is processor 0 from now on
            try:
                os.stat(os.path.join(mount.mount, hello_name(0, 0)))
            except FileNotFoundError:
                pass
        n, elapsed = _rounds(work, seconds)
    finally:
        stop.set()
        reader.join(2)
        mount.unmount()
        remove_sandbox(sandbox)
    return n, elapsed, records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument("--out", default="reports/bench-fuse.json")
    args = parser.parse_args(argv)
    from harness.run._fusemount import refusal
    why = refusal()
    if why is not None:
        print(f"bench-fuse: skipped: the FUSE layer cannot run here: {why}")
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-direct-") as direct:
        n, elapsed = _rounds(direct, args.seconds)
    rows.append({"path": "backing directory, no FUSE", "rounds": n, "seconds": elapsed,
                 "records": 0})
    for hello, label in ((False, "FUSE mount, caller unknown (passed through)"),
                         (True, "FUSE mount, caller a processor (numbered, recorded)")):
        n, elapsed, records = _through_mount(args.seconds, hello)
        rows.append({"path": label, "rounds": n, "seconds": elapsed, "records": records})
    base = rows[0]["rounds"] / rows[0]["seconds"] * CALLS_PER_ROUND
    print(f"{'path':<55} {'calls/s':>10} {'vs direct':>10} {'records':>8}")
    for row in rows:
        rate = row["rounds"] / row["seconds"] * CALLS_PER_ROUND
        row["calls_per_s"] = round(rate, 1)
        row["fraction_of_direct"] = round(rate / base, 4)
        print(f"{row['path']:<55} {rate:>10,.0f} {rate / base:>9.1%} {row['records']:>8}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"calls_per_round": CALLS_PER_ROUND,
                                          "rows": rows}, indent=2) + "\n")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
