"""Fault injection and checking for file-backed queues: shim, faults, runner, checker, reports.

The command line is ``harness`` (``python -m harness``); see the README. The
modules follow Jepsen's roles: the client (`harness.run.client`) maps workload
steps to queue calls, the nemesis is the shim (`harness.intercept.shim`) with its fault
plan (`harness.faults`), the schedule (`harness.run.schedule`) decides who runs,
the runner (`harness.run.runner`) runs it in threads (`harness.run.threads`, the only
place with threads) or real processes (`harness.run.processes`), the history
(`harness.check.history`) records everything, the checker (`harness.check.checker`) is a
pure function of the history and the report (`harness.report`) renders it.
"""

__all__: list[str] = []
