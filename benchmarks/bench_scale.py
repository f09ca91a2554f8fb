"""Measure issue 15's baseline: many processes, peer queues side by side, and open cost at scale.

Called from ``bench_core.main`` (``make bench``) on the same scratch directory, so every
figure shares the disk and the run with bench_core's raw fsync rate. It measures:

* ``peers``: robust, persist-queue's ``SQLiteAckQueue`` (its defaults: WAL with SQLite's
  synchronous=FULL, one fsync per commit) and ``litequeue`` (synchronous=NORMAL: no fsync
  per commit) through one lifecycle (enqueue all N, then claim + ack all N, one at a time)
  in one process, and with 4 producer + 4 consumer processes each opening its own handle
  (unique 100-byte payloads, so duplicate deliveries are counted).
* ``scale``: robust with 10k, 100k (and 1M with ``--scale-max 1000000``) pending entries,
  built with ``enqueue_many``: a fresh process's open time, peak RSS (VmHWM) and
  ``compact()`` time; another process's enqueue latencies before, during open and compact.

The targets are reports, not a gate: they never change the exit status.
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

__all__ = ["add_arguments", "run", "evaluate", "print_report"]

REPO = Path(__file__).resolve().parents[1]
PEERS = ("robust", "sqlite-ack", "litequeue")
NOTES = {"sqlite-ack": "WAL, synchronous=FULL (fsync per commit)",
         "litequeue": "WAL, synchronous=NORMAL: no fsync per commit"}
SCALE_SIZES = (10_000, 100_000, 1_000_000)
# fork is fine: every process opens its own handle after the fork.
_CTX = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
# A fresh interpreter, so that its peak RSS is the open's and not this benchmark's.
OPENER = """
import json, sys, time; sys.path.insert(0, sys.argv[2])
from persistence import open_queue
# VmHWM, not ru_maxrss: Linux carries the forking parent's peak into ru_maxrss over exec.
hwm = lambda: int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
base = hwm(); t0 = time.monotonic(); q = open_queue(sys.argv[1]); t1 = time.monotonic(); top = hwm()
c0 = time.monotonic(); q.compact(); c1 = time.monotonic(); q.close()
print(json.dumps({"base": base, "peak": top, "open": [t0, t1], "compact": [c0, c1]}))  # KiB
"""


def _payload(producer: int, i: int) -> bytes:
    return f"{producer}:{i}:".encode().ljust(100, b"p")


class _Driver:
    """One handle on one implementation, through put / take / done."""

    def __init__(self, impl: str, path: str) -> None:
        self.impl = impl
        if impl == "robust":
            if str(REPO) not in sys.path:
                sys.path.insert(0, str(REPO))
            from persistence import open_queue
            self.q = open_queue(path)
        elif impl == "sqlite-ack":
            import persistqueue
            self.q = persistqueue.SQLiteAckQueue(path, auto_commit=True, multithreading=True)
            self.empty = persistqueue.Empty
        else:
            from litequeue import LiteQueue
            os.makedirs(path, exist_ok=True)
            self.q = LiteQueue(os.path.join(path, "litequeue.db"))

    def put(self, payload: bytes) -> None:
        if self.impl == "robust":
            self.q.enqueue(payload)
        elif self.impl == "sqlite-ack":
            self.q.put(payload)
        else:
            self.q.put(payload.decode())  # litequeue stores text

    def take(self) -> tuple[object, bytes] | None:
        if self.impl == "robust":
            return self.q.claim("bench")
        if self.impl == "litequeue":
            msg = self.q.pop()
            return None if msg is None else (msg.message_id, msg.data.encode())
        try:
            item = self.q.get(block=False)
        except self.empty:
            return None
        return item, item  # ack(item) finds the item by identity in its cache

    def done(self, token: object) -> None:
        if self.impl == "litequeue":
            self.q.done(token)
        else:
            self.q.ack(token)

    def fsyncs(self) -> int | None:
        return self.q.stats()["fsyncs"] if self.impl == "robust" else None

    def close(self) -> None:
        self.q.close()


def _row(impl: str, processes: int, n: int) -> dict:
    return {"impl": impl, "processes": processes, "entries": n, "entries_per_s": None,
            "fsyncs_per_entry": None, "note": NOTES.get(impl, "")}


def _one_process(impl: str, n: int, parent: str) -> dict:
    path = tempfile.mkdtemp(prefix=f"peer-{impl}-", dir=parent)
    try:
        driver = _Driver(impl, path)
        fsyncs, start = driver.fsyncs(), time.perf_counter()
        for i in range(n):
            driver.put(_payload(0, i))
        for _ in range(n):
            got = driver.take()
            if got is None:
                raise RuntimeError(f"{impl}: queue ran dry before {n} entries were claimed")
            driver.done(got[0])
        seconds = time.perf_counter() - start
        after = driver.fsyncs()
        driver.close()
    finally:
        shutil.rmtree(path, ignore_errors=True)
    return {**_row(impl, 1, n), "entries_per_s": n / seconds,
            "fsyncs_per_entry": None if after is None else (after - fsyncs) / n}


def _worker(role, index, impl, path, count, total, acked, barrier, results, limit) -> None:
    try:
        driver = _Driver(impl, path)
        before = driver.fsyncs()
        barrier.wait(timeout=60)
        seen = []
        if role == "producer":
            for i in range(count):
                driver.put(_payload(index, i))
        while role == "consumer" and acked.value < total:
            if time.monotonic() > limit:
                raise TimeoutError(f"{acked.value} of {total} acked within the time limit")
            got = driver.take()
            if got is None:
                time.sleep(0.001)  # nothing pending: let the producers have the lock
                continue
            driver.done(got[0])
            seen.append(got[1][:12].rsplit(b":", 1)[0])
            with acked.get_lock():
                acked.value += 1
        results.put({"end": time.monotonic(), "seen": seen,
                     "fsyncs": (driver.fsyncs() or 0) - (before or 0)})
        driver.close()
    except Exception as exc:  # reported in the row rather than hanging the benchmark
        barrier.abort()
        results.put({"error": f"{role} {index}: {type(exc).__name__}: {exc}"})


def _many_process(impl: str, n: int, parent: str, seconds: float = 120.0) -> dict:
    row = _row(impl, 8, n)
    path = tempfile.mkdtemp(prefix=f"procs-{impl}-", dir=parent)
    acked, barrier, results = _CTX.Value("q", 0), _CTX.Barrier(9), _CTX.Queue()
    try:
        _Driver(impl, path).close()  # create it once, not 8 times at once
        per = n // 4
        procs = [_CTX.Process(target=_worker, args=(role, i, impl, path, per, per * 4, acked,
                                                   barrier, results, time.monotonic() + seconds))
                 for role in ("producer", "consumer") for i in range(4)]
        for proc in procs:
            proc.start()
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=60)  # when a worker fails to open, its error is in results
        start = time.monotonic()
        got = [results.get(timeout=seconds + 60) for _ in procs]
        for proc in procs:
            proc.join(timeout=10)
        for g in (g for g in got if "error" in g):
            return {**row, "error": g["error"]}
        seen = [key for g in got for key in g["seen"]]
        row["entries_per_s"] = per * 4 / (max(g["end"] for g in got) - start)
        if impl == "robust":
            row["fsyncs_per_entry"] = sum(g["fsyncs"] for g in got) / (per * 4)
        if len(set(seen)) != len(seen) or len(set(seen)) != per * 4:
            row["error"] = (f"{len(seen) - len(set(seen))} duplicate deliveries, "
                            f"{per * 4 - len(set(seen))} entries never delivered")
    finally:
        shutil.rmtree(path, ignore_errors=True)
    return row


def _probe(path: str, ready, stop, results) -> None:
    driver = _Driver("robust", path)
    ready.set()
    samples = []
    while not stop.is_set():
        t0 = time.monotonic()
        driver.put(b"x" * 100)
        samples.append((t0, time.monotonic() - t0))
    driver.close()
    results.put(samples)


def _waits(samples: list, window: list) -> dict:
    """p99 and max of the enqueues that overlapped ``window``, in ms, and how many there were."""
    lat = sorted(d for t, d in samples if t < window[1] and t + d > window[0])
    p99 = lat[math.ceil(0.99 * len(lat)) - 1] * 1e3 if lat else None
    return {"p99_ms": p99, "max_ms": lat[-1] * 1e3 if lat else None, "samples": len(lat)}


def _scale_row(n: int, parent: str, batch: int) -> dict:
    path = tempfile.mkdtemp(prefix="scale-", dir=parent)
    try:
        start = time.perf_counter()
        builder = _Driver("robust", path)
        for first in range(0, n, batch):
            builder.q.enqueue_many([b"p" * 100] * min(batch, n - first))
        builder.close()
        build = time.perf_counter() - start
        ready, stop, results = _CTX.Event(), _CTX.Event(), _CTX.Queue()
        prober = _CTX.Process(target=_probe, args=(path, ready, stop, results))
        prober.start()
        ready.wait(timeout=600)
        time.sleep(0.2)  # the prober's steady state before the open begins
        out = subprocess.run([sys.executable, "-c", OPENER, path, str(REPO)],
                             check=True, capture_output=True, text=True).stdout
        time.sleep(0.1)
        stop.set()
        samples = results.get(timeout=120)
        prober.join(timeout=30)
    finally:
        shutil.rmtree(path, ignore_errors=True)
    opened = json.loads(out)
    return {"pending": n, "build_s": build, "build_batch": batch,
            "open_s": opened["open"][1] - opened["open"][0],
            "compact_s": opened["compact"][1] - opened["compact"][0],
            "peak_rss_mib": opened["peak"] / 1024, "rss_before_open_mib": opened["base"] / 1024,
            "wait_before": _waits(samples, [0, opened["open"][0]]),
            "wait_open": _waits(samples, opened["open"]),
            "wait_compact": _waits(samples, opened["compact"])}


def add_arguments(parser) -> None:
    """bench_core's parser grows this module's flags."""
    parser.add_argument("--scale-max", type=int, default=100_000,
                        help="largest pending size for the scale rows (10k, 100k, 1M)")
    parser.add_argument("--peer-entries", type=int, default=1_000,
                        help="entries per one-process peer lifecycle")
    parser.add_argument("--procs-entries", type=int, default=2_000,
                        help="entries per 8-process run (4 producers, 4 consumers)")
    parser.add_argument("--peers", default=",".join(PEERS),
                        help=f"which of {', '.join(PEERS)} to run (comma-separated)")


def run(args, scratch: str) -> dict:
    """Every measurement, as the new keys of reports/bench-core.json."""
    rows = []
    for impl in (p.strip() for p in args.peers.split(",") if p.strip()):
        for procs, n in ((1, args.peer_entries), (8, args.procs_entries)):
            started = time.perf_counter()
            try:
                rows.append(_one_process(impl, n, scratch) if procs == 1 else
                            _many_process(impl, n, scratch))
            except Exception as exc:  # a peer that cannot run is a row that says why
                rows.append({**_row(impl, procs, n), "error": f"{type(exc).__name__}: {exc}"})
            print(f"  {impl} x {n:,} ({procs} proc): {time.perf_counter() - started:.1f} s",
                  file=sys.stderr, flush=True)
    scale = []
    for n in (s for s in SCALE_SIZES if s <= args.scale_max):
        started = time.perf_counter()
        scale.append(_scale_row(n, scratch, batch=1_000))
        print(f"  scale {n:,}: {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    extra = {"peers": rows, "scale": scale}
    extra["scale_targets"] = evaluate(extra)
    return extra


def _peer(rows: list, impl: str, processes: int) -> dict | None:
    return next((r for r in rows if r["impl"] == impl and r["processes"] == processes
                 and r["entries_per_s"] and not r.get("error")), None)


def evaluate(extra: dict) -> list[dict]:
    """Issue 15's targets, each {"name", "met", "detail"}; a report, never an exit status."""
    targets: list[dict] = []
    rows, scale = extra.get("peers", []), extra.get("scale", [])

    def add(name: str, met: bool, detail: str) -> None:
        targets.append({"name": name, "met": bool(met), "detail": detail})

    one, many, sqlite = (_peer(rows, "robust", 1), _peer(rows, "robust", 8),
                         _peer(rows, "sqlite-ack", 1))
    for name, top, bottom, floor in (("robust, 8 processes >= 3x one process", many, one, 3),
                                     ("robust, one process >= 1.5x SQLiteAckQueue", one, sqlite,
                                      1.5)):
        if top and bottom:
            ratio = top["entries_per_s"] / bottom["entries_per_s"]
            add(name, ratio >= floor, f"{top['entries_per_s']:.0f}/s vs "
                f"{bottom['entries_per_s']:.0f}/s ({ratio:.2f}x)")
    if scale:
        big = scale[-1]
        # The targets are set at 1M; a smaller run says which size it judged.
        at = f"at {big['pending']:,}" + ("" if big["pending"] >= 1_000_000 else
                                         " (target is at 1M: --scale-max 1000000)")
        add(f"open <= 1 s {at}", big["open_s"] <= 1.0, f"{big['open_s']:.2f} s")
        add(f"peak RSS of the opener <= 100 MiB {at}", big["peak_rss_mib"] <= 100,
            f"{big['peak_rss_mib']:.0f} MiB ({big['rss_before_open_mib']:.0f} MiB before open)")
        for phase in ("open", "compact"):
            p99 = big[f"wait_{phase}"]["p99_ms"]
            add(f"p99 enqueue wait of another process during {phase} <= 100 ms {at}",
                p99 is not None and p99 <= 100, _wait_text(big[f"wait_{phase}"]))
    return targets


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _wait_text(wait: dict) -> str:
    return f"{_num(wait['p99_ms'], '.1f')} / {_num(wait['max_ms'], '.1f')} ({wait['samples']})"


