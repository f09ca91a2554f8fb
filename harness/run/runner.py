"""The runner: runs a scenario against a target and checks it, in thread or process mode.

The one entry point for a run: `run_scenario` dispatches it to one of two backends side
by side, thread mode (`harness.run.threads`: threads of this process, interleaved by the
seeded baton) or process mode (`harness.run.processes`: real forked processes, real kills);
`run_scenario_runs` runs a scenario over its seeds and `run_suite` every scenario. Both
backends return a `ScenarioRun` (`harness.run._scenariorun`), whose ``to_dict`` is the JSON
of one scenario.

All randomness derives from the scenario's seed through named streams, so one
stream's consumption never shifts another's: the same seed gives the same
history (in thread mode; process mode replays the workload and the plan).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from harness.run import processes, threads
from harness.run._observe import (  # noqa: F401 - re-exported: their old home
    LogCapture,
    leftovers,
    log_summary,
    observe_fs,
    retention,
    with_blocked,
)
from harness.run._scenariorun import (  # noqa: F401 - re-exported: their old home
    JOIN_TIMEOUT_S,
    QUEUE_DIR,
    ScenarioRun,
    drain_queue,
    platform_of,
    replay_command,
    scenario_arg,
)
from harness.run.targets import resolve

__all__ = ["ScenarioRun", "run_scenario", "run_scenario_runs", "run_suite", "replay_command",
           "JOIN_TIMEOUT_S", "LogCapture", "observe_fs", "retention", "with_blocked", "log_summary"]


def run_scenario(target: str, scenario: Any, *, seed: int | None = None,
                 factory: Callable[[str], Any] | None = None,
                 schedule_rng: random.Random | None = None,
                 mode: str | None = None, platform: str | None = None,
                 timeout: float | None = None, layer: str | None = None) -> ScenarioRun:
    """Run one scenario against one target; never raises for target misbehaviour.

    ``schedule_rng`` replaces the seeded stream the baton draws its interleaving from
    (hypothesis passes one it controls, so a race shrinks to its smallest interleaving).
    ``mode`` (default: the scenario's own) is ``"thread"`` or ``"process"``; process
    mode runs in `harness.run.processes` (real processes: no baton, no schedule_rng).
    ``platform`` (default: the scenario's own) is ``"linux"`` or ``"windows"``.
    ``timeout`` (default: the scenario's own, else `JOIN_TIMEOUT_S`): seconds the
    workload, and again the final drain, may take (`harness.run.hung`).
    ``layer`` (default: the scenario's own) is ``"shim"`` or ``"fuse"``; the FUSE layer
    runs in process mode only (`harness.run._fusemount`), so it implies it.
    """
    timeout = timeout or getattr(scenario, "timeout", None) or JOIN_TIMEOUT_S
    layer = layer or getattr(scenario, "layer", "shim")
    if layer == "fuse" and mode == "thread":
        raise ValueError("layer='fuse' runs in process mode only (its kill is a SIGKILL of "
                         "the calling process); drop mode='thread'")
    if layer == "fuse" or (mode or getattr(scenario, "mode", "thread")) == "process":
        return processes.run_scenario(target, scenario, seed=seed, factory=factory,
                                      timeout=timeout, layer=layer,
                                      **({"platform": platform} if platform else {}))
    return threads.run_scenario(target, scenario, seed=seed, factory=factory,
                                schedule_rng=schedule_rng, platform=platform, timeout=timeout)


def run_scenario_runs(target: str, scenario: Any, *, seed: int | None = None,
                      factory: Callable[[str], Any] | None = None,
                      mode: str | None = None, platform: str | None = None,
                      timeout: float | None = None, layer: str | None = None) -> dict[str, Any]:
    """A scenario over its ``runs`` seeds -> one scenario dict: the worst run's verdicts,
    figures and replay (a failure first), with totals over all runs beside them."""
    base = scenario.seed if seed is None else seed
    runs = [run_scenario(target, scenario, seed=base + i, factory=factory, mode=mode,
                         timeout=timeout, layer=layer,
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
              timeout: float | None = None, layer: str | None = None) -> dict[str, Any]:
    """Every scenario against one target -> the run JSON dict (see docs/harness-design.md).

    ``mode``: ``"thread"`` or ``"process"`` for every scenario (default: each its own);
    ``platform``: ``"linux"`` or ``"windows"`` for every scenario (likewise);
    ``timeout``: seconds per run for every scenario (likewise, else `JOIN_TIMEOUT_S`);
    ``layer``: ``"shim"`` or ``"fuse"`` for every scenario (likewise)."""
    factory = resolve(target)
    results = []
    for sc in scenarios:
        d = run_scenario_runs(target, sc, seed=seed, factory=factory, mode=mode,
                              platform=platform, timeout=timeout, layer=layer)
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
