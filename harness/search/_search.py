"""One hypothesis search of ``harness stress``: draw, run, judge, shrink, keep what fails.

`search` runs one job (a target, a mix of fault kinds, a seed, a number of examples)
in the calling process and returns its JSON-ready result; `harness.search._stressworker` runs
it in a worker process, and `harness.search.stress` merges the workers' results. Each example
is a scenario drawn by `harness.search.strategies.scenarios` and an interleaving (the baton's
draws, from `strategies.schedules`), run by the thread-mode runner and judged by the
checker. Each headline symptom is a bug of its own to hypothesis and is shrunk apart.

``emit(runs, bugs)`` is told after every run (progress); an interrupt (SIGINT, SIGTERM:
`KeyboardInterrupt`) ends the search early with what it found so far, each bug as the
smallest failing run seen yet. The figures are true to what hypothesis did: examples it
tried (its reuse and generate phases, from its own statistics) apart from the runs spent
shrinking.
"""

from __future__ import annotations

import hashlib
import json
import signal
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hseed
from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase

from harness.check.history import DRAIN, FsOp, Op
from harness.run.runner import run_scenario
from harness.run.scenarios import Scenario
from harness.run.targets import resolve
from harness.search import strategies

__all__ = ["DEFAULT_DATABASE", "HEADLINE", "open_database", "search", "settings_for",
           "describe"]

DEFAULT_DATABASE = ".hypothesis/examples"

HEADLINE = ("silent_error", "corrupt", "phantom", "duplicate", "stuck", "lost")
"""A run's headline symptom, most telling first: a swallowed error says more than the
loss it caused, a duplicate more than a loss (every race loses something too)."""


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


# Every phase but `explain`: it re-runs each shrunk failure under sys.settrace to name
# the lines only failing runs reach, a note this command never prints (each bug is shown
# as its program); it cost seconds per bug, and minutes once a thread-mode run had left
# a processor blocked in a system call in the worker.
PHASES = tuple(p for p in Phase if p is not Phase.explain)


def settings_for(examples: int, database: ExampleDatabase) -> settings:
    # quiet: the command prints each bug as a program; hypothesis's own report of the
    # falsifying example would repeat it in a form no reader here needs
    return settings(parent=settings.get_profile("default"), max_examples=examples,
                    derandomize=False, database=database, deadline=None,
                    phases=PHASES, print_blob=False, report_multiple_bugs=True,
                    suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet)


def describe(s: settings) -> str:
    return (f"max_examples={s.max_examples}, derandomize={s.derandomize}, "
            f"deadline={s.deadline}, database={s.database!r}, phases=all but explain, "
            "health checks suppressed (runs are slow by design), profile=none (explicit)")


_BUGS: dict[str, type[AssertionError]] = {}


def _signature(run: Any) -> str:
    """The bug a failing run shows, as hypothesis should tell bugs apart: its headline
    violation kind. Finer (which files, which errno) made dozens of "bugs" of one cause
    and minutes of shrinking each; coarser let an easy lost entry hide every other kind."""
    kinds = {v.kind for v in run.result.violations}
    return next((k for k in HEADLINE if k in kinds), "+".join(sorted(kinds)) or "fail")


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
            "workload_processors": sc.workload.processors,
            "entries": sc.workload.entries, "ops": _queue_calls(run.history),
            "faults": [repr(f) for f in sc.plan.faults], "program": _program(sc, run),
            "violations": [v.to_dict() for v in run.result.violations],
            "replay": f"harness stress --target {target} --replay {path}"}


def _size(found: dict) -> tuple:
    sc = found["scenario"]
    return (max(sc.workload.processors, sc.plan.processors), sc.workload.entries,
            len(sc.plan.faults), _queue_calls(found["run"].history))


def _examples(stats: dict) -> tuple[int | None, int | None, str | None]:
    """(examples tried, runs spent shrinking (the test cases that ran: an invalid draw or an
    overrun never reaches a run), why it stopped) from hypothesis's statistics;
    Nones when it gave none (an interrupted search)."""
    if not stats:
        return None, None, None

    def count(phase: str) -> int:
        cases = stats.get(f"{phase}-phase", {}).get("test-cases", [])
        return sum(1 for c in cases if c.get("status") in ("valid", "interesting"))

    return (count("reuse") + count("generate"), count("shrink"),
            stats.get("stopped-because"))


def search(job: dict[str, Any], emit: Callable[[int, list[str]], None] | None = None
           ) -> dict[str, Any]:
    """One job: ``target``, ``examples``, ``seed``, ``database``, ``report_dir``,
    ``kinds`` -> its result (found, examples, runs, counterexamples, interrupted...)."""
    target, kinds, report_dir = job["target"], tuple(job["kinds"]), job["report_dir"]
    factory = resolve(target)
    database = _Keyed(open_database(job["database"]),
                      f"harness-stress:{target}:{'+'.join(kinds)}:".encode())
    chosen = settings_for(job["examples"], database)
    found: dict[str, dict[str, Any]] = {}  # the last failing run of each bug
    smallest: dict[str, dict[str, Any]] = {}  # and its smallest one seen yet
    runs = [0]

    # @seed turns the database off in the settings it finds, so the settings come after
    # it: the seed splits the search between workers and shards, the database is shared.
    @chosen
    @hseed(job["seed"])
    @given(scenario=strategies.scenarios(kinds=kinds, long=True),
           schedule=strategies.schedules())
    def body(scenario: Scenario, schedule: strategies.ScheduleRandom) -> None:
        runs[0] += 1
        script = strategies.ScheduleRandom(schedule.choices)  # fresh: hypothesis may rerun
        run = run_scenario(target, scenario, seed=scenario.seed, factory=factory,
                           schedule_rng=script)
        failed = run.status == "fail"
        if failed:
            # hypothesis replays each bug's shrunk example last: what is kept is the smallest
            sig = _signature(run)
            found[sig] = {"scenario": scenario, "run": run, "record": script.record}
            if sig not in smallest or _size(found[sig]) < _size(smallest[sig]):
                smallest[sig] = found[sig]
        if emit is not None:
            emit(runs[0], sorted(found))
        if failed:
            raise _bug(sig)(f"{len(run.result.violations)} violations {sig}")

    from hypothesis.statistics import collector  # what its pytest plugin reads too

    stats: dict[str, Any] = {}
    interrupted = None
    try:
        with collector.with_value(stats.update):
            body()
    except (AssertionError, ExceptionGroup):  # one bug, or several shrunk apart
        pass
    except KeyboardInterrupt as exc:  # harness.run.reaper.Interrupted too (SIGTERM)
        interrupted = getattr(exc, "signum", signal.SIGINT)
        found = smallest  # hypothesis stopped mid-shrink: the smallest seen is the best
    examples, shrinking, stopped = _examples(stats)
    return {"found": bool(found), "examples": examples, "asked": job["examples"],
            "runs": runs[0], "shrink_runs": shrinking, "stopped_because": stopped,
            "seed": job["seed"], "kinds": list(kinds), "settings": describe(chosen),
            "interrupted": interrupted,
            "counterexamples": [_counterexample(target, sig, f, report_dir)
                                for sig, f in sorted(found.items())]}
