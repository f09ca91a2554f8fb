"""Durable marks: damage at rest under later, acknowledged commits is reported, never cut.

A commit frame carries the offset its writer saw an fsync cover. It used to be only the
end of that writer's own last fsynced commit, so a commit another handle had made durable,
damaged at rest, followed only by commits whose writers had last fsynced before it, was
taken for a torn tail: cut, with every later commit, acknowledged ones included (the
harness's corruption-at-rest seed 43: an acked entry came back). The controls: a tail a
crash tore is still cut without an error, even when a claim read the lost commit first;
a failed fsync before an append is handled like any other fsync error.
"""

from __future__ import annotations

import errno
import os

import pytest

from persistence import PENDING, CorruptionError, open_queue
from persistence import _records as R

BIG = {"compact_min_bytes": 1 << 30}  # no checkpoint: every commit stays in journal.0


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def _frames(path):
    """(offset, end, durable mark, records) of every commit in the journal."""
    return list(R.frames_after(_read(path), 0))


def _flip(path, offset):
    data = bytearray(_read(path))
    data[offset] ^= 0x04
    _write(path, bytes(data))


def _holding(frames, entry_id):
    return next(f for f in frames if any(rec[1] == entry_id for rec in f[3]))


def _refused(qdir, journal, damaged_at):
    """Opening must raise CorruptionError at the damage, keep a copy, and cut nothing."""
    before = _read(journal)
    with pytest.raises(CorruptionError) as info:
        open_queue(qdir, **BIG)
    assert info.value.offset == damaged_at
    assert info.value.kept == "journal.0.corrupt-1"
    assert _read(journal) == before
    assert _read(os.path.join(qdir, info.value.kept)) == before


def test_damage_in_a_commit_another_handle_fsynced_is_not_cut_with_later_acks(qdir):
    journal = os.path.join(qdir, "journal.0")
    a = open_queue(qdir, **BIG)
    b = open_queue(qdir, **BIG)
    first = a.enqueue(b"one")  # a fsyncs its commit
    second = b.enqueue(b"two")  # b reads a's commit, then fsyncs its own
    # a's own last fsync ended before b's commit: its mark used to stop there
    assert a.claim("w") == (first, b"one")
    a.ack(first)
    a.close()
    b.close()
    frames = _frames(journal)
    damaged = _holding(frames, second)
    _flip(journal, damaged[0] + 20)  # a bit of b's enqueue, at rest
    _refused(qdir, journal, damaged[0])


def test_damage_in_a_commit_read_at_open_is_not_cut_with_later_commits(qdir):
    journal = os.path.join(qdir, "journal.0")
    with open_queue(qdir, **BIG) as q:
        q.enqueue(b"one")
        second = q.enqueue(b"two")  # the last commit of that handle
    with open_queue(qdir, **BIG) as q:  # reads both at open, never fsynced them itself
        third = q.enqueue(b"three")  # acknowledged: it must never be cut
    frames = _frames(journal)
    damaged = _holding(frames, second)
    assert _holding(frames, third)[0] > damaged[0]
    _flip(journal, damaged[0] + 20)
    _refused(qdir, journal, damaged[0])


def test_a_torn_tail_is_still_cut_without_error(qdir):
    journal = os.path.join(qdir, "journal.0")
    a = open_queue(qdir, **BIG)
    b = open_queue(qdir, **BIG)
    kept = [a.enqueue(b"one"), b.enqueue(b"two"), a.enqueue(b"three")]
    a.close()
    b.close()
    size = len(_read(journal))
    with open(journal, "ab") as f:  # a crash: a commit cut short, zeros past its end
        f.write(R.commit_frame(size, [R.rec_enqueue("x", b"lost" * 50)])[:40] + bytes(300))
    with open_queue(qdir, **BIG) as q:
        assert q.last_recovery.torn_bytes_cut == 340  # cut and reported at open
        assert q.states() == dict.fromkeys(kept, PENDING)
    assert len(_read(journal)) == size


def test_a_claim_does_not_vouch_for_a_commit_whose_writer_died_before_its_fsync(qdir):
    """A writer killed between write and fsync leaves a complete commit nobody fsynced;
    a claim reads it and is written after it, unsynced; a power loss then keeps the
    claim but not that commit (zeros). That is a torn tail: cut, no CorruptionError."""
    journal = os.path.join(qdir, "journal.0")
    with open_queue(qdir, **BIG) as q:
        first = q.enqueue(b"one")
    start = len(_read(journal))
    with open(journal, "ab") as f:  # the dead writer's commit, never fsynced
        f.write(R.commit_frame(0, [R.rec_enqueue("dead-1", b"unsynced")]))
    with open_queue(qdir, **BIG) as q:
        assert [i for i, _ in q.claim_many("w", 2)] == [first, "dead-1"]
        claim = _frames(journal)[-1]
        assert claim[2] <= start  # the claim claims nothing it did not see fsynced
    # a power loss: the claim reached the disk, the dead writer's commit did not
    data = bytearray(_read(journal))
    data[start : claim[0]] = bytes(claim[0] - start)
    _write(journal, bytes(data))
    with open_queue(qdir, **BIG) as q:
        assert q.states() == {first: PENDING}
    assert len(_read(journal)) == start


def test_a_failed_fsync_before_an_append_applies_nothing_and_moves_on(qdir, monkeypatch):
    """A control: the fsync that lets a mark cover what was read fails; the change is
    refused and the queue moves to a new generation, as for any fsync error."""
    a = open_queue(qdir, **BIG)
    b = open_queue(qdir, **BIG)
    first = a.enqueue(b"one")
    journal = os.path.join(qdir, "journal.0")
    real = os.fsync
    calls = []

    def eio_first(fd):
        calls.append(fd)
        if len(calls) == 1:
            raise OSError(errno.EIO, "Input/output error")
        return real(fd)

    monkeypatch.setattr(os, "fsync", eio_first)
    with pytest.raises(CorruptionError, match="not applied"):
        b.enqueue(b"two")  # b read a's commit: it fsyncs before appending
    monkeypatch.undo()
    assert b.states() == {first: PENDING}
    assert len(calls) > 1  # the new generation was written and fsynced
    assert not os.path.exists(journal)
    second = b.enqueue(b"two")
    assert a.states() == {first: PENDING, second: PENDING}
    a.close()
    b.close()
