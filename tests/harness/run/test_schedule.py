"""The schedule: seeded programs, and the baton that lets one processor thread run at a time."""

from __future__ import annotations

import random
import threading

from hypothesis import given
from hypothesis import strategies as st

from harness.run.schedule import Baton, OpBudgetExceeded, programs


@given(entries=st.integers(1, 40), processors=st.integers(1, 5), hold=st.integers(0, 4),
       seed=st.integers(0, 2**32))
def test_programs_enqueue_every_key_once_and_ack_only_after_a_claim(entries, processors,
                                                                    hold, seed):
    progs = programs(entries=entries, processors=processors, payload_min=0, payload_max=8,
                     rng=random.Random(seed), hold=hold)
    keys = [s.key for p in progs for s in p if s.action == "enqueue"]
    assert sorted(keys, key=lambda k: int(k[1:])) == [f"e{n}" for n in range(1, entries + 1)]
    for prog in progs:
        owed = 0
        for step in prog:
            if step.action == "claim":
                owed += 1
            elif step.action == "ack":
                assert owed > 0
                owed -= 1
            else:
                assert step.payload.startswith(step.key.encode() + b"|")
        assert owed == 0


def test_programs_are_a_function_of_the_seed():
    def make(seed):
        return programs(entries=20, processors=3, payload_min=0, payload_max=64,
                        rng=random.Random(seed), hold=2)

    assert make(5) == make(5)
    assert make(5) != make(6)


def run_threads(baton, bodies):
    order: list[tuple[int, str]] = []

    def main(p):
        baton.enter(p)
        try:
            bodies[p](p, order)
        finally:
            baton.finish(p)

    threads = [threading.Thread(target=main, args=(p,)) for p in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)
    return order


def steps_body(n, baton):
    def body(p, order):
        for i in range(n):
            baton.switch_point(p)
            order.append((p, f"op{i}"))
            baton.idle_point(p)
    return body


def test_the_same_seed_gives_the_same_interleaving_and_only_one_runs_at_a_time():
    def once(seed):
        baton = Baton(random.Random(seed), [0, 1, 2], mid_call=0.5)
        return run_threads(baton, [steps_body(8, baton)] * 3)

    first = once(11)
    assert first == once(11)
    assert first != once(12)
    assert sorted(first) == sorted((p, f"op{i}") for p in range(3) for i in range(8))


def test_exclusive_parks_the_others_between_calls():
    baton = Baton(random.Random(1), [0, 1], mid_call=1.0, between_calls=1.0)
    inside: list[str] = []

    def restarter(p, order):
        baton.switch_point(p)
        with baton.exclusive(p):
            inside.append("start")
            for _ in range(5):
                baton.switch_point(p)  # never hands over while exclusive
                order.append((p, "recover"))
            inside.append("end")

    def worker(p, order):
        for i in range(6):
            baton.begin_call(p)
            baton.switch_point(p)
            order.append((p, f"call{i}"))
            baton.end_call(p)
            baton.idle_point(p)

    order = run_threads(baton, [restarter, worker])
    recover = [i for i, (p, what) in enumerate(order) if what == "recover"]
    assert recover == list(range(recover[0], recover[0] + 5))  # nobody ran in between


def test_blocked_with_nobody_else_to_run_reports_a_deadlock():
    baton = Baton(random.Random(1), [0])
    baton.enter(0)
    assert baton.blocked(0) is False


def test_the_op_budget_stops_a_spinning_processor():
    baton = Baton(random.Random(1), [0], max_ops=10)
    baton.enter(0)
    try:
        for _ in range(11):
            baton.switch_point(0)
    except OpBudgetExceeded as exc:
        assert exc.process == 0 and "10" in str(exc)
    else:
        raise AssertionError("the budget never ran out")


class FirstChoice(random.Random):
    """A schedule that always picks the first candidate (as a shrunk hypothesis script may)."""

    def choice(self, seq):
        return seq[0]

    def random(self):
        return 0.0


def test_a_blocked_processor_hands_its_turn_to_one_that_can_move():
    # Processors 0 and 1 wait for a lock processor 2 holds; a schedule that always picks
    # the first candidate would bounce the turn between 0 and 1 for ever.
    baton = Baton(FirstChoice(), [0, 1, 2], mid_call=0.0, between_calls=0.0)
    held = {"by": 2}

    def waiter(p, order):
        while held["by"] is not None:
            assert baton.blocked(p), f"processor {p} declared deadlocked"
        order.append((p, "got it"))

    def holder(p, order):
        baton.switch_point(p)
        held["by"] = None
        order.append((p, "released"))

    baton._current = 0  # the waiters start, the holder has to be found
    order = run_threads(baton, [waiter, waiter, holder])
    assert (2, "released") in order and (0, "got it") in order and (1, "got it") in order


