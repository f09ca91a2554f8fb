"""``harness stress``: hypothesis searches scenarios, shrinks what fails, and keeps it.

Each example is a scenario drawn by `harness.strategies.scenarios` (workload + fault
plan + seed) and an interleaving (the baton's draws, from `strategies.schedules`), run
by the thread-mode runner and judged by the checker. A run with violations fails the
example; hypothesis then shrinks it (fewer entries, processors, faults, ops; fewer
switches) and the smallest is printed as a program with the one replay command. Each
headline symptom (silent_error, corrupt, phantom, duplicate, stuck, lost) is a bug of its
own to hypothesis and is shrunk apart, so one easy failure cannot hide the others.
The replay file (``reports/stress-<target>-<id>.json``) holds the scenario and every
draw the baton made, so ``harness stress --replay FILE`` runs it again exactly.

Failures go to an example database (a directory, default ``.hypothesis/examples``, or
``redis://HOST:PORT`` through hypothesis's `RedisExampleDatabase`) and are replayed
first on the next run, by anyone sharing it. ``-j N`` runs N worker processes and
``--shard I/N`` a deterministic slice of the seeds; all share the database. Settings
are chosen here, never from a profile (``CI=true`` selects hypothesis's ``ci`` profile:
derandomized, no database), and printed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import multiprocessing
import random
from dataclasses import fields
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hseed
from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase

from harness import strategies
from harness.cli import at_least
from harness.faults import FAULT_KINDS, Plan, fault_from_spec
from harness.history import DRAIN, FsOp, Op
from harness.runner import run_scenario
from harness.scenarios import Scenario, Workload
from harness.targets import resolve

__all__ = ["add_arguments", "main", "stress", "replay", "open_database", "shard_seeds"]

DEFAULT_DATABASE = ".hypothesis/examples"


class _Keyed(ExampleDatabase):
    """A database seen through a key prefix, so each target keeps its own examples."""

    def __init__(self, inner: ExampleDatabase, prefix: bytes) -> None:
        super().__init__()
        self.inner, self.prefix = inner, prefix

    def save(self, key: bytes, value: bytes) -> None:
        self.inner.save(self.prefix + key, value)

    def fetch(self, key: bytes):  # noqa: ANN201 - hypothesis's signature
        return self.inner.fetch(self.prefix + key)

    def delete(self, key: bytes, value: bytes) -> None:
        self.inner.delete(self.prefix + key, value)

    def move(self, src: bytes, dest: bytes, value: bytes) -> None:
        self.inner.move(self.prefix + src, self.prefix + dest, value)

    def __repr__(self) -> str:
        return repr(self.inner)


def open_database(spec: str | None) -> ExampleDatabase:
    """A directory path, or ``redis://HOST:PORT`` (needs the ``redis`` package)."""
    spec = spec or DEFAULT_DATABASE
    if spec.startswith("redis://"):
        try:
            import redis
            from hypothesis.extra.redis import RedisExampleDatabase
        except ImportError as exc:
            raise ValueError(f"--database {spec}: the redis package is not installed "
                             f"({exc}); pip install redis, or use a directory") from exc
        return RedisExampleDatabase(redis.Redis.from_url(spec))
    return DirectoryBasedExampleDatabase(spec)


def shard_seeds(seed: int, shard: tuple[int, int], jobs: int) -> list[int]:
    """The hypothesis seed of each worker of one shard: a deterministic split of ``seed``."""
    index, count = shard
    return [random.Random(f"{seed}:{index}/{count}:{j}").getrandbits(62) for j in range(jobs)]


def _settings(examples: int, database: ExampleDatabase) -> settings:
    return settings(parent=settings.get_profile("default"), max_examples=examples,
                    derandomize=False, database=database, deadline=None,
                    phases=tuple(Phase), print_blob=False, report_multiple_bugs=True,
                    suppress_health_check=list(HealthCheck))


_BUGS: dict[str, type[AssertionError]] = {}

# A run's headline symptom, most telling first: a swallowed error says more than the
# loss it caused, a duplicate more than a loss (every race loses something too).
_HEADLINE = ("silent_error", "corrupt", "phantom", "duplicate", "stuck", "lost")


