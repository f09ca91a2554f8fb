"""The runner: the one place with threads; runs a scenario against a target and checks it.

One run, in order:

1. a fresh sandbox directory; the queue lives at ``<sandbox>/q`` (not created:
   the target creates it);
2. the shim installed with the scenario's armed plan, the durability model
   and the baton; one thread per processor runs its seeded program through a
   `Client`; crashes restart processors as the client describes;
3. every fault healed, every processor closed, then the final drain as
   process ``DRAIN``: open, ``recover()``, claim + ack until the queue is
   empty, ``states()``;
4. the checker's verdict on the history; observations (failed file calls,
   files left behind) for people; the sandbox removed, whatever happened.

All randomness derives from the scenario's seed through named streams, so one
stream's consumption never shifts another's: the same seed gives the same
history.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import _causes, _damage, _hung, checker, timeline
from harness._observe import (  # noqa: F401 - re-exported: their old home
    LogCapture,
    leftovers,
    log_summary,
    observe_fs,
    retention,
    with_blocked,
)
from harness._outcome import harness_error, never_ran, own_fired, refused_open, unfired
from harness._reaper import deferred, interruptible, make_sandbox, remove_sandbox
from harness._words import count
from harness.client import Client, DrainProblem
from harness.durability import DurabilityModel
from harness.history import DRAIN, History
from harness.promises import PromiseError, Promises, outside, promises_of
from harness.scenarios import builtin_dir
from harness.schedule import Baton, OpBudgetExceeded, workload_programs
from harness.shim import DeadlockError, RunStopped, installed
from harness.targets import TargetError, resolve

__all__ = ["ScenarioRun", "run_scenario", "run_scenario_runs", "run_suite", "replay_command",
           "JOIN_TIMEOUT_S", "LogCapture", "observe_fs", "retention", "with_blocked", "log_summary"]

JOIN_TIMEOUT_S = _hung.DEFAULT_TIMEOUT_S
"""The run's timeout when neither ``--timeout`` nor the scenario gives one (`harness._hung`)."""

QUEUE_DIR = "q"


def replay_command(target: str, scenario: str, seed: int) -> str:
    return f"harness run --target {target} --scenario {scenario} --seed {seed}"


def scenario_arg(scenario: Any) -> str:
    """How ``--scenario`` names it in a replay: its name for a shipped one (with its
    folder for ``windows/`` and ``long/``), else its file's path (a user's own file)."""
    source = getattr(scenario, "source", "")
    if not source:
        return scenario.name
    path = Path(source).resolve()
    with contextlib.suppress(ValueError):
        return path.relative_to(builtin_dir().resolve()).with_suffix("").as_posix()
    with contextlib.suppress(ValueError):
        return os.path.relpath(path)
    return str(path)


def platform_of(scenario: Any, platform: str | None) -> str:
    """The platform a run emulates: the one asked for, else the scenario's own."""
    return platform or getattr(scenario, "platform", "linux")


def _platform_notes(run: ScenarioRun, refused: int, copied: int) -> None:
    """``--platform windows``: the run says so, and how often Windows said no."""
    if run.platform == "linux":
        return
    run.observations.append(
        f"platform {run.platform}: the shim applied its file semantics; it refused "
        f"{count(refused, 'call')} (not faults of the scenario: see the EACCES/EEXIST lines)"
        + (f"; shutil.move fell back to copy + delete {count(copied, 'time')}" if copied
           else ""))


def _stream(seed: int, name: str) -> random.Random:
    return random.Random(f"{seed}:{name}")


