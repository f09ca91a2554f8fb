"""How bugs are searched for: hypothesis's stress search and exhaustive exploration.

Role (Hypothesis's engine on top of the runner): `strategies` draws workloads, fault plans,
schedules and whole scenarios; `stress` (with `_search` and its worker processes,
`_stressworker`) runs them through `harness.run`, shrinks what fails and saves it for
replay; `_machine` drives a target call by call against a model queue; `explore` puts one
fault at every op of a workload from one recording run (`_recording`, `_snapshot`), in
crash states (`_crashstates`), damage states (`_damagestates`) and error states
(`_forkpoint`), tallied by `_tally`.

May import: `harness.check`, `harness.faults`, `harness.intercept`, `harness.report`,
`harness.run`.
"""

# the public surface is three modules (their functions share their names, so the
# modules, not the functions, are what this package binds)
from harness.search import explore, strategies, stress

__all__ = ["explore", "strategies", "stress"]
