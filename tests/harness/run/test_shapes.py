"""Workload shapes: roles, weights and idle processors in the programs, and a processor that
really stays idle, its queue open, across the others' calls and restarts in both modes."""

from __future__ import annotations

import hashlib
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.check.history import FaultEvent, Op
from harness.faults import KillMidWrite, Plan
from harness.run.runner import run_scenario
from harness.run.scenarios import Scenario, Workload
from harness.run.schedule import programs, workload_programs


def shaped(seed: int = 1, **shape):
    base = dict(entries=30, processors=3, payload_min=0, payload_max=8, hold=2)
    base.update({k: shape.pop(k) for k in list(shape) if k in base})
    return programs(rng=random.Random(seed), **base, **shape)


def calls(prog):
    return [s for s in prog if s.action != "wait"]


@given(seed=st.integers(0, 2**32), entries=st.integers(1, 40),
       roles=st.lists(st.sampled_from(["producer", "consumer", "both"]), min_size=3,
                      max_size=3).filter(lambda r: set(r) != {"consumer"}))
@settings(max_examples=60, deadline=None)
def test_roles_decide_who_enqueues_and_who_claims(seed, entries, roles):
    progs = shaped(seed, entries=entries, roles=tuple(roles))
    keys = [s.key for p in progs for s in p if s.action == "enqueue"]
    assert sorted(keys, key=lambda k: int(k[1:])) == [f"e{n}" for n in range(1, entries + 1)]
    claims = 0
    for role, prog in zip(roles, progs, strict=True):
        actions = {s.action for s in calls(prog)}
        if role == "producer":
            assert actions <= {"enqueue"}
        if role == "consumer":
            assert actions <= {"claim", "ack"}
        claims += sum(s.action == "claim" for s in prog)
    assert claims == (entries if "consumer" in roles or "both" in roles else 0)


def test_weights_give_a_share_of_the_work_and_a_pace():
    progs = shaped(entries=300, processors=2, roles=("both", "both"), weights=(1, 3))
    enqueued = [sum(s.action == "enqueue" for s in p) for p in progs]
    assert enqueued[1] > 2 * enqueued[0] > 0
    # the light one lets the others make round(3 / 1) - 1 = 2 calls after each of its own
    light, heavy = progs
    assert all(s.action == "wait" and s.count == 2 and s.of == () for s in light[1::2])
    assert all(s.action != "wait" for s in light[::2]) and light[-1].action != "wait"
    assert all(s.action != "wait" for s in heavy)


def test_an_idle_processor_calls_first_then_waits_through_the_others_calls():
    progs = shaped(roles=("both", "producer", "consumer"), idle=(0,), idle_after=2,
                   idle_for=0.9)
    idle = progs[0]
    waits = [i for i, s in enumerate(idle) if s.action == "wait"]
    assert len(waits) == 1 and len(calls(idle[:waits[0]])) == 2
    others = len(calls(progs[1])) + len(calls(progs[2]))
    assert idle[waits[0]].count == math.ceil(0.9 * others) and idle[waits[0]].of == ()
    # the others start only once the idle one opened and made its first two calls
    for prog in progs[1:]:
        assert prog[0].action == "wait" and prog[0].of == (0,) and prog[0].count == 3
        assert all(s.action != "wait" for s in prog[1:])


def test_without_a_shape_the_programs_are_drawn_as_before():
    progs = programs(entries=20, processors=3, payload_min=0, payload_max=64,
                     rng=random.Random(5), hold=2)
    plain = repr([[(s.action, s.key, s.payload) for s in p] for p in progs])
    # the digest of these programs before shapes existed: old seeds still replay
    assert hashlib.sha256(plain.encode()).hexdigest()[:16] == "101c5c2ae739bcec"
    assert workload_programs(Workload(entries=20, processors=3, payload_max=64), 3,
                             random.Random(5)) == programs(
        entries=20, processors=3, payload_min=0, payload_max=64, rng=random.Random(5), hold=2)


# -- end to end: the idle processor keeps its queue open and makes no call --------------

IDLE = Scenario(
    name="idle-probe", description="processor 0 idles while processor 1 works, and dies",
    fault="killed_mid_write",
    plan=Plan((KillMidWrite(process=1, at_op=100, probability=0.5),)),
    workload=Workload(entries=12, processors=2, payload_max=32, roles=("producer", "both"),
                      idle=(0,), idle_after=1, idle_for=0.5),
    seed=3)


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_the_idle_processor_sits_out_the_others_calls_and_restarts(mode):
    run = run_scenario("robust", IDLE, mode=mode)
    assert run.status == "pass", run.to_dict()["violations"][:3]
    records = run.history.records
    mine = [i for i, r in enumerate(records)
            if isinstance(r, Op) and r.process == 0 and r.type == "invoke"]
    assert [records[i].f for i in mine[:2]] == ["open", "enqueue"]
    begin, end = mine[1], mine[2]  # its one call before idling, its first one after
    between = records[begin:end]
    assert not any(isinstance(r, Op) and r.process == 0 and r.type == "invoke"
                   for r in between[1:])
    wait = next(s for s in workload_programs(IDLE.workload, 2, random.Random("3:workload"))[0]
                if s.action == "wait")
    others = [r for r in between if isinstance(r, Op) and r.process == 1 and r.type == "invoke"]
    assert len(others) >= wait.count >= 10
    # processor 1 was killed and came back (open, recover) while 0 held its queue open
    assert any(isinstance(r, FaultEvent) and r.process == 1 for r in between)
    assert [r.f for r in others].count("recover") >= 1
    assert not any(isinstance(r, Op) and r.process == 0 and r.f in ("open", "close")
                   for r in between)
