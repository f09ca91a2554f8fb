"""The figures of one explored scenario, added up state by state, as `harness explore` reports them.

`harness.search.explore` tries a fault in every state of a workload; each state's verdict goes
into a `Tally`, which keeps the counts, the first violating state's replay, and at most
`DETAIL_LIMIT` violations (all violating states are counted), and turns into one
scenario of the run JSON (``to_dict``, with ``states`` and ``violating_states``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["DETAIL_LIMIT", "Tally", "entry_count", "full_violations", "violations_of"]


DETAIL_LIMIT = 50
"""Violations kept per scenario in the report (all violating states are counted)."""

class Tally:
    """One scenario's figures, added up state by state."""

    def __init__(self, name: str, fault: str, template: str, replay: str) -> None:
        self.name, self.fault, self.template, self.replay = name, fault, template, replay
        self.states = self.fired = self.violating = 0
        self.counts: dict[str, int] = {}
        self.violations: list[dict] = []
        self.observations: list[str] = []
        self.errors: list[str] = []
        self.first: str | None = None

    def add(self, label: str, at: int | None, valid: bool, counts: dict, fired: bool,
            violations: Callable[[], list[dict]], problem: str | None = None) -> None:
        self.states += 1
        self.fired += bool(fired)
        for k, v in counts.items():
            self.counts[k] = self.counts.get(k, 0) + v
        if problem and len(self.observations) < 5:
            self.observations.append(f"{label}: {problem}")
        if valid:
            return
        self.violating += 1
        if self.first is None and at is not None:
            self.first = f"{self.replay} --at {at}"
        if len(self.violations) < DETAIL_LIMIT:
            for v in violations()[:DETAIL_LIMIT - len(self.violations)]:
                self.violations.append({**v, "detail": f"[{label}] {v['detail']}"})

    def to_dict(self, *, ops: int, entries: int, seed: int, duration: float,
                extra: dict) -> dict[str, Any]:
        status = ("error" if self.errors else "fail" if self.violating else
                  "no_fault_fired" if not self.fired else "pass")
        return {"name": self.name, "description": f"{self.fault} at every op, exhaustively",
                "fault": self.fault, "faults": [self.template], "faults_fired": self.fired,
                "ops": ops, "entries": entries, "seed": seed, "status": status,
                "violations": self.violations, "counts": self.counts,
                "observations": self.observations + self.errors,
                "replay": self.first or self.replay, "duration_s": round(duration, 3),
                "states": self.states, "violating_states": self.violating, **extra}


def violations_of(result: Any) -> Callable[[], list[dict]]:
    """A checker result's violations, as dicts, once asked for."""
    return lambda: [v.to_dict() for v in result.violations]


def full_violations(ledger: Any, mark: tuple, suffix: list) -> Callable[[], list[dict]]:
    """The violations with the run's own op numbers (only computed for the report)."""
    return lambda: [v.to_dict() for v in ledger.full_check(mark, suffix).violations]


def entry_count(program: list) -> int:
    """How many entries a program enqueues."""
    return sum(1 for s in program if s.action == "enqueue")
