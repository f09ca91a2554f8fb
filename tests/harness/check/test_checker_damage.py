"""The checker's rule for damage at rest and for files removed by others, on tiny literal
histories: destroyed only where the damage may have held the entry, and (for damage at
rest) only once the target reported it; lost outside; corrupt when damaged bytes come out."""

from __future__ import annotations

import pytest

from harness.check.checker import check
from harness.check.history import DRAIN, NEMESIS, History

DAMAGE = "Corruption()"


def enq(h, key, p=0):
    h.op("invoke", p, "enqueue", key=key, value={"payload": f"{key}|x".encode()})
    h.op("ok", p, "enqueue", key=key, value={"id": key})


def claim(h, key, p=0, text=None):
    h.op("invoke", p, "claim")
    h.op("ok", p, "claim", key=key, value={"id": key, "payload": (text or f"{key}|x").encode()})


def ack(h, key, p=0):
    h.op("invoke", p, "ack", key=key, value={"id": key})
    h.op("ok", p, "ack", key=key, value={"id": key})


def damaged(h, *entries, file="q/log", start=10, end=11):
    """Damage at rest at a quiet point that may have held ``entries``."""
    h.op("invoke", 0, "close")
    h.op("ok", 0, "close")
    return h.fault(NEMESIS, "corruption", DAMAGE, f"damage at rest to {file}",
                   ranges=[(file, start, end)], entries=entries)


def drain(h, *keys, open_raises=False):
    h.op("invoke", DRAIN, "open")
    if open_raises:  # the target reports the damage; the drain repairs, then opens again
        h.op("info", DRAIN, "open", error="CorruptionError: damaged journal at offset 10")
        h.op("invoke", DRAIN, "repair")
        h.op("ok", DRAIN, "repair")
        h.op("invoke", DRAIN, "open")
    h.op("ok", DRAIN, "open")
    for key in keys:
        claim(h, key, DRAIN)
        ack(h, key, DRAIN)
    h.op("invoke", DRAIN, "claim")
    h.op("ok", DRAIN, "claim")


def verdicts(h):
    r = check(h)
    return r.entries, sorted((v.kind, v.entry) for v in r.violations), r


def test_reported_damage_destroys_the_entries_that_lay_in_it_not_the_others():
    h = History()
    enq(h, "e1")
    enq(h, "e2")
    damaged(h, "e1")
    drain(h, open_raises=True)
    entries, violations, _ = verdicts(h)
    assert entries == {"e1": "destroyed", "e2": "lost"}
    assert violations == [("lost", "e2")]


def test_unreported_damage_destroys_nothing():
    h = History()
    enq(h, "e1")
    damaged(h, "e1")
    drain(h)  # opened without a word: the damage was swallowed
    entries, violations, r = verdicts(h)
    assert violations == [("lost", "e1")]
    assert "never reported that damage" in r.violations[0].detail
    assert DAMAGE in r.violations[0].faults


@pytest.mark.parametrize("length, destroyed", [(10, True), (4, True), (11, False)])
def test_a_cut_at_or_before_the_damage_reports_it(length, destroyed):
    """A log that takes a damaged last record for a torn tail cuts it away: visible."""
    h = History()
    enq(h, "e1")
    damaged(h, "e1", start=10, end=11)
    h.op("invoke", DRAIN, "open")
    h.fs(DRAIN, "truncate", path="q/log", nbytes=length)
    h.op("ok", DRAIN, "open")
    h.op("invoke", DRAIN, "claim")
    h.op("ok", DRAIN, "claim")
    entries, _, _ = verdicts(h)
    assert entries == {"e1": "destroyed" if destroyed else "lost"}


@pytest.mark.parametrize("call, path, reported", [
    ("replace", "q/log", True),  # moved aside: quarantined
    ("copy", "q/log", True),  # copied aside
    ("replace", "q/other", False),  # another file
    ("unlink", "q/log", False),  # deleted: not a report
])
def test_setting_the_damaged_file_aside_reports_it(call, path, reported):
    h = History()
    enq(h, "e1")
    damaged(h, "e1")
    h.op("invoke", DRAIN, "open")
    h.fs(DRAIN, call, path=path, path2="q/log.corrupt-1" if call != "unlink" else None)
    h.op("ok", DRAIN, "open")
    h.op("invoke", DRAIN, "claim")
    h.op("ok", DRAIN, "claim")
    assert verdicts(h)[0] == {"e1": "destroyed" if reported else "lost"}


