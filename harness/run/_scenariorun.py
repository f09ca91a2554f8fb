"""One scenario run's record, `ScenarioRun`, and what the thread and process backends share.

The runner (`harness.run.runner`) dispatches a run to one of two backends side by side:
thread mode (`harness.run.threads`: threads of this process, under the seeded baton) and
process mode (`harness.run.processes`: real forked processes). Both build a `ScenarioRun`
and draw from the same named seed streams (`stream`), so one stream's consumption never
shifts another's and the same seed gives the same workload and fault plan in either
mode. Below both backends: this module imports neither, nor the runner.
"""

from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path
from typing import Any

from harness.check import causes as _causes
from harness.check import checker
from harness.check.history import History
from harness.check.outcome import own_fired, unfired
from harness.check.promises import PromiseError, Promises, outside, promises_of
from harness.report import timeline
from harness.run import hung as _hung
from harness.run.client import Client
from harness.run.scenarios import builtin_dir

__all__ = ["JOIN_TIMEOUT_S", "QUEUE_DIR", "ScenarioRun", "drain_queue", "platform_of",
           "replay_command", "scenario_arg", "stream"]

JOIN_TIMEOUT_S = _hung.DEFAULT_TIMEOUT_S
"""The run's timeout when neither ``--timeout`` nor the scenario gives one (`harness.run.hung`)."""

QUEUE_DIR = "q"
"""The queue's directory inside the sandbox (not created: the target creates it)."""


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


def stream(seed: int, name: str) -> random.Random:
    """The run's named random stream ``name`` ("workload", "schedule", "faults", "disk"):
    each its own generator, so drawing from one never shifts another."""
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
        self.unfired: list[str] = []  # faults of the plan that never fired (harness.check.outcome)
        self.own_fired = True  # the scenario's own fault fired (harness.check.outcome)
        self.promises = Promises()  # what the target declares it promises (harness.check.promises)
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