class ScenarioRun:
    """What one scenario did to one target: its history, verdict and figures."""

    def __init__(self, *, target: str, scenario: Any, seed: int) -> None:
        self.target = target
        self.scenario = scenario
        self.seed = seed
        self.history = History()
        self.result: checker.Result | None = None
        self.faults_fired = 0
        self.ops = 0
        self.observations: list[str] = []
        self.error: str | None = None
        self.unfired: list[str] = []  # faults of the plan that never fired (harness._outcome)
        self.own_fired = True  # the scenario's own fault fired (harness._outcome)
        self.promises = Promises()  # what the target declares it promises (harness.promises)
        self.processors = 1
        self.replay_diverged: int | None = None  # set by a stress replay that lost its track
        self.platform = getattr(scenario, "platform", "linux")  # the run's, if overridden
        self.platform_refusals = 0  # calls the platform refused (not faults: _windows)
        self.duration_s = 0.0

    @property
    def status(self) -> str:
        if self.error is not None:
            return "error"
        if self.result is not None and self.graded()[0]:
            return "fail"
        if self.faults_fired == 0 or not self.own_fired:
            return "no_fault_fired"
        return "pass"

    def adopt_promises(self, factory: Any) -> bool:
        """Take the target's declared promises; False (and an error) if they are unreadable."""
        try:
            self.promises = promises_of(factory)
        except PromiseError as exc:
            self.error = f"target={self.target!r}: {exc}"
            return False
        return True

    def count_firings(self, armed: Any, switches: int) -> None:
        """Which faults of the plan never fired, and whether the scenario's own did."""
        faults, counts = self.scenario.plan.faults, armed.fired_counts()
        self.unfired = unfired(faults, counts, switches)
        self.own_fired = own_fired(self.scenario.fault, faults, counts, switches)

    def graded(self) -> tuple[list[dict], list[dict]]:
        """The violations within the target's promises, and those outside them (each with
        ``outside``: why)."""
        within: list[dict] = []
        beyond: list[dict] = []
        for v in self.result.violations if self.result is not None else ():
            d = v.to_dict()
            why = outside(self.promises, self.processors, d)
            if why is None:
                within.append(d)
            else:
                beyond.append({**d, "outside": why})
        return within, beyond

    def to_dict(self) -> dict[str, Any]:
        sc = self.scenario
        result = self.result
        within, beyond = self.graded()
        errors = _causes.target_errors(self.history)
        causes = _causes.group([v for v in result.violations if outside(  # its promises'
            self.promises, self.processors, v.to_dict()) is None] if result else (), errors,
            self.processors)
        return {
            "name": sc.name,
            "description": sc.description,
            "fault": sc.fault,
            "faults": [repr(f) for f in sc.plan.faults],
            "faults_fired": self.faults_fired,
            "unfired": list(self.unfired),
            "ops": self.ops,
            "history_ops": len(self.history),  # what "op N" in a detail counts
            "entries": sc.workload.entries,
            "seed": self.seed,
            "status": self.status,
            "violations": within,
            **({"causes": causes} if causes else {}),
            **({"target_errors": errors} if errors else {}),
            **({"error": self.error} if self.error else {}),
            **({"outside_promises": beyond} if beyond else {}),
            **({"promises": self.promises.to_dict()} if not self.promises.whole_contract
               else {}),
            "counts": dict(result.counts) if result else {},
            "observations": list(self.observations) + ([self.error] if self.error else []),
            "replay": self.replay(),
            **({"platform": self.platform, "platform_refusals": self.platform_refusals}
               if self.platform != "linux" else {}),
            "duration_s": round(self.duration_s, 3),
            # Only a scenario that did not pass has a story worth drawing (the HTML report).
            **({"timeline": timeline.compact(self.history)}
               if self.status != "pass" and len(self.history) else {}),
        }


    def platform_flag(self) -> str:
        """`` --platform X`` when the run overrode its scenario's platform, else ``""``."""
        same = self.platform == getattr(self.scenario, "platform", "linux")
        return "" if same else f" --platform {self.platform}"

    def replay(self) -> str:
        """The command that runs this again."""
        return replay_command(self.target, scenario_arg(self.scenario), self.seed) + (
            self.platform_flag())


def drain_queue(client: Client, history: History | None = None, bound: int = 0) -> str | None:
    """The final drain (open, recover, claim + ack until empty, states) for callers of their
    own; see `Client.drain`. ``history`` is the client's own (kept for callers' symmetry)."""
    return client.drain(bound)