def _signature(run: Any) -> str:
    """The bug a failing run shows, as hypothesis should tell bugs apart: its headline
    violation kind. Finer (which files, which errno) made dozens of "bugs" of one cause
    and minutes of shrinking each; coarser let an easy lost entry hide every other kind."""
    kinds = {v.kind for v in run.result.violations}
    return next((k for k in _HEADLINE if k in kinds), "+".join(sorted(kinds)) or "fail")


def _bug(signature: str) -> type[AssertionError]:
    """One exception class per signature: hypothesis keeps and shrinks each class apart
    (its "multiple bugs"), so an easy failure cannot hide a rarer one behind it."""
    if signature not in _BUGS:
        _BUGS[signature] = type(f"Stress_{signature}", (AssertionError,),
                                {"__module__": __name__})
    return _BUGS[signature]


def _queue_calls(history: Any) -> int:
    return sum(1 for op in history.ops() if op.type == "invoke" and op.process != DRAIN
               and op.f in ("enqueue", "claim", "ack"))


def _program(scenario: Scenario, run: Any) -> str:
    """The failing run as a reader follows it: the scenario, then each queue call with
    the file errors it met (a swallowed ``ENOENT`` shows here, beside the ``ok``)."""
    wl = scenario.workload
    lines = [f"workload = {wl!r}", f"plan = {scenario.plan!r}", f"seed = {run.seed}",
             "# the client calls, in the order the baton interleaved them:"]
    pending: dict[int, Any] = {}
    met: dict[int, list[str]] = {}
    for rec in run.history.records:
        if getattr(rec, "process", DRAIN) == DRAIN:
            continue
        if isinstance(rec, FsOp):
            # a probe that finds nothing (exists(), makedirs(exist_ok)) is not an error
            probe = rec.call == "stat" or (rec.call == "mkdir" and rec.outcome == "EEXIST")
            if rec.outcome != "ok" and rec.process in pending and not probe:
                what = f"{rec.call} {rec.path}" + (f" -> {rec.path2}" if rec.path2 else "")
                seen = met.setdefault(rec.process, [])
                if f"{what}: {rec.outcome}" not in seen:
                    seen.append(f"{what}: {rec.outcome}")
            continue
        if not isinstance(rec, Op):
            continue
        if rec.type == "invoke":
            pending[rec.process] = rec
            met.pop(rec.process, None)
            continue
        inv = pending.pop(rec.process, rec)
        key = rec.key or inv.key
        what = "ok" if rec.type == "ok" else f"{rec.type}: {rec.error}"
        errors = met.pop(rec.process, [])
        inside = f"    # file errors inside: {'; '.join(errors)}" if errors else ""
        lines.append(f"p{rec.process}.{inv.f}({key or ''}) -> {what}{inside}")
    lines.append("# violations:")
    lines += [f"{v.kind} {v.entry}: {v.detail}" for v in run.result.violations[:5]]
    return "\n".join(lines)


def _spec(fault: Any) -> dict[str, Any]:
    spec = {"kind": fault.kind}
    for f in fields(fault):
        value = getattr(fault, f.name)
        spec[f.name] = list(value) if isinstance(value, tuple) else value
    return spec


def _search(target: str, examples: int, seed: int, db_spec: str | None,
            report_dir: str, kinds: tuple[str, ...] = FAULT_KINDS) -> dict[str, Any]:
    """One worker: a hypothesis search; the shrunk failure, if any, as the JSON dict."""
    factory = resolve(target)
    database = _Keyed(open_database(db_spec),
                      f"harness-stress:{target}:{'+'.join(kinds)}:".encode())
    chosen = _settings(examples, database)
    found: dict[str, dict[str, Any]] = {}
    count = [0]

    # @seed turns the database off in the settings it finds, so the settings come after
    # it: the seed splits the search between workers and shards, the database is shared.
    @chosen
    @hseed(seed)
    @given(scenario=strategies.scenarios(kinds=kinds, long=True),
           schedule=strategies.schedules())
    def body(scenario: Scenario, schedule: strategies.ScheduleRandom) -> None:
        count[0] += 1
        script = strategies.ScheduleRandom(schedule.choices)  # fresh: hypothesis may rerun
        run = run_scenario(target, scenario, seed=scenario.seed, factory=factory,
                           schedule_rng=script)
        if run.status == "fail":
            # hypothesis replays each bug's shrunk example last: what is kept is the smallest
            sig = _signature(run)
            found[sig] = {"scenario": scenario, "run": run, "record": script.record}
            raise _bug(sig)(f"{len(run.result.violations)} violations {sig}")

    try:
        body()
    except (AssertionError, ExceptionGroup):  # one bug, or several shrunk apart
        pass
    return {"found": bool(found), "examples": count[0], "seed": seed,
            "settings": _describe(chosen),
            "counterexamples": [_counterexample(target, sig, f, report_dir)
                                for sig, f in sorted(found.items())]}


