"""How a scenario runs: scenarios, targets, the client, the schedule, the runner and its
two backends (threads, real processes), soak, and the clean-up that leaves nothing behind.

Role (Jepsen's client, generator and runner): `scenarios` loads TOML into a `Scenario`
(workload + fault plan + seed); `targets` resolves ``--target`` to a factory and states
the target contract; `client` maps each workload step to a queue call and records it;
`schedule` draws each processor's program and the baton that interleaves threads;
`runner` is the one entry point (``run_scenario``, ``run_suite``) and dispatches to
`threads` (one thread per processor under the shim) or `processes` (real processes,
real kills, real kernel faults; `_parent`, `_restarts`, `_worker`); `reaper` and
`hung` make sure nothing outlives a run; `soak` runs real processes for a while.
This package holds every thread and process the harness starts.

May import: `harness.check`, `harness.faults`, `harness.intercept`, `harness.report`
(the run's timeline), and `persistence` (the built-in targets).
"""

from harness.run.runner import ScenarioRun, run_scenario, run_scenario_runs, run_suite
from harness.run.scenarios import Scenario, ScenarioError, Workload
from harness.run.targets import TargetError, resolve

__all__ = ["Scenario", "ScenarioError", "ScenarioRun", "TargetError", "Workload", "resolve",
           "run_scenario", "run_scenario_runs", "run_suite"]
