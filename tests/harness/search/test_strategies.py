"""harness.search.strategies: what they draw is valid and replays, and QueueMachine judges."""

from __future__ import annotations

from dataclasses import fields

import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis.errors import NoSuchExample
from hypothesis.stateful import run_state_machine_as_test

from harness import faults as F
from harness.run.scenarios import Workload
from harness.search.strategies import (
    LONG_ENTRIES,
    MAX_OPS,
    QueueMachine,
    ScheduleRandom,
    fault_plans,
    scenarios,
    schedules,
    workloads,
)

_FAST = settings(max_examples=40, deadline=None, database=None,
                 suppress_health_check=list(HealthCheck))


@_FAST
@given(plan=fault_plans())
def test_fault_plans_are_valid_and_their_repr_replays(plan):
    assert 1 <= len(plan.faults) <= 3
    assert sum(isinstance(f, F.ConcurrentProcessors) for f in plan.faults) <= 1
    assert eval(repr(plan), vars(F)) == plan  # noqa: S307 - the repr is the replay


@_FAST
@given(wl=workloads(max_entries=4, max_processors=2), sc=scenarios(kinds=("disk_full",)))
def test_workloads_and_scenarios_stay_in_bounds(wl, sc):
    assert 1 <= wl.entries <= 4 and 1 <= wl.processors <= 2
    assert sc.plan.kinds == ("disk_full",) * len(sc.plan.faults) and sc.fault == "disk_full"


@_FAST
@given(wl=workloads(max_entries=6, max_processors=3))
def test_drawn_shapes_are_valid_and_stay_in_bounds(wl):
    assert 1 <= wl.entries <= 6 and 1 <= wl.processors <= 3
    assert len(wl.roles) in (0, wl.processors) and len(wl.weights) in (0, wl.processors)
    assert set(wl.roles) != {"consumer"} and all(w >= 1 for w in wl.weights)
    assert len(wl.idle) < wl.processors or not wl.idle
    assert Workload(**{f.name: getattr(wl, f.name) for f in fields(wl)}) == wl


# derandomize: the draws come from a fixed seed, so a rare shape is found every run or never
_FIND = settings(database=None, max_examples=500, derandomize=True)


def test_shapes_are_drawn_and_shrink_away():
    assert find(workloads(), lambda w: bool(w.idle and w.roles and w.weights),
                settings=_FIND).idle
    assert find(workloads(), lambda w: w.entries >= 1, settings=_FIND) == Workload(
        entries=1, processors=1, payload_max=0, max_ops=MAX_OPS)


def test_long_workloads_idle_a_processor_across_many_entries():
    wl = find(workloads(long=True), lambda w: w.entries > 8, settings=_FIND)
    assert wl.entries == LONG_ENTRIES[0] and wl.processors >= 2 and len(wl.idle) == 1
    assert wl.payload_min >= 256
    assert not find(workloads(), lambda w: True, settings=_FIND).idle  # plain by default
    with pytest.raises(NoSuchExample):  # and bounded by max_entries unless long is asked
        find(workloads(max_entries=4), lambda w: w.entries > 4, settings=_FIND)


@_FAST
@given(schedule=schedules())
def test_a_schedule_replays_draw_for_draw(schedule):
    first = ScheduleRandom(schedule.choices)
    seen = [(first.random(), first.choice([1, 2, 3])) for _ in range(20)]
    again = ScheduleRandom.replayed(first.record)
    assert [(again.random(), again.choice([1, 2, 3])) for _ in range(20)] == seen


def test_an_empty_schedule_never_switches():
    rng = ScheduleRandom([])
    assert all(rng.random() > 0.9 for _ in range(50))


def test_faults_rejects_unknown_kinds():
    from harness.search.strategies import faults
    with pytest.raises(ValueError, match="kinds"):
        faults(("no_such_fault",))


_MACHINE = settings(max_examples=25, stateful_step_count=15, deadline=None, database=None,
                    derandomize=True, suppress_health_check=list(HealthCheck))


def test_queue_machine_passes_on_robust():
    run_state_machine_as_test(QueueMachine.for_target("robust"), settings=_MACHINE)


def test_queue_machine_finds_a_failure_on_legacy():
    # Finding is the point here; shrinking (most of the time) is stress's test's subject.
    found = settings(_MACHINE, phases=[Phase.generate], report_multiple_bugs=False)
    with pytest.raises(BaseException) as caught:  # noqa: B017 - any failed promise will do
        run_state_machine_as_test(QueueMachine.for_target("legacy"), settings=found)
    assert isinstance(caught.value, AssertionError | BaseExceptionGroup)


def test_a_replay_that_leaves_its_record_says_where_and_goes_on():
    rng = ScheduleRandom.replayed([["r", 0.0], ["c", 1], ["r", 0.0]])
    assert rng.random() == 0.0 and rng.choice("abc") == "b"
    assert rng.diverged is None
    assert rng.choice("abc") == "a"  # the record holds a random() here: not a replay now
    assert rng.diverged == 2
    assert rng.random() == 0.999  # nothing switches any more