def print_report(extra: dict, raw: float, core_rows: list[dict]) -> None:
    """The peers, scale and target tables, after bench_core's own."""
    core = sorted((r for r in core_rows if r["impl"] == "robust"), key=lambda r: r["entries"])
    print(f"\nissue 15 (same run, same disk): raw fsync {raw:,.0f}/s" + (
        f"; bench_core robust one process at {core[0]['entries']:,}: "
        f"{core[0]['entries_per_s']:,.0f}/s" if core else ""))
    print(f"{'impl':<11} {'procs':>5} {'entries':>8} {'entries/s':>10} {'fsyncs/entry':>12}  note")
    for r in extra["peers"]:
        note = r["note"] + (f"; NOT VALID: {r['error']}" if r.get("error") else "")
        print(f"{r['impl']:<11} {r['processes']:>5} {r['entries']:>8,} "
              f"{_num(r['entries_per_s'], ',.0f'):>10} {_num(r['fsyncs_per_entry'], '.3f'):>12}"
              f"  {note}")
    if extra["scale"]:
        print("\nwait = another process's enqueue latency, ms: p99 / max (enqueues overlapping)")
        print(f"{'pending':>9} {'build s':>7} {'open s':>6} {'RSS MiB':>7} {'wait before':>19} "
              f"{'wait during open':>19} {'compact s':>9} {'wait during compact':>19}")
        for r in extra["scale"]:
            print(f"{r['pending']:>9,} {r['build_s']:>7.1f} {r['open_s']:>6.2f} "
                  f"{r['peak_rss_mib']:>7.0f} {_wait_text(r['wait_before']):>19} "
                  f"{_wait_text(r['wait_open']):>19} {r['compact_s']:>9.2f} "
                  f"{_wait_text(r['wait_compact']):>19}")
    print()
    for t in extra["scale_targets"]:
        print(f"{'met    ' if t['met'] else 'NOT MET'}  {t['name']}: {t['detail']}")