def run_scenario(target: str, scenario: Any, *, seed: int | None = None,
                 factory: Callable[[str], Any] | None = None,
                 schedule_rng: random.Random | None = None,
                 mode: str | None = None, platform: str | None = None,
                 timeout: float | None = None) -> ScenarioRun:
    """Run one scenario against one target; never raises for target misbehaviour.

    ``schedule_rng`` replaces the seeded stream the baton draws its interleaving from
    (hypothesis passes one it controls, so a race shrinks to its smallest interleaving).
    ``mode`` (default: the scenario's own) is ``"thread"`` or ``"process"``; process
    mode runs in `harness.processes` (real processes: no baton, no schedule_rng).
    ``platform`` (default: the scenario's own) is ``"linux"`` or ``"windows"``.
    ``timeout`` (default: the scenario's own, else `JOIN_TIMEOUT_S`): seconds the
    workload, and again the final drain, may take (`harness._hung`).
    """
    timeout = timeout or getattr(scenario, "timeout", None) or JOIN_TIMEOUT_S
    if (mode or getattr(scenario, "mode", "thread")) == "process":
        from harness import processes  # it builds on this module

        return processes.run_scenario(target, scenario, seed=seed, factory=factory,
                                      timeout=timeout,
                                      **({"platform": platform} if platform else {}))
    seed = scenario.seed if seed is None else seed
    run = ScenarioRun(target=target, scenario=scenario, seed=seed)
    run.platform = platform_of(scenario, platform)
    factory = factory or resolve(target)
    wl = scenario.workload
    concurrency = scenario.plan.concurrency
    nproc = max(wl.processors, concurrency.processors if concurrency else 1)
    run.processors = nproc
    if not run.adopt_promises(factory):
        return run
    progs = workload_programs(wl, nproc, _stream(seed, "workload"))
    baton = Baton(schedule_rng or _stream(seed, "schedule"), list(range(nproc)),
                  mid_call=concurrency.switch_probability if concurrency else 0.0,
                  max_ops=wl.max_ops)
    armed = scenario.plan.arm(_stream(seed, "faults"))
    sandbox = make_sandbox()
    queue_dir = os.path.join(sandbox, QUEUE_DIR)
    started = time.perf_counter()
    logs = LogCapture()
    root_logger = logging.getLogger()
    root_logger.addHandler(logs)
    errors: list[str] = []
    blocked: list[tuple[str, str]] = []  # (who, why) could never finish
    model: DurabilityModel | None = None
    try:
        # SIGTERM as well as SIGINT unwinds through here: the sandbox goes in `finally`.
        with interruptible(), installed(sandbox=sandbox, history=run.history, plan=armed,
                                        rng=_stream(seed, "disk"), scheduler=baton,
                                        platform=run.platform) as shim:
            model = DurabilityModel(sandbox, shim.real)
            model.snapshot_all()
            shim.model = model

            def processor_main(p: int) -> None:
                client = Client(process=p, factory=factory, target=target,
                                directory=queue_dir, history=run.history, shim=shim, baton=baton)
                baton.enter(p)
                try:
                    with shim.processor(p):
                        client.run(progs[p])
                except DeadlockError as exc:
                    blocked.append((f"processor {p}",
                                    f"processor {p} could never finish its call: {exc}"))
                    shim.kill(p, "blocked for good")
                except OpBudgetExceeded as exc:
                    blocked.append((f"processor {p}", _hung.budget_sentence(run.history, exc)))
                    shim.kill(p, "blocked for good")
                except (_hung.Abandoned, RunStopped):
                    pass  # the run is over: its verdict is said already, or it has none
                except BaseException as exc:  # noqa: BLE001 - reported, the run goes on
                    errors.append(f"processor {p}: {type(exc).__name__}: {exc}")
                finally:
                    baton.finish(p)

            threads = [threading.Thread(target=processor_main, args=(p,), daemon=True,
                                        name=f"harness-p{p}") for p in range(nproc)]
            try:
                for t in threads:
                    with deferred():  # a thread started half is one nobody can join
                        t.start()
                deadline = time.monotonic() + timeout
                for t in threads:
                    _hung.join(t, deadline - time.monotonic())
            except BaseException:
                # Interrupted: the processors stop before the shim goes and the sandbox is
                # removed, or one would go on on the real disk and re-create it. Stopped,
                # not killed: a killed processor restarts.
                baton.stop()
                shim.stop("run interrupted")
                _hung.stop_threads(threads)
                raise
            if any(t.is_alive() for t in threads):
                hung, why = _hung.give_up(threads, baton, run.history, timeout)
                blocked += hung
                errors += why
                baton.stop()
                shim.kill_all("run abandoned: a processor hung")
            run.ops = shim.ops
            _damage.at_rest(shim, "drain")  # Corruption(before="drain"): nobody is in a call
            armed.heal()
            shim.kill_all("every processor stops before the final drain")
            if "stale_locks" in scenario.checks:
                stale = leftovers(queue_dir, ("*.lock", "*.lck", "lock"))
                run.observations.append(
                    "lock files present while no processor runs: " + (", ".join(stale) or "none"))
            drain = Client(process=DRAIN, factory=factory, target=target, directory=queue_dir,
                           history=run.history, shim=shim, baton=None)
            shim.revive(DRAIN)
            shim.drain_budget = wl.max_ops

            def drain_main() -> str | None:
                with shim.processor(DRAIN):
                    try:
                        return drain.drain(bound=4 * wl.entries + 10)
                    except OpBudgetExceeded as exc:
                        return DrainProblem(_hung.budget_sentence(run.history, exc, healed=True),
                                            kind="stuck")

            # in a thread of its own, so a drain that never returns cannot hang the harness
            problem, hung = _hung.bounded(drain_main, timeout, run.history, DRAIN,
                                          stop=shim.stop)
            problem = problem or (hung and DrainProblem(hung, kind="stuck"))
            if problem:
                # Every fault is healed: a queue that cannot be drained now never recovers.
                blocked.append(("queue", problem))
        run.faults_fired = armed.fired + (baton.mid_call_switches if concurrency else 0)
        run.count_firings(armed, baton.mid_call_switches)
        run.platform_refusals = shim.platform_refusals
        _platform_notes(run, shim.platform_refusals, shim.windows.copied if shim.windows else 0)
        run.result = with_blocked(checker.check(run.history), blocked,
                                  tuple(repr(f) for f in scenario.plan.faults))
        # not a verdict about the target: the harness broke, or nothing was exercised
        run.error = (harness_error(shim.harness_errors) or refused_open(run.history)
                     or never_ran(run.history, run.result.valid))
        run.observations[:0] = observe_fs(run.history)
        if "retention" in scenario.checks:
            run.observations.append(retention(run.history))
    except TargetError as exc:
        run.error = str(exc)
    finally:
        with deferred():  # an interrupt now waits for the cleanup
            if model is not None:
                model.close()
            root_logger.removeHandler(logs)
            remove_sandbox(sandbox)
            run.duration_s = time.perf_counter() - started
    run.observations.extend(logs.summary())
    if errors and run.error is None:
        run.error = "; ".join(errors)
    if run.unfired:
        run.observations.append("never fired: " + ", ".join(run.unfired))
    return run


