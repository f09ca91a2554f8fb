"""History records: entry keys, ordering, and a JSON round trip that keeps every field."""

from __future__ import annotations

import pytest

from harness.check.history import DRAIN, NEMESIS, FaultEvent, FsOp, History, Op, entry_key


def test_entry_key_parses_only_harness_keys():
    assert entry_key(b"e17|\x00\xff") == "e17"
    assert entry_key(b"e17|") == "e17"
    for bad in (b"e|x", b"x17|y", b"e17", b"e1a|", None, "e1|text"):
        assert entry_key(bad) is None


def test_records_share_one_sequence():
    h = History()
    a = h.op("invoke", 0, "enqueue", key="e1", value={"payload": b"e1|x"})
    b = h.fs(0, "write", path="q/journal.0", nbytes=10)
    c = h.fault(NEMESIS, "power_loss", "PowerLoss(at_op=2)", "rolled back", crashed=(0, 1))
    assert [a.index, b.index, c.index] == [0, 1, 2]
    assert h.ops() == [a] and h.fs_ops() == [b] and h.faults() == [c]


def test_json_round_trip_keeps_every_record_and_bytes():
    h = History()
    h.op("invoke", 0, "enqueue", key="e1", value={"payload": b"e1|\x00\xff"})
    h.op("ok", 0, "enqueue", key="e1", value={"id": "a1"})
    h.fs(0, "write", path="q/j", nbytes=3, outcome="ENOSPC", fault="DiskFull()")
    h.fault(0, "missing_directory", "MissingDirectory()", "removed q/", destroyed=True)
    h.fault(NEMESIS, "power_loss", "PowerLoss()", "rolled back", crashed=(0, DRAIN))
    back = History.from_json(h.to_json())
    assert back.records == h.records
    assert isinstance(back.records[3], FaultEvent) and back.records[3].kind == "missing_directory"
    assert isinstance(back.records[2], FsOp) and isinstance(back.records[0], Op)


def test_bad_records_are_refused_with_the_value_named():
    with pytest.raises(ValueError, match="type='maybe'"):
        Op(0, "maybe", 0, "enqueue")
    with pytest.raises(ValueError, match="kind='bogus'"):
        History.from_json([{"kind": "bogus"}])
