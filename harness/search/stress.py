"""``harness stress``: hypothesis searches scenarios, shrinks what fails, and keeps it.

Each example is a scenario drawn by `harness.search.strategies.scenarios` (workload + fault
plan + seed) and an interleaving (the baton's draws), run by the thread-mode runner and
judged by the checker (`harness.search._search`). A run with violations fails the example;
hypothesis then shrinks it (fewer entries, processors, faults, ops; fewer switches) and
the smallest is printed as a program with the one replay command. Each headline symptom
(silent_error, corrupt, phantom, duplicate, stuck, lost) is a bug of its own to
hypothesis and is shrunk apart, so one easy failure cannot hide the others. The replay
file (``reports/stress-<target>-<id>.json``) holds the scenario and every draw the baton
made, so ``harness stress --replay FILE`` runs it again exactly.

The search is split into jobs: a race alone (nothing but interleaved processors) and the
full mix, each on every seed of the shard; ``--examples N`` is split over all of them.
Jobs run in worker processes (`harness.search._stressworker`: fresh interpreters, never the
caller's ``__main__``), ``-j N`` at a time; the command shows their progress (runs, bugs
found, elapsed) and, on SIGINT or SIGTERM, asks them for what they found so far, saves
and prints it, and exits 130 or 143. No worker outlives the command, however it ends.

Failures go to an example database (a directory, default ``.hypothesis/examples``, or
``redis://HOST:PORT`` through hypothesis's `RedisExampleDatabase`) and are replayed
first on the next run, by anyone sharing it. ``--shard I/N`` runs a deterministic slice
of the seeds; all share the database. Settings are chosen here, never from a profile
(``CI=true`` selects hypothesis's ``ci`` profile: derandomized, no database), and printed.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

from harness.faults import FAULT_KINDS, Plan, fault_from_spec
from harness.report.progress import MODES, Progress
from harness.run.argtypes import at_least
from harness.run.reaper import deferred
from harness.run.runner import run_scenario
from harness.run.scenarios import Scenario, Workload
from harness.run.targets import resolve
from harness.search import strategies
from harness.search._search import DEFAULT_DATABASE, HEADLINE, describe, open_database, settings_for
from harness.search._stressworker import Workers

__all__ = ["add_arguments", "main", "stress", "replay", "open_database", "shard_seeds",
           "ReplayError", "plan_jobs"]


class ReplayError(ValueError):
    """A ``--replay`` file that is not a saved counterexample; the message says why."""


def shard_seeds(seed: int, shard: tuple[int, int], jobs: int) -> list[int]:
    """The hypothesis seed of each worker of one shard: a deterministic split of ``seed``."""
    index, count = shard
    return [random.Random(f"{seed}:{index}/{count}:{j}").getrandbits(62) for j in range(jobs)]


def _size(c: dict) -> tuple:
    return (c["processors"], c["entries"], len(c["faults"]), c["ops"])


def _rank(c: dict) -> tuple:
    # A race first (what a single processor cannot show), then the smallest, then the
    # most telling symptom.
    headline = HEADLINE.index(c["bug"]) if c["bug"] in HEADLINE else len(HEADLINE)
    return (c["processors"] < 2, _size(c), headline)


def plan_jobs(target: str, *, examples: int, seed: int, jobs: int, shard: tuple[int, int],
              database: str | None, report_dir: str, kinds: tuple[str, ...]) -> list[dict]:
    """The searches: each mix on each worker seed, ``examples`` split over all of them."""
    seeds = shard_seeds(seed, shard, jobs)
    # A race is searched on its own, with nothing but interleaved processors, as well as in
    # the full mix: hypothesis stops at the first failure it shrinks, and a disk or crash
    # fault gives an easier one that would hide every race.
    mixes = [kinds]
    if "concurrent_processors" in kinds and len(kinds) > 1:
        mixes = [("concurrent_processors",), kinds]
    work = [(s_, mix) for mix in mixes for s_ in seeds]
    split = [examples // len(work) + (i < examples % len(work)) for i in range(len(work))]
    return [{"target": target, "examples": n, "seed": s_, "database": database,
             "report_dir": report_dir, "kinds": list(mix)}
            for (s_, mix), n in zip(work, split, strict=True) if n > 0]


def _total(results: list[dict], key: str) -> int | None:
    values = [r.get(key) for r in results]
    return None if not values or None in values else sum(values)


def stress(target: str, *, examples: int = 100, seed: int = 0, jobs: int = 1,
           shard: tuple[int, int] = (1, 1), database: str | None = None,
           report_dir: str = "reports", kinds: tuple[str, ...] = FAULT_KINDS,
           progress: Any = None) -> dict[str, Any]:
    """The whole search (its jobs on ``jobs`` worker processes) -> the stress JSON dict.

    ``progress(runs, bugs)`` is called about once a second. An interrupt (SIGINT, SIGTERM)
    stops the workers, keeps what they found so far and returns it (``interrupted``)."""
    resolve(target)
    open_database(database)  # a missing redis package is a usage error, before any work
    started = time.monotonic()
    planned = plan_jobs(target, examples=examples, seed=seed, jobs=jobs, shard=shard,
                        database=database, report_dir=report_dir, kinds=kinds)
    workers: Workers | None = None

    def tick() -> None:
        if progress is not None and workers is not None:
            seen = workers.progress.values()
            progress(sum(r for r, _ in seen), sorted({b for _, bs in seen for b in bs}))

    interrupted = None
    try:
        with deferred():  # an interrupt waits until every worker started is known
            workers = Workers(planned, jobs)
        workers.run(tick)
    except KeyboardInterrupt as exc:  # harness.run.reaper.Interrupted too
        if workers is None:
            raise
        interrupted = getattr(exc, "signum", signal.SIGINT)
        workers.stop()
    finally:
        if workers is not None:
            workers.close()
    results = [workers.results[i] for i in sorted(workers.results)]
    interrupted = interrupted or next((r["interrupted"] for r in results
                                       if r["interrupted"]), None)
    # The race first when there is one: it is the finding a single processor cannot show.
    # One per symptom, alone or in a race: workers and mixes that found the same keep the
    # smallest (the rest add nothing a reader needs).
    best: dict[tuple, dict] = {}
    for c in sorted((c for r in results for c in r["counterexamples"]), key=_rank):
        best.setdefault((c["bug"], c["processors"] >= 2), c)
    found = list(best.values())
    runs = sum(r["runs"] for r in results) + sum(
        n for i, (n, _) in workers.progress.items() if i not in workers.results)
    return {"target": target, "found": bool(found),
            "examples": _total(results, "examples"), "examples_asked": examples,
            "runs": runs, "shrink_runs": _total(results, "shrink_runs"),
            "interrupted": signal.Signals(interrupted).name if interrupted else None,
            "errors": [] if interrupted else workers.failed(),
            "seed": seed, "shard": f"{shard[0]}/{shard[1]}", "jobs": jobs,
            "worker_seeds": shard_seeds(seed, shard, jobs),
            "settings": describe(settings_for(planned[0]["examples"],
                                              open_database(database))),
            "searches": [{k: r[k] for k in ("kinds", "seed", "asked", "examples", "runs",
                                            "shrink_runs", "stopped_because")}
                         for r in results],
            "duration_s": round(time.monotonic() - started, 3),
            "counterexample": found[0] if found else None,
            "replay": found[0]["replay"] if found else None, "counterexamples": found}


def _load_replay(path: str) -> dict[str, Any]:
    """The saved counterexample, checked: `ReplayError` names the file and what it lacks."""
    expected = ("expected a counterexample that 'harness stress' saved "
                "(reports/stress-<target>-<id>.json)")
    try:
        saved = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReplayError(f"--replay {path}: cannot read it ({exc.strerror or exc}); "
                          f"{expected}") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ReplayError(f"--replay {path}: not JSON ({exc}); {expected}") from None
    keys = {"target": str, "seed": int, "workload": dict, "plan": list, "schedule": list}
    wrong = [k for k, kind in keys.items()
             if not isinstance(saved, dict) or not isinstance(saved.get(k), kind)]
    if wrong or not saved["plan"]:
        what = f"missing or wrong: {', '.join(wrong)}" if wrong else "its plan is empty"
        raise ReplayError(f"--replay {path}: JSON, but not a stress counterexample ({what}); "
                          f"{expected}, with {', '.join(keys)}")
    return saved


def replay(path: str) -> Any:
    """Run a saved counterexample again, drawing for draw -> the `ScenarioRun`."""
    saved = _load_replay(path)
    try:
        plan = Plan(tuple(fault_from_spec(s) for s in saved["plan"]))
        workload = Workload(**saved["workload"])
    except (TypeError, ValueError) as exc:
        raise ReplayError(f"--replay {path}: its plan or workload is not one this harness "
                          f"can run ({exc}); was it saved by another version?") from None
    scenario = Scenario(name=saved.get("name", "stress"), description="a saved counterexample",
                        fault=plan.faults[0].kind, plan=plan, workload=workload,
                        seed=saved["seed"])
    script = strategies.ScheduleRandom.replayed(saved["schedule"])
    run = run_scenario(saved["target"], scenario, seed=saved["seed"], schedule_rng=script)
    run.replay_diverged = script.diverged
    return run


# -- the command ----------------------------------------------------------------------------


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        i = n = 0
    if not 1 <= i <= n:
        raise argparse.ArgumentTypeError(f"{text!r}: expected I/N with 1 <= I <= N, e.g. 2/4")
    return i, n


def _kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    bad = [k for k in kinds if k not in FAULT_KINDS]
    if bad or not kinds:
        raise argparse.ArgumentTypeError(f"{text!r}: expected kinds from {', '.join(FAULT_KINDS)}")
    return kinds


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("Search workloads, fault plans and interleavings with hypothesis; "
                     "shrink each failure and save it for --replay.")
    p.epilog = ("exit codes: 0 nothing found (or a replay that passes); 1 a counterexample "
                "(or a replay that fails, or a worker that died); 2 bad usage or a --replay "
                "file that is not a counterexample; 130/143 interrupted by SIGINT/SIGTERM "
                "(what was found so far is printed and saved).")
    p.add_argument("--target", default="robust",
                   help="robust, legacy, ..., MODULE:CALLABLE or exec:COMMAND "
                        "(default: robust)")
    p.add_argument("--examples", type=at_least(1), default=100,
                   help="examples to try in all, split over the searches (the race alone "
                        "and the full mix, on each of the -j seeds) (default: 100)")
    p.add_argument("--seed", type=at_least(0), default=0, help="search seed (default: 0)")
    p.add_argument("--json", metavar="PATH",
                   help="write the JSON result here (with --replay: the replayed run)")
    p.add_argument("-j", "--jobs", type=at_least(1), default=1,
                   help="worker processes (default: 1)")
    p.add_argument("--database", metavar="DIR|redis://HOST:PORT",
                   help=f"example database shared by workers and shards "
                        f"(default: {DEFAULT_DATABASE})")
    p.add_argument("--shard", type=_shard, default=(1, 1), metavar="I/N",
                   help="run shard I of N (seeds split deterministically; default: 1/1)")
    p.add_argument("--faults", type=_kinds, default=FAULT_KINDS, metavar="KIND[,KIND]",
                   help="fault kinds plans may mix (default: all)")
    p.add_argument("--replay", metavar="FILE", help="run a saved counterexample again")
    p.add_argument("--report-dir", default="reports",
                   help="where counterexamples are saved (default: reports)")
    p.add_argument("--progress", choices=MODES, default="auto",
                   help="progress on stderr: a live bar on a terminal, a line every 10 s "
                        "otherwise (default: auto)")


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else many or word + 's'}"


def _write_json(path: str | None, data: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(data, indent=2, default=str) + "\n",
                              encoding="utf-8")


def _replay(args: argparse.Namespace) -> int:
    try:
        run = replay(args.replay)
    except ReplayError as exc:
        print(f"harness stress: error: {exc}", file=sys.stderr)
        return 2
    bad = run.result is not None and not run.result.valid
    violations = run.result.violations if run.result else ()
    for v in violations[:10]:
        print(f"    {v.kind} {v.entry}: {v.detail}")
    if run.replay_diverged is not None:
        print(f"    warning: the run left the recorded interleaving at draw "
              f"{run.replay_diverged}: the target made other file calls than when it was "
              "recorded (changed code, or randomness of its own), so this is not an "
              "exact replay")
    _write_json(args.json, {**run.to_dict(), "replay_file": args.replay,
                            "replay_diverged": run.replay_diverged})
    print(f"verdict: {'FAIL' if bad else 'PASS'} replay {args.replay}: {run.status}, "
          f"{_plural(len(violations), 'violation')}")
    return 1 if bad else 0


def _found_lines(c: dict) -> list[str]:
    n, own = c["processors"], c.get("workload_processors", c["processors"])
    who = _plural(n, "processor") + (
        f" (the plan's ConcurrentProcessors runs the workload's {own} on {n})"
        if n > own else "")
    return [f"FOUND {c['bug']}, shrunk to {who}, {_plural(c['entries'], 'entry', 'entries')}, "
            f"{_plural(len(c['faults']), 'fault')}, {_plural(c['ops'], 'queue call')}:",
            "    " + c["program"].replace("\n", "\n    "), f"replay: {c['replay']}"]


def _verdict(out: dict) -> str:
    bugs = sorted({c["bug"] for c in out["counterexamples"]})
    found = (f"{_plural(len(out['counterexamples']), 'counterexample')} "
             f"({', '.join(bugs)})" if bugs else "nothing")
    tried = (f"{out['examples']} of {out['examples_asked']} examples"
             if out["examples"] is not None else f"{out['runs']} runs")
    if out["interrupted"]:
        return (f"verdict: INTERRUPTED stress {out['target']} by {out['interrupted']} after "
                f"{out['runs']} runs: {found} found so far")
    if out["errors"]:
        return f"verdict: ERROR stress {out['target']}: {'; '.join(out['errors'])}"
    shrinking = f", {out['shrink_runs']} of them shrinking" if out["shrink_runs"] else ""
    return (f"verdict: {'FAIL' if bugs else 'PASS'} stress {out['target']}: {found} found in "
            f"{tried} ({_plural(out['runs'], 'run')}{shrinking}), {out['duration_s']:.0f} s")


def main(args: argparse.Namespace) -> int:
    """``harness stress``: 0 nothing found, 1 a counterexample (or a replay that fails),
    2 bad usage, 128 + the signal when interrupted (what was found is kept)."""
    if args.replay:
        return _replay(args)
    resolve(args.target)  # an unknown target is exit 2 before anything is printed
    print(f"stress {args.target} with {', '.join(args.faults)}: {args.examples} examples, "
          f"shard {args.shard[0]}/{args.shard[1]}, {_plural(args.jobs, 'worker')}", flush=True)
    with Progress(total=None, description=f"stress {args.target}", unit="runs",
                  mode=args.progress, elapsed=True) as bar:
        def progress(runs: int, bugs: list[str]) -> None:
            bar.update(runs - bar.done, **({"bugs": len(bugs) - bar.counts.get("bugs", 0)}
                                           if len(bugs) > bar.counts.get("bugs", 0) else {}))

        try:
            out = stress(args.target, examples=args.examples, seed=args.seed,
                         jobs=args.jobs, shard=args.shard, database=args.database,
                         report_dir=args.report_dir, kinds=args.faults, progress=progress)
        except ValueError as exc:
            print(f"harness stress: error: {exc}", file=sys.stderr)
            return 2
    print(f"hypothesis settings: {out['settings']}")
    searches = out["searches"]
    print(f"{_plural(len(searches), 'search', 'searches')} (worker seeds "
          f"{', '.join(map(str, out['worker_seeds']))}): "
          + "; ".join(f"{'+'.join(r['kinds']) if len(r['kinds']) < 3 else 'all kinds'} "
                      + (f"{r['examples']} of {r['asked']} examples"
                         if r["examples"] is not None else "interrupted")
                      + f", {_plural(r['runs'], 'run')}" for r in searches))
    if out["examples"] is not None and out["examples"] < out["examples_asked"]:
        print("    fewer examples than asked: hypothesis stops generating soon after it "
              "finds a failure (to shrink it), and replays the database's first")
    for c in out["counterexamples"]:
        print("\n".join(_found_lines(c)))
    _write_json(args.json, out)
    if args.json:
        print(f"saved: {args.json}")
    print(_verdict(out))
    if out["interrupted"]:
        return 128 + signal.Signals[out["interrupted"]]
    return 1 if out["found"] or out["errors"] else 0