def run_scenario_runs(target: str, scenario: Any, *, seed: int | None = None,
                      factory: Callable[[str], Any] | None = None,
                      mode: str | None = None, platform: str | None = None,
                      timeout: float | None = None) -> dict[str, Any]:
    """A scenario over its ``runs`` seeds -> one scenario dict: the worst run's verdicts,
    figures and replay (a failure first), with totals over all runs beside them."""
    base = scenario.seed if seed is None else seed
    runs = [run_scenario(target, scenario, seed=base + i, factory=factory, mode=mode,
                         timeout=timeout,
                         **({"platform": platform} if platform else {})).to_dict()
            for i in range(getattr(scenario, "runs", 1))]
    if len(runs) == 1:
        return runs[0]
    # A run in which the seed let no fault fire says nothing: the scenario passes when some
    # runs fired and none failed; it is "no fault fired" only when no run fired at all.
    order = {"error": 0, "fail": 1, "pass": 3, "no_fault_fired": 4}
    worst = min(runs, key=lambda d: order.get(d["status"], 2))
    # The figures (counts, ops, entries, faults) stay those of the run shown, so they add
    # up with its violations; the totals over every run are kept beside them.
    shown = dict(worst)
    shown["runs"] = len(runs)
    shown["seeds"] = [d["seed"] for d in runs]
    shown["faults_fired_all_runs"] = sum(d["faults_fired"] for d in runs)
    shown["ops_all_runs"] = sum(d["ops"] for d in runs)
    shown["duration_s"] = round(sum(d["duration_s"] for d in runs), 3)
    failing = [d["seed"] for d in runs if d["status"] in ("fail", "error")]
    if any(d["faults_fired"] == 0 for d in runs) and worst["faults_fired"] > 0:
        silent = [d["seed"] for d in runs if d["faults_fired"] == 0]
        shown["observations"] = [*shown["observations"],
                                 f"no fault fired with seeds {silent}"]
    if failing:
        shown["observations"] = [*shown["observations"],
                                 f"{len(failing)} of {len(runs)} runs failed (seeds "
                                 f"{', '.join(map(str, failing))}); shown: seed {worst['seed']}"]
    return shown


def run_suite(target: str, scenarios: list[Any], *, seed: int | None = None,
              progress: Callable[[str, dict], None] | None = None,
              mode: str | None = None, platform: str | None = None,
              timeout: float | None = None) -> dict[str, Any]:
    """Every scenario against one target -> the run JSON dict (see docs/harness-design.md).

    ``mode``: ``"thread"`` or ``"process"`` for every scenario (default: each its own);
    ``platform``: ``"linux"`` or ``"windows"`` for every scenario (likewise);
    ``timeout``: seconds per run for every scenario (likewise, else `JOIN_TIMEOUT_S`)."""
    factory = resolve(target)
    results = []
    for sc in scenarios:
        d = run_scenario_runs(target, sc, seed=seed, factory=factory, mode=mode,
                              platform=platform, timeout=timeout)
        results.append(d)
        if progress is not None:
            progress(sc.name, d)
    seeds = {d["seed"] for d in results}
    statuses = {d["status"] for d in results}
    return {
        "target": target,
        "seed": seed if seed is not None else (seeds.pop() if len(seeds) == 1 else None),
        "violations_total": sum(len(d["violations"]) for d in results),
        "status": "pass" if statuses <= {"pass"} else "fail",
        "scenarios": results,
    }