def test_a_call_that_raised_for_an_injected_error_or_a_crash_is_no_report():
    h = History()
    enq(h, "e1")
    damaged(h, "e1")
    h.op("invoke", 1, "open")
    h.fs(1, "open", path="q/log", outcome="EACCES", fault="PermissionDenied()")
    h.op("info", 1, "open", error="PermissionError: [Errno 13]")
    h.op("invoke", 2, "open")
    h.op("info", 2, "open", error="processor killed")
    drain(h)
    assert verdicts(h)[1] == [("lost", "e1")]


def test_an_ack_whose_record_lay_in_reported_damage_may_come_out_again():
    h = History()
    enq(h, "e1")
    claim(h, "e1")
    ack(h, "e1")
    damaged(h, "e1")
    drain(h, "e1", open_raises=True)
    assert verdicts(h)[0] == {"e1": "destroyed"}


def test_an_ack_outside_the_damage_that_comes_out_again_is_a_duplicate():
    h = History()
    enq(h, "e1")
    claim(h, "e1")
    ack(h, "e1")
    damaged(h, "e2")
    drain(h, "e1", open_raises=True)
    assert verdicts(h)[1] == [("duplicate", "e1")]


def test_damaged_bytes_handed_out_are_corrupt_even_when_reported():
    h = History()
    enq(h, "e1")
    damaged(h, "e1")
    h.op("invoke", 1, "open")
    h.op("info", 1, "open", error="ValueError: bad record")
    h.op("invoke", DRAIN, "open")
    h.op("ok", DRAIN, "open")
    claim(h, "e1", DRAIN, text="e1|y")
    ack(h, "e1", DRAIN)
    h.op("invoke", DRAIN, "claim")
    h.op("ok", DRAIN, "claim")
    assert verdicts(h)[1] == [("corrupt", "e1")]


def test_handed_out_of_memory_after_the_damage_is_still_destroyed():
    """A live processor claims it from memory after its only copy was damaged, then dies:
    the claim wrote no new copy of its bytes."""
    h = History()
    enq(h, "e1")
    damaged(h, "e1")
    h.op("invoke", 1, "claim")
    h.fs(1, "write", path="q/log", nbytes=20)  # a claim record, not the payload again
    h.op("ok", 1, "claim", key="e1", value={"id": "e1", "payload": b"e1|x"})
    h.fault(1, "killed_mid_write", "KillMidWrite()", "killed process 1", crashed=[1])
    drain(h, open_raises=True)
    assert verdicts(h)[0] == {"e1": "destroyed"}


def test_a_removed_file_destroys_only_the_entries_found_in_it():
    h = History()
    enq(h, "e1")
    enq(h, "e2")
    h.fault(0, "file_removed", "FileRemoved()", "another program removed q/e1",
            destroyed=True, ranges=[("q/e1", 0, 4)], entries=["e1"])
    drain(h)
    entries, violations, _ = verdicts(h)
    assert entries == {"e1": "destroyed", "e2": "lost"} and violations == [("lost", "e2")]


def test_a_removed_lock_file_destroys_nothing():
    h = History()
    enq(h, "e1")
    h.fault(0, "file_removed", "FileRemoved()", "another program removed q/queue.lock",
            ranges=[("q/queue.lock", 0, 0)])
    drain(h)
    assert verdicts(h)[1] == [("lost", "e1")]


def test_the_event_round_trips_through_json():
    h = History()
    damaged(h, "e1", "e2", start=512, end=1024)
    again = History.from_json(h.to_json()).faults()[0]
    assert again == h.faults()[0]
    assert again.ranges == (("q/log", 512, 1024),) and again.entries == ("e1", "e2")
