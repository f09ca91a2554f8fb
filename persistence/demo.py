"""A short multi-process demo: four processors share one queue, one is SIGKILLed.

Run with ``python -m persistence.demo``. Each processor enqueues its share of the
entries and drains the queue; one of them is killed with SIGKILL while it holds
claims. The survivors call ``recover()``, which hands the dead processor's claims back,
and the demo exits 0 only if every entry was delivered exactly once.

Owns the demo; may import only the package's public API (``persistence``).
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
import tempfile
import time

from . import open_queue

__all__ = ["main"]

_ENTRIES = 2000
_PROCESSES = 4


def _processor(directory: str, index: int, out: multiprocessing.Queue, victim: bool) -> None:
    delivered, requeued = [], 0
    with open_queue(directory) as queue:
        share = _ENTRIES // _PROCESSES
        for start in range(0, share, 50):
            queue.enqueue_many(
                [f"{index}:{n}".encode() for n in range(start, min(start + 50, share))]
            )
        idle = 0
        while idle < 20:
            got = queue.claim(f"p{index}")
            if got is None:
                idle += 1
                requeued += len(queue.recover().requeued)
                time.sleep(0.02)
                continue
            idle = 0
            if victim and len(delivered) == 100:
                out.put(("ready", index, delivered))
                time.sleep(60)  # holds a claim until the parent kills us
            queue.ack(got[0])
            delivered.append(got[1])
        out.put(("done", index, delivered, queue.stats()["fsyncs"], requeued))


def main() -> int:
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="queue-demo-") as tmp:
        directory = f"{tmp}/queue"
        procs = [
            ctx.Process(target=_processor, args=(directory, i, out, i == 0))
            for i in range(_PROCESSES)
        ]
        for proc in procs:
            proc.start()
        results, fsyncs, requeued = [], 0, 0
        while len(results) < _PROCESSES:
            msg = out.get(timeout=120)
            if msg[0] == "ready":
                results.append(msg[2])
                procs[0].kill()  # SIGKILL: no cleanup code runs
                procs[0].join()
                print(f"killed processor 0 (pid {procs[0].pid}) with SIGKILL, holding a claim")
            else:
                results.append(msg[2])
                fsyncs += msg[3]
                requeued += msg[4]
        for proc in procs[1:]:
            proc.join()
        with open_queue(directory) as queue:
            report = queue.recover()
            leftover = queue.claim_many("final", _ENTRIES)
            queue.ack_many([i for i, _ in leftover])
            states = queue.states()
        delivered = [p for r in results for p in r] + [p for _, p in leftover]
    unique = set(delivered)
    expected = {f"{i}:{n}".encode() for i in range(_PROCESSES) for n in range(_ENTRIES // 4)}
    print(f"entries enqueued:      {len(expected)}")
    print(f"delivered:             {len(delivered)} ({len(unique)} distinct)")
    print(f"requeued after kill:   {requeued + len(report.requeued)} claim(s) of the dead one")
    print(f"fsyncs per entry:      {fsyncs / len(expected):.2f} (survivors' own, incl. recovery)")
    lost = expected - unique
    ok = not lost and len(delivered) == len(unique) == len(expected)
    ok = ok and all(state == "DELIVERED" for state in states.values())
    print("OK: nothing lost" if ok else f"FAILED: lost={len(lost)}")
    return 0 if ok else 1


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.exit(main())
