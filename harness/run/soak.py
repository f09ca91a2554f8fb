"""``harness soak``: producers and consumers on real processes for a while, SIGKILLed at random.

For ``--duration`` seconds, ``--processes`` workers (even slots produce, odd slots
consume) run against one queue directory with no shim and no fault plan: the only fault
is the parent, which SIGKILLs a random worker every ``--kill-every`` seconds and starts
a fresh process in its slot. The fresh process only opens the queue: ``recover()``
promises to run with no other processor in a call, and the others are running. Then
the producers stop, the consumers stop, and the final drain (a fresh process: open,
``recover()``, claim + ack until empty, ``states()``) empties the queue; the checker
gives its verdict on every entry.

Recording stays cheap and faithful: each worker sends each record down its own pipe as
it happens (the invoke before the call, the completion after), stamped with the
system-wide monotonic clock, and the parent merges the pipes by those stamps into one
history. A write to a pipe is in the kernel once it returns, so a SIGKILL loses nothing
the worker had recorded; a call in flight at the kill gets an ``info`` completion (its
outcome is unknown), recorded by the parent at the kill. The kernel interleaves the
workers and picks when each kill lands, so a soak is not replayable step by step; the
seed fixes the victims' order and the payloads.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

from harness.check import checker
from harness.check.history import History
from harness.check.words import count
from harness.report.progress import MODES, Progress
from harness.run._soakworker import DRAIN_SLOT, record, worker
from harness.run.argtypes import at_least
from harness.run.reaper import (
    Interrupted,
    interruptible,
    make_sandbox,
    reap,
    remove_sandbox,
    spawning,
)
from harness.run.targets import resolve

__all__ = ["configure", "command", "soak", "replay_command"]

_STOP_TIMEOUT_S = 30.0
_DRAIN_TIMEOUT_S = 300.0


def replay_command(target: str, processes: int, duration: float, kill_every: float,
                   seed: int) -> str:
    return (f"harness soak --target {target} --processes {processes} --duration {duration:g} "
            f"--kill-every {kill_every:g} --seed {seed}")


class _Soak:
    """The parent of one soak: its workers, their pipes, the merged records."""

    def __init__(self, ctx: Any, target: str, factory: Any, directory: str, seed: int) -> None:
        self.ctx, self.target, self.factory, self.directory = ctx, target, factory, directory
        self.seed = seed
        self.phase = ctx.RawValue("i", 0)  # 0 run, 1 producers stop, 2 everyone stops
        self.records: list[tuple] = []  # (stamp, arrival, slot, kind, *fields)
        self.workers: dict[int, tuple[Any, Any]] = {}  # slot -> (process, reader)
        self.procs: list[Any] = []
        self.open_calls: dict[int, tuple] = {}  # slot -> (f, key, value) of its call in flight
        self.spawns = 0
        self.kills = 0
        self.restarts = 0
        self.errors: list[str] = []
        self.drain_problem: str | None = None

    def spawn(self, slot: int, role: str, bound: int = 0) -> None:
        reader, writer = self.ctx.Pipe(duplex=False)
        self.spawns += 1
        proc = self.ctx.Process(
            target=worker, name=f"harness-soak-{slot}", daemon=True,
            args=(writer, slot, role, self.spawns * 1_000_000, self.factory, self.target,
                  self.directory, self.phase, f"{self.seed}:soak:{self.spawns}", bound,
                  os.getpid()))
        with spawning():
            self.procs.append(proc)
            proc.start()
            self.workers[slot] = (proc, reader)
        writer.close()

    def pump(self, timeout: float) -> None:
        """Read what the workers sent; notice the ones that ended."""
        import multiprocess.connection

        readers = {r: slot for slot, (_p, r) in self.workers.items()}
        sentinels = {p.sentinel: slot for slot, (p, _r) in self.workers.items()}
        for ready in multiprocess.connection.wait(list(readers) + list(sentinels), timeout):
            slot = readers.get(ready, sentinels.get(ready))
            if slot not in self.workers:
                continue
            proc, reader = self.workers[slot]
            if ready is reader:
                self._read(slot, reader)
            else:
                proc.join()
                self._read(slot, reader)
                del self.workers[slot]
                if proc.exitcode != 0:
                    self.errors.append(f"worker {slot} exited with code {proc.exitcode}")
                    self._close_open_call(slot, f"worker exited (code {proc.exitcode})")

    def _read(self, slot: int, reader: Any) -> None:
        with contextlib.suppress(EOFError, OSError):
            while reader.poll():
                message = reader.recv()
                if message[1] == "problem":
                    self.drain_problem = message[2]
                    continue
                self.records.append((message[0], len(self.records), slot, *message[1:]))
                if message[1] == "op":
                    _type, f, key, value = message[2:6]
                    if _type == "invoke":
                        self.open_calls[slot] = (f, key, value)
                    else:
                        self.open_calls.pop(slot, None)

    def kill(self, slot: int, fault: str) -> None:
        proc, reader = self.workers.pop(slot)
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        self._read(slot, reader)  # everything it wrote before it died
        reader.close()
        self.kills += 1
        stamp = time.monotonic_ns()
        self.records.append((stamp, len(self.records), slot, "fault", "killed_mid_write", fault,
                             f"processor {slot} SIGKILLed by the soak's nemesis", (slot,)))
        self._close_open_call(slot, "processor killed (SIGKILL)")

    def _close_open_call(self, slot: int, why: str) -> None:
        call = self.open_calls.pop(slot, None)
        if call is not None:
            f, key, value = call
            self.records.append((time.monotonic_ns(), len(self.records), slot, "op", "info", f,
                                 key, value, why))

    def stop(self, slots: list[int]) -> None:
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        while any(s in self.workers for s in slots) and time.monotonic() < deadline:
            self.pump(0.05)
        for slot in [s for s in slots if s in self.workers]:
            self.errors.append(f"worker {slot} did not stop within {_STOP_TIMEOUT_S:.0f} s")
            self.kill(slot, "SoakStop()")

    def history(self) -> History:
        h = History()
        for rec in sorted(self.records, key=lambda r: (r[0], r[1])):
            record(h, rec[2], rec[3:])
        return h


def soak(target: str, *, processes: int, duration: float, kill_every: float, seed: int,
         factory: Any = None, progress: Any = None) -> dict[str, Any]:
    """Run one soak and return its JSON dict (the run fields plus kills, entries...)."""
    import multiprocess

    factory = factory or resolve(target)
    rng = random.Random(f"{seed}:soak:victims")
    fault = f"SoakKill(kill_every={kill_every:g})"
    roles = ["producer" if slot % 2 == 0 else "consumer" for slot in range(processes)]
    with interruptible():
        sandbox = make_sandbox("harness-soak-")
        s = _Soak(multiprocess.get_context("fork"), target, factory,
                  os.path.join(sandbox, "q"), seed)
        try:
            for slot in range(processes):
                s.spawn(slot, roles[slot])
            started = time.monotonic()
            end, next_kill = started + duration, started + kill_every
            while (now := time.monotonic()) < end:
                s.pump(max(0.0, min(next_kill, end) - now))
                if time.monotonic() >= next_kill and s.workers:
                    victim = rng.choice(sorted(s.workers))
                    s.kill(victim, fault)
                    s.spawn(victim, roles[victim])
                    s.restarts += 1
                    next_kill += kill_every
                    if progress is not None:
                        progress(s)
            ran = time.monotonic() - started
            s.phase.value = 1
            s.stop([slot for slot in range(processes) if roles[slot] == "producer"])
            s.phase.value = 2
            s.stop(list(range(processes)))
            # record layout: (stamp, arrival, slot, "op", type, f, key, ...)
            entries = len({r[6] for r in s.records
                           if r[3] == "op" and r[4] == "invoke" and r[5] == "enqueue"})
            s.spawn(DRAIN_SLOT, "drain", bound=4 * entries + 10)
            _wait_drain(s)
            history = s.history()
        finally:
            reap(s.procs)
            remove_sandbox(sandbox)
    result = checker.check(history)
    return _summary(target, seed, processes, duration, kill_every, s, result, entries, ran)


def _wait_drain(s: _Soak) -> None:
    deadline = time.monotonic() + _DRAIN_TIMEOUT_S
    while DRAIN_SLOT in s.workers and time.monotonic() < deadline:
        s.pump(0.1)
    if DRAIN_SLOT in s.workers:
        s.errors.append(f"the final drain did not finish within {_DRAIN_TIMEOUT_S:.0f} s")
        s.kill(DRAIN_SLOT, "SoakStop()")


def _summary(target: str, seed: int, processes: int, duration: float, kill_every: float,
             s: _Soak, result: checker.Result, entries: int, ran: float) -> dict[str, Any]:
    status = ("error" if s.errors else "fail" if not result.valid
              else "no_fault_fired" if s.kills == 0 else "pass")
    observations = [
        f"{processes} real processes ({(processes + 1) // 2} producers, {processes // 2} "
        f"consumers) for {ran:.1f} s; {s.kills} SIGKILLs, {s.restarts} restarts (open "
        "without recover: the others were running)",
        "the kernel interleaves the workers and times the kills: a soak is not replayed "
        "step by step by its seed (the seed fixes the victims' order and the payloads)"]
    observations += s.errors + ([s.drain_problem] if s.drain_problem else [])
    return {
        "target": target, "mode": "soak", "seed": seed, "processes": processes,
        "duration_s": round(ran, 3), "kill_every": kill_every,
        "status": status, "violations_total": len(result.violations),
        "violations": [v.to_dict() for v in result.violations],
        "counts": dict(result.counts), "observations": observations,
        "kills": s.kills, "restarts": s.restarts, "entries": entries,
        "entries_per_s": round(entries / ran, 1) if ran > 0 else 0.0,
        "replay": replay_command(target, processes, duration, kill_every, seed),
    }


# -- the command ---------------------------------------------------------------------------


def configure(parser: argparse.ArgumentParser) -> None:
    """The ``soak`` subcommand's arguments."""
    parser.add_argument("--target", default="robust",
                        help="robust, legacy, legacy-seedfix, MODULE:CALLABLE or exec:COMMAND")
    parser.add_argument("--processes", type=at_least(0, int, strict=True), default=8,
                        help="worker processes: even slots produce, odd slots consume")
    parser.add_argument("--duration", type=at_least(0, float, strict=True), default=30.0,
                        help="seconds of producing and consuming before the drain")
    parser.add_argument("--kill-every", type=at_least(0, float, strict=True), default=0.5,
                        help="seconds between two SIGKILLs of a random worker")
    parser.add_argument("--seed", type=at_least(0), default=1,
                        help="seeds the victims and the payloads (default: 1)")
    parser.add_argument("--json", metavar="PATH", help="write the JSON result here")
    parser.add_argument("--progress", choices=MODES, default="auto",
                        help="kills so far on stderr: auto is a live bar on a terminal and a "
                        "plain line every 10 s otherwise (CI logs); off shows none")


