"""The wait-step ledger shared by the baton and the parent: who may go on, and when."""

from __future__ import annotations

from harness.run._waits import Waits


def test_a_sleeper_is_due_once_the_others_began_its_count_of_calls():
    w = Waits()
    w.called(1)  # calls before the wait do not count
    w.sleep(0, 3)
    for _ in range(2):
        w.called(1)
    assert w.due() == [] and 0 in w
    w.called(2)
    assert w.due() == [0] and 0 not in w and not w


def test_a_wait_of_named_processors_counts_only_theirs():
    w = Waits()
    w.sleep(2, 2, of=(0,))
    for _ in range(10):
        w.called(1)
    assert w.due() == []
    w.called(0)
    w.called(0)
    assert w.due() == [2]


def test_when_nobody_can_call_the_nearest_sleepers_go_on_first():
    w = Waits()
    w.sleep(0, 100)
    w.sleep(1, 1, of=(0,))
    w.sleep(2, 1, of=(0,))
    assert sorted(w.nearest()) == [1, 2] and 0 in w
    assert w.everyone() == [0] and not w
