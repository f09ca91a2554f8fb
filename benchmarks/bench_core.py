"""Benchmark the queue lifecycle (enqueue + claim + ack) against the disk's own fsync rate.

Run as a script (``make bench``). In one run it measures, on the same filesystem:

* ``raw_fsync_per_s``: append 100 bytes and ``os.fsync`` one file, for about 2 s. This is
  the ceiling a durable queue cannot beat: it must fsync before it reports success.
* ``robust``: ``persistence.open_queue`` one call per entry: enqueue all N, then claim and
  ack all N (so the queue is long while it is drained, which exposes any cost that grows
  with the queue).
* ``robust-batch``: the same lifecycle through ``enqueue_many``/``claim_many``/``ack_many``
  in batches of 100, which can share one fsync among many entries.
* ``legacy``: ``persistence.legacy.open_legacy``, the incident's design, with the same
  pattern as ``robust``; only small sizes, since every call rewrites the whole file.

``entries_per_s`` is N divided by the wall time of the whole lifecycle; ``fsyncs_per_entry``
is the queue's own ``stats()["fsyncs"]`` counter over the lifecycle, divided by N.
It prints a table and the targets with PASS/FAIL, and writes ``reports/bench-core.json``.
The exit status is 0 unless it crashes, or, with ``--check``, when a target fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import bench_scale

__all__ = ["main", "raw_fsync_rate", "run_lifecycle", "evaluate_targets"]

REPO = Path(__file__).resolve().parents[1]
PAYLOAD = b"p" * 100
WORKER = "bench"
IMPLS = ("robust", "robust-batch", "legacy")


def scratch_parent() -> str:
    """A directory on the same disk as the repo, so fsync timings describe that disk."""
    repo_dev = os.stat(REPO).st_dev
    for candidate in (REPO / "reports", Path(tempfile.gettempdir())):
        if candidate.is_dir() and os.stat(candidate).st_dev == repo_dev:
            return str(candidate)
    # No candidate shares the device: the repo itself always does.
    return str(REPO)


def raw_fsync_rate(directory: str, seconds: float) -> float:
    """Appends of 100 bytes, each followed by fsync, per second, for ``seconds``."""
    path = os.path.join(directory, "raw-fsync.bin")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        count = 0
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            os.write(fd, PAYLOAD)
            os.fsync(fd)
            count += 1
            now = time.perf_counter()
            if now >= deadline:
                return count / (now - start)
    finally:
        os.close(fd)
        os.remove(path)


def _open_impl(impl: str, directory: str):
    # Imported here so that ``--impls legacy`` works before the robust core exists. The
    # repo goes first on sys.path: an editable install made before persistence/ had an
    # __init__.py maps it as a namespace package, without ``open_queue``.
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    if impl == "legacy":
        from persistence.legacy import open_legacy

        return open_legacy(directory)
    from persistence import open_queue

    return open_queue(directory)


def _one_at_a_time(queue, n: int) -> None:
    for _ in range(n):
        queue.enqueue(PAYLOAD)
    for _ in range(n):
        item = queue.claim(WORKER)
        if item is None:
            raise RuntimeError("queue ran dry before all entries were claimed")
        queue.ack(item[0])


def _batched(queue, n: int, batch: int) -> None:
    for start in range(0, n, batch):
        queue.enqueue_many([PAYLOAD] * min(batch, n - start))
    done = 0
    while done < n:
        items = queue.claim_many(WORKER, batch)
        if not items:
            raise RuntimeError("queue ran dry before all entries were claimed")
        queue.ack_many([entry_id for entry_id, _ in items])
        done += len(items)


def run_lifecycle(impl: str, n: int, parent: str, batch: int = 100) -> dict:
    """Time enqueue + claim + ack of ``n`` entries in a fresh directory under ``parent``."""
    directory = tempfile.mkdtemp(prefix=f"bench-{impl}-", dir=parent)
    try:
        queue = _open_impl(impl, directory)
        try:
            fsyncs_before = queue.stats()["fsyncs"]
            start = time.perf_counter()
            if impl == "robust-batch":
                _batched(queue, n, batch)
            else:
                _one_at_a_time(queue, n)
            seconds = time.perf_counter() - start
            fsyncs = queue.stats()["fsyncs"] - fsyncs_before
        finally:
            queue.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return {
        "impl": impl,
        "entries": n,
        "entries_per_s": n / seconds,
        "fsyncs_per_entry": fsyncs / n,
    }


def _row(rows: list[dict], impl: str, n: int) -> dict | None:
    return next((r for r in rows if r["impl"] == impl and r["entries"] == n), None)


def _us(row: dict) -> float:
    return 1e6 / row["entries_per_s"]


def evaluate_targets(rows: list[dict], raw_fsync_per_s: float) -> list[dict]:
    """The four targets, each as {"name", "pass", "detail"}; skipped when rows are missing."""
    targets: list[dict] = []
    robust = sorted((r for r in rows if r["impl"] == "robust"), key=lambda r: r["entries"])

    def add(name: str, passed: bool, detail: str) -> None:
        targets.append({"name": name, "pass": bool(passed), "detail": detail})

    if len(robust) >= 2:
        small, large = robust[0], robust[-1]
        ratio = _us(large) / _us(small)
        add(
            f"robust per-entry cost at {large['entries']:,} <= 1.5x at {small['entries']:,}",
            ratio <= 1.5,
            f"{_us(large):.1f} us vs {_us(small):.1f} us ({ratio:.2f}x)",
        )
    legacy = [r for r in rows if r["impl"] == "legacy"]
    # Judged at the largest legacy size only (3,000 by default), where the gap is widest.
    for legacy_row in sorted(legacy, key=lambda r: r["entries"])[-1:]:
        n = legacy_row["entries"]
        # Same N if measured, else the next larger robust size: a longer queue can only
        # make the robust side slower, so the comparison stays conservative.
        bigger = [r for r in robust if r["entries"] >= n]
        other = _row(rows, "robust", n) or (bigger[0] if bigger else None)
        if other is None:
            continue
        ratio = other["entries_per_s"] / legacy_row["entries_per_s"]
        add(
            f"robust ({other['entries']:,}) >= 100x legacy at {n:,} entries",
            ratio >= 100,
            f"{other['entries_per_s']:.0f}/s vs {legacy_row['entries_per_s']:.1f}/s ({ratio:.0f}x)",
        )
    for row in robust:
        per_entry = row["fsyncs_per_entry"]
        if per_entry <= 0:
            add(f"robust at {row['entries']:,} >= 60% of fsync ceiling", False, "no fsyncs counted")
            continue
        ceiling = raw_fsync_per_s / per_entry
        share = row["entries_per_s"] / ceiling
        add(
            f"robust at {row['entries']:,} >= 60% of raw_fsync_per_s / fsyncs_per_entry",
            share >= 0.6,
            f"{row['entries_per_s']:.0f}/s vs ceiling {ceiling:.0f}/s ({share:.0%})",
        )
    for row in robust:
        batch = _row(rows, "robust-batch", row["entries"])
        if batch is None:
            continue
        ratio = batch["entries_per_s"] / row["entries_per_s"]
        add(
            f"robust-batch >= 20x robust at {row['entries']:,}",
            ratio >= 20,
            f"{batch['entries_per_s']:.0f}/s vs {row['entries_per_s']:.0f}/s ({ratio:.1f}x)",
        )
    return targets


def print_report(raw: float, rows: list[dict], targets: list[dict]) -> None:
    print(f"raw fsync rate: {raw:,.0f} fsyncs/s (append 100 B + fsync)")
    print()
    print(f"{'impl':<13} {'entries':>8} {'entries/s':>11} {'fsyncs/entry':>13} {'us/entry':>10}")
    for row in rows:
        print(
            f"{row['impl']:<13} {row['entries']:>8,} {row['entries_per_s']:>11,.1f} "
            f"{row['fsyncs_per_entry']:>13.3f} {_us(row):>10.1f}"
        )
    print()
    for target in targets:
        verdict = "PASS" if target["pass"] else "FAIL"
        print(f"{verdict}  {target['name']}: {target['detail']}")


def _sizes(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=[1_000, 10_000, 100_000],
        help="entries for robust and robust-batch (comma-separated)",
    )
    parser.add_argument(
        "--legacy-sizes",
        type=_sizes,
        default=[1_000, 3_000],
        help="entries for legacy (comma-separated; cost is quadratic)",
    )
    parser.add_argument(
        "--impls",
        default=",".join(IMPLS),
        help=f"which of {', '.join(IMPLS)} to run (comma-separated)",
    )
    parser.add_argument(
        "--fsync-seconds", type=float, default=2.0, help="how long to measure the raw fsync rate"
    )
    parser.add_argument("--batch", type=int, default=100, help="robust-batch batch size")
    parser.add_argument("--out", default=str(REPO / "reports" / "bench-core.json"))
    parser.add_argument("--check", action="store_true", help="exit 1 if a target fails")
    bench_scale.add_arguments(parser)
    args = parser.parse_args(argv)
    args.impls = [impl.strip() for impl in args.impls.split(",") if impl.strip()]
    unknown = set(args.impls) - set(IMPLS)
    if unknown:
        parser.error(f"unknown impl(s): {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    parent = scratch_parent()
    scratch = tempfile.mkdtemp(prefix="bench-core-", dir=parent)
    plan: list[tuple[str, int]] = [
        (impl, n)
        for impl in args.impls
        for n in (args.legacy_sizes if impl == "legacy" else args.sizes)
    ]
    rows: list[dict] = []
    try:
        raw = raw_fsync_rate(scratch, args.fsync_seconds)
        print(f"scratch directory: {scratch} (same device as {REPO})", flush=True)
        for impl, n in plan:
            started = time.perf_counter()
            rows.append(run_lifecycle(impl, n, scratch, args.batch))
            took = time.perf_counter() - started
            print(f"  {impl} x {n:,}: {took:.1f} s", file=sys.stderr, flush=True)
        # Issue 15's rows, in the same scratch directory and run (their targets never fail).
        extra = bench_scale.run(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    targets = evaluate_targets(rows, raw)
    print_report(raw, rows, targets)
    bench_scale.print_report(extra, raw, rows)
    report = {
        "raw_fsync_per_s": raw,
        "rows": rows,
        "targets": targets,
        "machine": _machine(parent),
        **extra,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}")
    failed = [t for t in targets if not t["pass"]]
    return 1 if args.check and failed else 0


def _machine(parent: str) -> dict:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "scratch_parent": parent,
    }


if __name__ == "__main__":
    sys.exit(main())
