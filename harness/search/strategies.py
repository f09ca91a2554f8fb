"""Hypothesis strategies for the harness: workloads, fault plans, schedules, whole scenarios.

Everything is built from the harness's own classes (`Workload`, the faults of
`harness.faults`, `Plan`, `Scenario`), so whatever hypothesis draws is a scenario the
runner can run and whose ``repr`` replays it. Strategies shrink towards the small: one
entry, one processor, one fault, early triggers, no shape; `workloads` also draws shaped
workloads (roles, weights, an idle processor: `harness.run.shapes`) and long ones, where
one processor idles with its queue open across tens of the others' entries (and so
across a checkpoint or two of a journalled queue); `schedules` gives the baton a
``random.Random`` driven by choices hypothesis draws and shrinks, so a race shrinks to a short
interleaving too. `QueueMachine` (in `harness.search._machine`) drives a target step by step
against a model queue.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import strategies as st

from harness.faults import (
    DAMAGES,
    FAULT_KINDS,
    ConcurrentProcessors,
    Corruption,
    DiskFull,
    FileRemoved,
    FsyncFailure,
    KillMidWrite,
    MissingDirectory,
    PermissionDenied,
    Plan,
    PowerLoss,
)
from harness.run.scenarios import Scenario, Workload
from harness.run.shapes import ROLES
from harness.search._machine import QueueMachine

__all__ = ["workloads", "faults", "fault_plans", "schedules", "scenarios", "QueueMachine",
           "ScheduleRandom", "MAX_AT_OP", "MAX_OPS", "LONG_ENTRIES"]

MAX_AT_OP = 300
"""Latest op a drawn trigger names (small workloads make a few hundred intercepted calls)."""

MAX_OPS = 20_000
"""Op budget of a drawn workload: a processor spinning on a lock stops there, not at a timeout."""

_at = st.integers(1, MAX_AT_OP)
_heal = st.none() | st.integers(1, 80)
_write_calls = st.sampled_from([("write",), ("fsync",), ("replace",), ("open_write",),
                                ("write", "replace")])


LONG_ENTRIES = (24, 80)
"""Entries of a drawn long workload: enough for the others to write tens of KiB (two
checkpoints of the robust queue) while one processor idles, few enough for seconds a run."""


@st.composite
def _shape(draw: Any, processors: int, *, idle: bool) -> dict[str, Any]:
    """Roles, weights and an idle processor for ``processors`` processors (each may be
    absent; ``idle``: one always idles)."""
    role = st.sampled_from(("both",) + tuple(r for r in ROLES if r != "both"))
    roles = draw(st.just(()) | st.lists(role, min_size=processors, max_size=processors).map(
        lambda rs: tuple(rs) if set(rs) != {"consumer"} else ("producer", *rs[1:])))
    weights = draw(st.just(()) | st.lists(st.integers(1, 4), min_size=processors,
                                           max_size=processors).map(tuple))
    one = st.integers(0, processors - 1).map(lambda p: (p,))
    idlers = draw(one if idle else st.just(()) | one) if processors > 1 else ()
    return {"roles": roles, "weights": weights, "idle": idlers,
            "idle_after": draw(st.integers(0, 3)) if idlers else 1,
            "idle_for": draw(st.sampled_from([0.9, 0.5, 1.0])) if idlers else 0.9}


@st.composite
def workloads(draw: Any, *, max_entries: int = 8, max_processors: int = 3,
              shapes: bool = True, long: bool = False) -> Workload:
    """Workloads of 1..max_entries entries on 1..max_processors processors, some of them
    shaped (``shapes``); with ``long``, also long ones, past ``max_entries``:
    `LONG_ENTRIES` entries on 2 or more processors, one of them idle, with payloads that
    fill a journal fast."""
    # Plain ones stay half of the draws (long ones cost a second a run, and plain ones are
    # what most bugs shrink to); shrinking goes towards the first.
    kind = draw(st.sampled_from(("plain",) * (1 + shapes) + ("shaped",) * shapes
                                + ("long",) * long))
    if kind == "long":
        processors = draw(st.integers(2, max(2, max_processors)))
        low, high = draw(st.sampled_from([(512, 2048), (256, 1024), (1024, 4096)]))
        return Workload(entries=draw(st.integers(*LONG_ENTRIES)), processors=processors,
                        payload_min=low, payload_max=high, max_ops=MAX_OPS,
                        **draw(_shape(processors, idle=True)))
    processors = draw(st.integers(1, max_processors))
    shape = draw(_shape(processors, idle=False)) if kind == "shaped" else {}
    return Workload(entries=draw(st.integers(1, max_entries)), processors=processors,
                    payload_min=0, payload_max=draw(st.sampled_from([0, 16, 64, 512])),
                    max_ops=MAX_OPS, **shape)


_BY_KIND: dict[str, st.SearchStrategy[Any]] = {
    "disk_full": st.builds(DiskFull, after_bytes=st.integers(0, 4096), at_op=_at,
                           heal_after_ops=_heal),
    "permission_denied": st.builds(
        PermissionDenied, at_op=_at, once=st.booleans(), heal_after_ops=_heal,
        calls=st.sampled_from([("open_write", "replace", "mkdir", "unlink", "listdir"),
                               ("replace",), ("open_write",), ("listdir",), ("unlink",)])),
    "missing_directory": st.builds(MissingDirectory, path=st.just("q"), at_op=_at),
    "killed_mid_write": st.builds(KillMidWrite, at_op=_at, calls=_write_calls,
                                  keep=st.none() | st.sampled_from([0, 0.5, 1.0])),
    "power_loss": st.builds(PowerLoss, at_op=_at,
                            torn=st.sampled_from([None, "prefix", "sectors", "holes"])),
    "concurrent_processors": st.builds(ConcurrentProcessors,
                                       processors=st.integers(2, 4),
                                       switch_probability=st.sampled_from([0.5, 0.1, 0.9])),
    # before="restart" only fires after a crash: the plan may draw one, or it never fires
    "corruption": st.builds(Corruption, damage=st.sampled_from(DAMAGES) | st.just(DAMAGES),
                            before=st.sampled_from(["drain", "restart"]), at_op=_at,
                            times=st.integers(1, 3)),
    "file_removed": st.builds(FileRemoved, path=st.sampled_from(["q/*lock*", "q/*tmp*", "q/*"]),
                              at_op=_at, times=st.integers(1, 3),
                              calls=st.none() | st.sampled_from([("lock",), ("open",),
                                                                 ("replace",), ("write",)])),
    # Its dropped writes show only at a later power loss, so failures spread over the
    # run (some fsyncs, every time) come first: whenever the power goes, one may be recent.
    "fsync_failure": st.builds(FsyncFailure, at_op=_at,
                               calls=st.sampled_from([("fsync",), ("fsync", "dirsync"),
                                                      ("dirsync",)]),
                               times=st.sampled_from([None, 1, 2]),
                               probability=st.sampled_from([0.3, 1.0])),
}


def faults(kinds: tuple[str, ...] = FAULT_KINDS) -> st.SearchStrategy[Any]:
    """One fault of one of ``kinds``, with its trigger."""
    unknown = [k for k in kinds if k not in _BY_KIND]
    if unknown or not kinds:
        raise ValueError(f"kinds={kinds!r}; expected a non-empty subset of {FAULT_KINDS}")
    return st.one_of(*(_BY_KIND[k] for k in kinds))


def fault_plans(*, kinds: tuple[str, ...] = FAULT_KINDS, min_faults: int = 1,
                max_faults: int = 3) -> st.SearchStrategy[Plan]:
    """Plans mixing any of ``kinds`` (at most one ConcurrentProcessors, as `Plan` requires)."""
    def valid(fs: list[Any]) -> bool:
        return sum(isinstance(f, ConcurrentProcessors) for f in fs) <= 1

    return st.lists(faults(kinds), min_size=min_faults, max_size=max_faults).filter(
        valid).map(lambda fs: Plan(faults=tuple(fs)))


class ScheduleRandom(random.Random):
    """The baton's generator, driven by a list of choices drawn (and shrunk) up front.

    Each ``random()`` takes the next choice: 0 means "do not switch" (0.999 is returned),
    anything else "switch" (0.0), and a ``choice`` right after it picks candidate
    ``(c - 1) % n``; a ``choice`` on its own takes the next choice modulo n. Past the end
    of the list nothing switches any more, so a shorter list is a simpler interleaving.
    Hypothesis's own data cannot be drawn from here: the baton runs in processor threads
    after the choices are fixed. Every answer is kept in ``record``, which ``replayed``
    plays back exactly.
    """

    def __init__(self, choices: list[int] | tuple[int, ...] = (), *,
                 record: list | None = None) -> None:
        super().__init__(0)
        self.choices, self._at, self._carry = list(choices), 0, 0
        self._replay = record
        self.record: list = []
        self.diverged: int | None = None  # the draw at which a replay stopped matching

    @classmethod
    def replayed(cls, record: list) -> ScheduleRandom:
        return cls(record=[list(r) for r in record])

    def _take(self) -> int:
        if self._at >= len(self.choices):
            return 0
        self._at += 1
        return self.choices[self._at - 1]

    def _answer(self, kind: str, value: Any) -> Any:
        if self._replay is not None:
            i = len(self.record)
            if self.diverged is None and i < len(self._replay) and self._replay[i][0] != kind:
                # The target made other calls than when this was recorded (its code
                # changed, or it is not deterministic): what follows is no replay.
                self.diverged = i
            if self.diverged is None and i < len(self._replay):
                value = self._replay[i][1]
            else:
                value = 0.999 if kind == "r" else 0
        self.record.append([kind, value])
        return value

    def random(self) -> float:
        c = self._take() if self._replay is None else 0
        self._carry = c
        return self._answer("r", 0.0 if c else 0.999)

    def choice(self, seq):  # noqa: ANN001 - random.Random's signature
        if self._replay is None:
            c, self._carry = (self._carry - 1, 0) if self._carry else (self._take(), 0)
            index = c % len(seq)
        else:
            index = 0
        return seq[self._answer("c", index) % len(seq)]


def _expand(switches: list[tuple[int, int]]) -> ScheduleRandom:
    choices: list[int] = []
    for gap, to in switches:
        choices += [0] * gap + [to + 1]
    return ScheduleRandom(choices)


def schedules(*, max_switches: int = 40, max_gap: int = 30) -> st.SearchStrategy[ScheduleRandom]:
    """Interleavings for the baton: choices hypothesis draws and shrinks (see ScheduleRandom).

    Drawn sparse, as up to ``max_switches`` switches, each after a gap of up to ``max_gap``
    turns that keep running, then expanded into the baton's choices: the shrinker removes
    whole switches and shortens gaps, so a race shrinks to its fewest switches, and a few
    dozen draws stand for hundreds of turns (a dense list of one draw per turn made
    hypothesis's own bookkeeping most of the cost of an example).
    """
    switch = st.tuples(st.integers(0, max_gap), st.integers(0, 2))
    return st.lists(switch, max_size=max_switches).map(_expand)


@st.composite
def scenarios(draw: Any, *, kinds: tuple[str, ...] = FAULT_KINDS, max_entries: int = 8,
              max_processors: int = 3, max_faults: int = 3, shapes: bool = True,
              long: bool = False) -> Scenario:
    """A whole scenario: workload + plan + seed, named after what it holds (``shapes`` and
    ``long`` as in `workloads`; ``harness stress`` draws long ones too)."""
    workload = draw(workloads(max_entries=max_entries, max_processors=max_processors,
                              shapes=shapes, long=long))
    plan = draw(fault_plans(kinds=kinds, max_faults=max_faults))
    seed = draw(st.integers(0, 1 << 16))
    return Scenario(name="stress", description="drawn by hypothesis",
                    fault=plan.faults[0].kind, plan=plan, workload=workload, seed=seed)