def command(args: argparse.Namespace) -> int:
    """``harness soak``: exit 0 no violation, 1 violations (or no kill, or an error)."""
    resolve(args.target)  # an unknown target is exit 2 before anything starts
    print(f"soak: {args.target}, {args.processes} processes, {args.duration:g} s, a SIGKILL "
          f"every {args.kill_every:g} s ...", flush=True)
    try:
        with Progress(total=max(1, int(args.duration / args.kill_every)), unit="kill",
                      description=f"soak {args.target}", mode=args.progress) as bar:
            run = soak(args.target, processes=args.processes, duration=args.duration,
                       kill_every=args.kill_every, seed=args.seed,
                       progress=lambda _s: bar.update(1))
    except Interrupted as exc:
        print(f"soak: {exc}; every worker reaped, the sandbox removed", file=sys.stderr)
        return 128 + exc.signum
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(run, indent=1, default=str) + "\n", encoding="utf-8")
    counts = ", ".join(f"{k} {v}" for k, v in run["counts"].items() if v)
    print(f"kills {run['kills']}, restarts {run['restarts']}, entries {run['entries']} "
          f"({run['entries_per_s']:.0f}/s); verdicts: {counts or 'none'}")
    for v in run["violations"][:10]:
        print(f"    {v['kind']} {v['entry']}: {v['detail']}")
    if run["violations_total"] > 10:
        print(f"    ... and {run['violations_total'] - 10} more" +
              (" in the JSON" if args.json else " (--json PATH keeps them all)"))
    for o in run["observations"]:
        print(f"    observed: {o}")
    print(f"verdict: {'PASS' if run['status'] == 'pass' else 'FAIL'} soak {args.target}: "
          f"{run['status']}, {count(run['violations_total'], 'violation')}")
    if run["status"] != "pass":
        print(f"replay: {run['replay']}")
    return 0 if run["status"] == "pass" else 1