def _counterexample(target: str, bug: str, found: dict, report_dir: str) -> dict[str, Any]:
    """Save one shrunk failure for replay; its figures, program and replay command."""
    sc, run = found["scenario"], found["run"]
    saved = {"target": target, "seed": run.seed, "name": sc.name,
             "workload": {f.name: getattr(sc.workload, f.name)
                          for f in fields(sc.workload)},
             "plan": [_spec(f) for f in sc.plan.faults], "schedule": found["record"]}
    blob = json.dumps(saved, sort_keys=True)
    ident = hashlib.sha256(blob.encode()).hexdigest()[:10]
    path = Path(report_dir) / f"stress-{target.replace(':', '-')}-{ident}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(blob + "\n", encoding="utf-8")
    return {"bug": bug, "processors": max(sc.workload.processors, sc.plan.processors),
            "entries": sc.workload.entries, "ops": _queue_calls(run.history),
            "faults": [repr(f) for f in sc.plan.faults], "program": _program(sc, run),
            "violations": [v.to_dict() for v in run.result.violations],
            "replay": f"harness stress --target {target} --replay {path}"}


def _describe(s: settings) -> str:
    return (f"max_examples={s.max_examples}, derandomize={s.derandomize}, "
            f"deadline={s.deadline}, database={s.database!r}, phases=all, "
            "health checks suppressed (runs are slow by design), profile=none (explicit)")


def _size(c: dict) -> tuple:
    return (c["processors"], c["entries"], len(c["faults"]), c["ops"])


def _rank(c: dict) -> tuple:
    # A race first (what a single processor cannot show), then the smallest, then the
    # most telling symptom.
    headline = _HEADLINE.index(c["bug"]) if c["bug"] in _HEADLINE else len(_HEADLINE)
    return (c["processors"] < 2, _size(c), headline)


