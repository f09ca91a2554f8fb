"""Fault injection and checking for file-backed queues: shim, faults, runner, checker, reports.

The command line is ``harness`` (``python -m harness``); see the README. The
modules follow Jepsen's roles: the client (`harness.client`) maps workload
steps to queue calls, the nemesis is the shim (`harness.shim`) with its fault
plan (`harness.faults`), the schedule (`harness.schedule`) decides who runs,
the runner (`harness.runner`) runs it in threads (`harness.threads`, the only
place with threads) or real processes (`harness.processes`), the history
(`harness.history`) records everything, the checker (`harness.checker`) is a
pure function of the history and the report (`harness.report`) renders it.
"""

__all__: list[str] = []
