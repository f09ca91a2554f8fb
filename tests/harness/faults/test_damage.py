"""Damage at rest and files removed by others (harness.faults.damage): where the entries lay,
what each damage does to the bytes, and both faults carried out through the shim, on the
real disk and under pyfakefs."""

from __future__ import annotations

import base64
import os
import random

import pytest

from harness.check.history import NEMESIS, History
from harness.faults import DAMAGES, Corruption, FileRemoved, Plan
from harness.faults import damage as _damage
from harness.faults.actions import Damage
from harness.faults.durability import DurabilityModel
from harness.intercept.shim import installed


def enqueued(*keys: str, ids: bool = True) -> History:
    """A history in which ``keys`` were enqueued ok (payload ``b"<key>|payload-<key>"``)."""
    h = History()
    for key in keys:
        h.op("invoke", 0, "enqueue", key=key, value={"payload": payload(key)})
        h.op("ok", 0, "enqueue", key=key, value={"id": f"id-{key}"} if ids else {"id": "1"})
    return h


def payload(key: str) -> bytes:
    return f"{key}|payload-{key}".encode()


def put(sandbox: str, rel: str, data: bytes) -> str:
    path = os.path.join(sandbox, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


# -- where the entries lay -------------------------------------------------------------


def test_entries_are_found_raw_in_base64_in_hex_and_by_their_ids():
    wanted, live = _damage.needles(enqueued("e1", "e2", "e3", "e4").records)
    data = (b"<" + payload("e1") + b">" + base64.b64encode(payload("e2")) + b"."
            + payload("e3").hex().encode() + b";ack id-e4;")
    found = {k for _s, _e, k in _damage.occurrences(data, wanted)}
    assert found == {"e1", "e2", "e3", "e4"} and live == {"e1", "e2", "e3", "e4"}


def test_an_acked_entry_is_not_live():
    h = enqueued("e1", "e2")
    h.op("invoke", 0, "claim")
    h.op("ok", 0, "claim", key="e1", value={"id": "id-e1", "payload": payload("e1")})
    h.op("invoke", 0, "ack", key="e1", value={"id": "id-e1"})
    h.op("ok", 0, "ack", key="e1", value={"id": "id-e1"})
    assert _damage.needles(h.records)[1] == {"e2"}


def test_touched_is_what_overlaps_a_range_and_the_nearest_on_each_side():
    found = [(0, 10, "e1"), (20, 30, "e2"), (40, 50, "e3"), (60, 70, "e4"), (80, 90, "e5")]
    assert _damage.touched(found, [(45, 46)]) == {"e2", "e3", "e4"}  # inside e3's bytes
    assert _damage.touched(found, [(33, 35)]) == {"e2", "e3"}  # a header between records
    assert _damage.touched(found, [(85, 200)]) == {"e4", "e5"}  # a cut near the end
    assert _damage.touched(found, []) == set()


# -- what each damage does ---------------------------------------------------------------


def _plan(kind: str, contents: dict[str, bytes], seed: int = 7, records=()):
    action = Damage(repr(Corruption(damage=kind)), "corruption", kind, "q/*", seed, 3, 512)
    return _damage.plan(action, contents, records)


@pytest.mark.parametrize("kind", DAMAGES)
def test_each_damage_changes_exactly_the_ranges_it_names(kind):
    old = bytes(range(1, 256)) * 9
    rel, new, event = _plan(kind, {"q/log": old})
    assert rel == "q/log" and _plan(kind, {"q/log": old})[1] == new  # the seed decides
    ranges = [(a, b) for _f, a, b in event["ranges"]]
    if kind == "delete":
        assert new is None and ranges == [(0, len(old))]
        return
    if kind == "truncate":
        ((cut, end),) = ranges
        assert new == old[:cut] and end == len(old) and cut < len(old)
        return
    assert len(new) == len(old)
    changed = {i for i in range(len(old)) if old[i] != new[i]}
    inside = {i for a, b in ranges for i in range(a, b)}
    assert changed and changed <= inside
    if kind == "bitflip":
        assert all(bin(old[i] ^ new[i]).count("1") == 1 for i in changed)
    else:  # one aligned sector (the last one may be short), all zeros
        ((a, b),) = ranges
        assert a % 512 == 0 and b - a <= 512 and new[a:b] == bytes(b - a)


def test_a_file_holding_entries_is_damaged_before_a_bigger_one_without():
    h = enqueued("e1")
    contents = {"q/reserve": bytes(1 << 16), "q/journal": b"head" + payload("e1")}
    for seed in range(20):
        rel, _new, event = _plan("bitflip", contents, seed, h.records)
        assert rel == "q/journal" and event["entries"] == ["e1"]


def test_nothing_to_damage_is_said_so():
    rel, new, event = _plan("bitflip", {"q/empty": b"", "other": b"x"})
    assert rel is None and "nothing damaged" in event["effect"] and "ranges" not in event


# -- through the shim, on the real disk and under pyfakefs --------------------------------


def test_damage_at_rest_changes_the_file_in_place_and_is_recorded(sandbox):
    h = enqueued("e1", "e2")
    path = put(sandbox, "q/journal", b"#" * 600 + payload("e1") + b"#" * 600 + payload("e2"))
    before = read(path)
    ino = os.stat(path).st_ino
    armed = Plan((Corruption(damage="sector", before="drain"),)).arm(random.Random(3))
    with installed(sandbox=sandbox, history=h, plan=armed) as shim:
        with shim.processor(0):
            os.stat(path)  # op 1: damage comes once at_op (1) calls were made
        _damage.at_rest(shim, "restart")  # not its point: nothing happens
        assert read(path) == before and not h.faults()
        _damage.at_rest(shim, "drain")
        assert shim.faults_fired == 1 and armed.fired == 1
    (event,) = h.faults()
    ((rel, a, b),) = event.ranges
    assert (event.process, event.kind, rel) == (NEMESIS, "corruption", "q/journal")
    assert os.stat(path).st_ino == ino and read(path) == before[:a] + bytes(b - a) + before[b:]
    assert set(event.entries) <= {"e1", "e2"} and event.entries and not event.destroyed
    assert f"bytes {a}-{b}" in event.effect


def test_damage_at_rest_survives_a_later_power_loss(sandbox):
    h = enqueued("e1")
    path = put(sandbox, "q/journal", (payload("e1") * 200)[:1536])  # three whole sectors
    armed = Plan((Corruption(damage="sector", before="restart"),)).arm(random.Random(1))
    with installed(sandbox=sandbox, history=h, plan=armed) as shim:
        model = DurabilityModel(sandbox, shim.real)
        model.snapshot_all()
        shim.model = model
        with shim.processor(0):
            os.stat(path)
        _damage.at_rest(shim, "restart")
        damaged = read(path)
        model.power_loss(random.Random(0))
        model.close()
    assert bytes(512) in damaged and read(path) == damaged


def test_a_deleted_file_is_durably_gone(sandbox):
    h = enqueued("e1")
    path = put(sandbox, "q/journal", payload("e1"))
    armed = Plan((Corruption(damage="delete"),)).arm(random.Random(1))
    with installed(sandbox=sandbox, history=h, plan=armed) as shim:
        model = DurabilityModel(sandbox, shim.real)
        model.snapshot_all()
        shim.model = model
        with shim.processor(0):
            os.stat(path)
        _damage.at_rest(shim, "drain")
        model.power_loss(random.Random(0))
        model.close()
    assert not os.path.exists(path) and h.faults()[0].entries == ("e1",)


def test_file_removed_unlinks_before_the_call_goes_on(sandbox):
    h = enqueued("e1")
    lock = put(sandbox, "q/queue.lock", b"")
    data = put(sandbox, "q/data.tmp", b"state " + payload("e1"))
    plan = Plan((FileRemoved(path="q/*.lock"), FileRemoved(path="q/*.tmp"))).arm(
        random.Random(0))
    with installed(sandbox=sandbox, history=h, plan=plan) as shim, shim.processor(1):
        with pytest.raises(FileNotFoundError):
            os.open(lock, os.O_RDWR)  # removed just before the call: the call fails
        fd = os.open(lock, os.O_RDWR | os.O_CREAT)  # re-created: no new firing
        os.close(fd)
        with pytest.raises(FileNotFoundError):
            os.stat(data)
    lock_event, data_event = h.faults()
    assert (lock_event.process, lock_event.kind) == (1, "file_removed")
    assert "q/queue.lock (0 bytes)" in lock_event.effect
    assert not lock_event.destroyed and lock_event.entries == ()
    assert data_event.destroyed and data_event.entries == ("e1",)
    assert data_event.ranges == (("q/data.tmp", 0, len(b"state " + payload("e1"))),)
    assert [r.outcome for r in h.fs_ops()] == ["ENOENT", "ok", "ok", "ENOENT"]


def test_a_call_that_creates_its_file_does_not_trigger_a_removal(sandbox):
    plan = Plan((FileRemoved(path="q/*.lock"),)).arm(random.Random(0))
    os.makedirs(os.path.join(sandbox, "q"))
    h = History()
    with installed(sandbox=sandbox, history=h, plan=plan) as shim, shim.processor(1):
        fd = os.open(os.path.join(sandbox, "q", "a.lock"), os.O_RDWR | os.O_CREAT)
        assert not h.faults() and plan.fired == 0
        os.close(fd)  # a call on the file now there: removed just before it
    assert plan.fired == 1 and not os.path.exists(os.path.join(sandbox, "q", "a.lock"))
