"""What a run shows besides the verdicts: failed file calls, the target's log, leftovers.

`observe_fs` groups the failed file calls as people would grep a log for them,
`LogCapture` collects what the target logged (a swallowed error shows up there first),
`retention` counts delivered entries still stored after the drain (the incident's 93),
and `with_blocked` turns a processor that never finished, or a drain that failed once
every fault was healed, into violations. Used by both the thread and process runners.
"""

from __future__ import annotations

import collections
import dataclasses
import fnmatch
import logging
import os

from harness.check import checker
from harness.check.history import DRAIN, FsOp, History
from harness.check.words import count
from harness.faults.windows import shown

__all__ = ["LogCapture", "leftovers", "log_summary", "observe_fs", "retention",
           "with_blocked"]


def observe_fs(history: History) -> list[str]:
    """Failed file calls of the run, grouped, as people would grep a log for them."""
    failures: collections.Counter[tuple[str, str, str]] = collections.Counter()
    for r in history.records:
        if isinstance(r, FsOp) and r.outcome not in ("ok", "killed") and r.process != DRAIN:
            failures[(shown(r.outcome, r.fault), r.call, r.path or "")] += 1
    return [f"{n}x {outcome} on {call} {path}".rstrip()
            for (outcome, call, path), n in sorted(failures.items(), key=lambda kv: -kv[1])[:8]]


class LogCapture(logging.Handler):
    """Warnings and errors the target logged during a run: swallowed errors show up here."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: collections.Counter[str] = collections.Counter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed log call must not break the run
            text = str(record.msg)
        self.messages[f"{record.levelname.lower()} from {record.name}: {text[:160]}"] += 1

    def summary(self) -> list[str]:
        return log_summary(self.messages)


def log_summary(messages: collections.Counter[str]) -> list[str]:
    """The target's log lines, counted: the first place a swallowed error shows."""
    total = sum(messages.values())
    if not total:
        return []
    top = [f"{n}x {m}" for m, n in messages.most_common(3)]
    return [f"the target logged {count(total, 'warning/error')}; most frequent:", *top]


def leftovers(queue_dir: str, patterns: tuple[str, ...]) -> list[str]:
    found = []
    for dirpath, _dirs, files in os.walk(queue_dir):
        for name in files:
            if any(fnmatch.fnmatch(name, p) for p in patterns):
                found.append(os.path.relpath(os.path.join(dirpath, name), queue_dir))
    return sorted(found)


def retention(history: History) -> str:
    """How many delivered entries the target still keeps after the drain (the incident's 93)."""
    states = [op for op in history.ops() if op.process == DRAIN and op.f == "states"
              and op.type == "ok"]
    if not states:
        return "retention: the target has no states(); delivered entries not counted"
    delivered = sum(1 for s in states[-1].value.values() if s == "DELIVERED")
    return f"retention: {delivered} delivered entries still stored after the drain"


def with_blocked(result: checker.Result, blocked: list[tuple[str, str]],
                 faults: tuple[str, ...]) -> checker.Result:
    """A processor that can never finish its call, or a queue that cannot be drained once
    every fault is healed, is stuck, whatever became of the entries."""
    if not blocked:
        return result
    extra = tuple(checker.Violation(kind=getattr(why, "kind", "stuck"), entry=name, ops=(),
                                    faults=faults, detail=why, cause=why)
                  for name, why in blocked)
    counts = dict(result.counts)
    for v in extra:
        counts[v.kind] = counts.get(v.kind, 0) + 1
    return dataclasses.replace(result, valid=False, violations=result.violations + extra,
                               counts=counts)