def test_when_every_other_one_waits_the_one_that_tried_longest_ago_goes_next():
    # 0 and 1 wait for a lock 2 holds; 2 itself waits for a lock that 3 frees as it ends.
    # Once 3 is gone every live processor is a lock waiter; 2's lock is free, but a
    # schedule that always picks the first candidate bounced the turn between 0 and 1
    # until it declared them deadlocked (robust under stress, re-creating its directory).
    baton = Baton(FirstChoice(), [0, 1, 2, 3], mid_call=0.0, between_calls=0.0)
    locks = {"old": 2, "new": 3}

    def waiter(p, order):
        while locks["old"] is not None:
            assert baton.blocked(p), f"processor {p} declared deadlocked"
        order.append((p, "got old"))

    def holder_of_old(p, order):
        while locks["new"] is not None:
            assert baton.blocked(p), "processor 2 declared deadlocked"
        baton.switch_point(p)
        locks["old"] = None
        order.append((p, "released old"))

    def holder_of_new(p, order):
        baton.switch_point(p)
        locks["new"] = None
        order.append((p, "released new"))

    baton._current = 2  # 2 finds the new lock taken before 3 lets go of it
    order = run_threads(baton, [waiter, waiter, holder_of_old, holder_of_new])
    assert [what for _p, what in order].count("got old") == 2


# -- wait steps (shaped programs): sit out until the others made their calls --------------


def calls_body(n, baton, tag="call"):
    def body(p, order):
        for i in range(n):
            baton.begin_call(p)
            baton.switch_point(p)
            order.append((p, f"{tag}{i}"))
            baton.end_call(p)
            baton.idle_point(p)
    return body


def test_a_waiting_processor_sits_out_until_the_others_made_that_many_calls():
    def sleeper_of(baton):
        def sleeper(p, order):
            calls_body(1, baton, "before")(p, order)
            baton.wait_calls(p, 7)
            order.append((p, "woke"))
            calls_body(1, baton, "after")(p, order)
        return sleeper

    for seed in range(5):
        baton = Baton(random.Random(seed), [0, 1, 2], between_calls=1.0)
        order = run_threads(baton, [sleeper_of(baton), calls_body(6, baton),
                                    calls_body(6, baton)])
        woke = order.index((0, "woke"))
        before = order.index((0, "before0"))
        assert sum(1 for p, _ in order[before:woke] if p != 0) >= 7, order


def test_a_wait_of_named_processors_counts_only_their_calls():
    baton = Baton(random.Random(3), [0, 1, 2], between_calls=1.0)

    def late(p, order):  # calls twice, but only after the others made 4 calls
        baton.wait_calls(p, 4)
        calls_body(2, baton, "late")(p, order)

    def waiter(p, order):
        baton.wait_calls(p, 2, of=(0,))
        order.append((p, "woke"))

    order = run_threads(baton, [late, calls_body(8, baton), waiter])
    assert order.index((2, "woke")) > order.index((0, "late1")), order


def test_when_nobody_can_run_the_sleeper_nearest_its_mark_goes_on():
    baton = Baton(random.Random(1), [0, 1], between_calls=1.0)

    def long_idle(p, order):
        baton.wait_calls(p, 100)
        order.append((p, "woke"))

    def waits_for_it(p, order):  # 0 will never call: 1 is nearer its mark and goes first
        baton.wait_calls(p, 1, of=(0,))
        calls_body(3, baton)(p, order)

    order = run_threads(baton, [long_idle, waits_for_it])
    assert order == [(1, "call0"), (1, "call1"), (1, "call2"), (0, "woke")]


def test_a_sleeper_holding_a_lock_is_woken_for_the_processor_blocked_on_it():
    baton = Baton(random.Random(1), [0, 1], between_calls=0.0)
    held = {"by": None}

    def holder(p, order):
        held["by"] = p  # a target may keep a lock between two calls
        baton.wait_calls(p, 50)
        held["by"] = None
        order.append((p, "released"))

    def blocked(p, order):
        while held["by"] is not None:
            assert baton.blocked(p), "declared deadlocked while the holder only slept"
        order.append((p, "got it"))

    baton._current = 0
    order = run_threads(baton, [holder, blocked])
    assert order == [(0, "released"), (1, "got it")]