def stress(target: str, *, examples: int = 100, seed: int = 0, jobs: int = 1,
           shard: tuple[int, int] = (1, 1), database: str | None = None,
           report_dir: str = "reports",
           kinds: tuple[str, ...] = FAULT_KINDS) -> dict[str, Any]:
    """The whole search (``jobs`` workers of shard ``shard``) -> the stress JSON dict."""
    resolve(target)
    seeds = shard_seeds(seed, shard, jobs)
    per = max(1, examples // jobs)
    # A race is searched on its own, with nothing but interleaved processors, as well as in
    # the full mix: hypothesis stops at the first failure it shrinks, and a disk or crash
    # fault gives an easier one that would hide every race.
    mixes = [kinds]
    if "concurrent_processors" in kinds and len(kinds) > 1:
        mixes = [("concurrent_processors",), kinds]
    work = [(s_, mix) for mix in mixes for s_ in seeds]
    if len(work) == 1:
        results = [_search(target, per, seeds[0], database, report_dir, kinds)]
    else:
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(min(len(work), max(jobs, 1)),
                                                    mp_context=ctx) as pool:
            results = list(pool.map(_search, [target] * len(work), [per] * len(work),
                                    [w[0] for w in work], [database] * len(work),
                                    [report_dir] * len(work), [w[1] for w in work]))
    # The race first when there is one: it is the finding a single processor cannot show.
    # One per symptom, alone or in a race: workers and mixes that found the same keep the
    # smallest (the rest add nothing a reader needs).
    best: dict[tuple, dict] = {}
    for c in sorted((c for r in results for c in r["counterexamples"]), key=_rank):
        best.setdefault((c["bug"], c["processors"] >= 2), c)
    found = list(best.values())
    return {"target": target, "found": bool(found),
            "examples": sum(r["examples"] for r in results),
            "seed": seed, "shard": f"{shard[0]}/{shard[1]}", "jobs": jobs,
            "worker_seeds": seeds, "settings": results[0]["settings"],
            "counterexample": found[0] if found else None,
            "replay": found[0]["replay"] if found else None, "counterexamples": found}


def replay(path: str) -> Any:
    """Run a saved counterexample again, drawing for draw -> the `ScenarioRun`."""
    saved = json.loads(Path(path).read_text(encoding="utf-8"))
    plan = Plan(tuple(fault_from_spec(s) for s in saved["plan"]))
    scenario = Scenario(name=saved.get("name", "stress"), description="a saved counterexample",
                        fault=plan.faults[0].kind, plan=plan,
                        workload=Workload(**saved["workload"]), seed=saved["seed"])
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
    p.add_argument("--target", default="robust", help="robust, legacy, ... or MODULE:CALLABLE")
    p.add_argument("--examples", type=at_least(1), default=100,
                   help="examples to try (split over -j workers; default 100)")
    p.add_argument("--seed", type=at_least(0), default=0, help="search seed (default 0)")
    p.add_argument("--json", metavar="PATH", help="write the JSON result here")
    p.add_argument("-j", "--jobs", type=at_least(1), default=1, help="worker processes")
    p.add_argument("--database", metavar="DIR|redis://HOST:PORT",
                   help=f"example database shared by workers and shards "
                        f"(default {DEFAULT_DATABASE})")
    p.add_argument("--shard", type=_shard, default=(1, 1), metavar="I/N",
                   help="run shard I of N (seeds split deterministically; default: 1/1)")
    p.add_argument("--faults", type=_kinds, default=FAULT_KINDS, metavar="KIND[,KIND]",
                   help="fault kinds plans may mix (default: all)")
    p.add_argument("--replay", metavar="FILE", help="run a saved counterexample again")
    p.add_argument("--report-dir", default="reports", help="where counterexamples are saved")


def main(args: argparse.Namespace) -> int:
    """``harness stress``: 0 nothing found, 1 a counterexample (or a replay that fails)."""
    if args.replay:
        run = replay(args.replay)
        bad = run.result is not None and not run.result.valid
        print(f"replay {args.replay}: {run.status}, "
              f"{len(run.result.violations) if run.result else 0} violations")
        if run.replay_diverged is not None:
            print(f"    warning: the run left the recorded interleaving at draw "
                  f"{run.replay_diverged}: the target made other file calls than when it was "
                  "recorded (changed code, or randomness of its own), so this is not an "
                  "exact replay")
        for v in (run.result.violations if run.result else ())[:10]:
            print(f"    {v.kind} {v.entry}: {v.detail}")
        return 1 if bad else 0
    try:
        out = stress(args.target, examples=args.examples, seed=args.seed, jobs=args.jobs,
                     shard=args.shard, database=args.database, report_dir=args.report_dir,
                     kinds=args.faults)
    except ValueError as exc:
        print(f"harness: error: {exc}")
        return 2
    print(f"hypothesis settings: {out['settings']}")
    print(f"stress {args.target} with {', '.join(args.faults)}: shard {out['shard']}, "
          f"{out['jobs']} workers "
          f"(seeds {', '.join(map(str, out['worker_seeds']))}), {out['examples']} examples")
    for c in out["counterexamples"]:
        print(f"FOUND {c['bug']}, shrunk to {c['processors']} processors, "
              f"{c['entries']} entries, {len(c['faults'])} faults, {c['ops']} queue calls:")
        print("    " + c["program"].replace("\n", "\n    "))
        print(f"replay: {c['replay']}")
    if not out["found"]:
        print("nothing found")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2, default=str) + "\n",
                                   encoding="utf-8")
    return 1 if out["found"] else 0
