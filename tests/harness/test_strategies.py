"""Tests for harness.strategies: what they draw is valid and replays, and QueueMachine judges."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.stateful import run_state_machine_as_test

from harness import faults as F
from harness.strategies import (
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
    from harness.strategies import faults
    with pytest.raises(ValueError, match="kinds"):
        faults(("no_such_fault",))


_MACHINE = settings(max_examples=25, stateful_step_count=15, deadline=None, database=None,
                    derandomize=True, suppress_health_check=list(HealthCheck))


def test_queue_machine_passes_on_robust():
    run_state_machine_as_test(QueueMachine.for_target("robust"), settings=_MACHINE)


def test_queue_machine_finds_a_failure_on_legacy():
    with pytest.raises(BaseException) as caught:  # noqa: B017 - any failed promise will do
        run_state_machine_as_test(QueueMachine.for_target("legacy"), settings=_MACHINE)
    assert isinstance(caught.value, AssertionError | BaseExceptionGroup)


def test_a_replay_that_leaves_its_record_says_where_and_goes_on():
    rng = ScheduleRandom.replayed([["r", 0.0], ["c", 1], ["r", 0.0]])
    assert rng.random() == 0.0 and rng.choice("abc") == "b"
    assert rng.diverged is None
    assert rng.choice("abc") == "a"  # the record holds a random() here: not a replay now
    assert rng.diverged == 2
    assert rng.random() == 0.999  # nothing switches any more
