"""Damage at rest: what others acknowledged on top is never cut, and salvage keeps every
intact record of a damaged checkpoint.

1. A journal truncated while a handle (in another process) is open and idle. A handle
   opened afterwards cannot tell the cut from a torn tail, repairs it and commits on top;
   the idle handle must then refuse (CorruptionError) instead of reading on from the middle
   of those commits, where it once cut them away as a "torn tail".
2. A checkpoint with one damaged record. open_queue refuses it, as ever; salvage keeps every
   other entry of it (it used to drop the checkpoint whole) and says what is gone.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import queue as stdlib_queue
import traceback

import pytest

from persistence import (
    DELIVERED,
    PENDING,
    CorruptionError,
    DiskFullError,
    open_queue,
    salvage,
)
from persistence import _records as R
from persistence import journal as J

CTX = multiprocessing.get_context("fork")
WAIT = 30  # seconds: the most any step may take before the test calls it a hang


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


# -- 1. a journal cut short and written again under an idle handle ------------------------


def _idle_handle(out, directory, go):
    """Open, enqueue ten entries, idle until ``go``, then enqueue once more."""
    try:
        with open_queue(directory, compact_min_bytes=1 << 30) as q:
            out.put(("ready", [q.enqueue(b"a%d" % i) for i in range(10)]))
            if not go.wait(WAIT):
                raise TimeoutError("the parent never said go")
            try:
                q.enqueue(b"after")
            except CorruptionError as exc:
                out.put(("done", ("CorruptionError", exc.offset, exc.kept, str(exc))))
                return
            out.put(("done", ("returned", q.states())))
    except BaseException:
        out.put(("error", traceback.format_exc()))
        raise


def _expect(out, tag):
    try:
        got, value = out.get(timeout=WAIT)
    except stdlib_queue.Empty:
        pytest.fail(f"no {tag!r} from the child within {WAIT} s: it hangs")
    assert got == tag, value
    return value


@pytest.mark.parametrize("pattern", [b"\x00", b"\xb2\x00"], ids=["zeros", "frame-like"])
def test_an_idle_handle_never_cuts_commits_written_over_a_truncation(qdir, pattern):
    go = CTX.Event()
    out = CTX.Queue()
    proc = CTX.Process(target=_idle_handle, args=(out, qdir, go), daemon=True)
    proc.start()
    try:
        ids = _expect(out, "ready")
        path = os.path.join(qdir, "journal.0")
        applied = os.path.getsize(path)  # what the idle handle has read: its end
        os.truncate(path, applied - 5)  # damage at rest: the last commit cut short
        # A new handle cannot tell this from a torn tail: it cuts the partial commit and
        # commits on top. Its payload straddles the idle handle's end, and what lies there
        # looks like a torn frame (a hole of zeros, or a frame header of a sane length).
        with open_queue(qdir, compact_min_bytes=1 << 30) as b:
            assert b.last_recovery.torn_bytes_cut > 0
            x = b.enqueue(pattern * 200)  # acknowledged: fsynced before it returned
        assert os.path.getsize(path) > applied
        written = _read(path)
        go.set()
        outcome = _expect(out, "done")
        proc.join(WAIT)
        assert proc.exitcode == 0
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join(10)
    assert outcome[0] == "CorruptionError", outcome  # not a silent cut
    _, offset, kept, message = outcome
    assert offset is not None and offset < applied and path in message
    assert _read(os.path.join(qdir, kept)) == written  # evidence kept, as it was
    assert _read(path) == written  # nothing cut
    with open_queue(qdir) as q:  # the acknowledged commit on top is still there
        states = q.states()
        assert states[x] == PENDING
        assert set(ids[:9]) <= set(states)  # the truncated tenth is undetectable here
        assert q.claim("w") == (ids[0], b"a0")


def _one_commit(durable, entry_id):
    return R.commit_frame(durable, [R.rec_enqueue(entry_id, b"payload")])


def _take_turns(path, monkeypatch):
    """Two handles of one journal append, read each other's commits, roll a failed write
    back and cut a torn tail: all of it ours, none of it damage. Returns them."""
    _write(path, _one_commit(0, "a-1"))
    a, b = J.Journal.open(path, 0), J.Journal.open(path, 0)
    a.read_tail()
    b.read_tail()
    for n in range(2, 5):
        a.append([R.rec_enqueue(f"a-{n}", b"x")], True)
        assert b.read_tail()[0] == [("E", f"a-{n}", b"x")]
        b.append([R.rec_enqueue(f"b-{n}", b"y")], n % 2 == 0)
        assert a.read_tail()[0] == [("E", f"b-{n}", b"y")]
    real = os.write

    def half_then_full(fd, data):
        if len(data) > 20:
            return real(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(os, "write", half_then_full)
        with pytest.raises(DiskFullError):  # written in part, then rolled back
            b.append([R.rec_enqueue("b-5", b"z" * 100)], True)
    assert a.read_tail() == ([], 0)
    with open(path, "ab") as f:  # a torn tail: a commit cut short by a crash
        f.write(_one_commit(b.end, "b-9")[:20])
    assert a.read_tail() == ([], 20)
    assert b.read_tail() == ([], 0)
    b.append([R.rec_ack("a-2")], True)
    assert a.read_tail()[0] == [("A", "a-2")]
    assert b.read_tail() == ([], 0)
    return a, b


@pytest.mark.parametrize("rewrite", ["shorter", "same-size", "longer"])
def test_a_journal_rewritten_below_what_a_handle_applied_is_damage(tmp_path, monkeypatch,
                                                                  rewrite):
    path = str(tmp_path / "journal.0")
    idle, other = _take_turns(path, monkeypatch)
    applied = idle.end
    start = R.scan_commits(_read(path))[2]  # the last commit: b's ack of a-2
    os.truncate(path, start + 3)  # the last commit cut short at rest
    fresh = J.Journal.open(path, 0)
    assert fresh.read_tail()[1] == 3  # a new handle takes it for a torn tail
    if rewrite != "shorter":  # as long as the commit that was cut, another content
        fresh.append([R.rec_ack("c-9")], True)
        assert fresh.end == applied
    if rewrite == "longer":
        fresh.append([R.rec_enqueue("c-2", b"\x00" * 300)], True)
    written = _read(path)
    for handle in (idle, idle, other):  # each handle that applied more; and again
        with pytest.raises(CorruptionError) as info:
            handle.read_tail()
        assert info.value.offset == start
        assert ("shrank" in str(info.value)) == (rewrite == "shorter")
    assert _read(path) == written
    assert sorted(n for n in os.listdir(tmp_path) if ".corrupt-" in n) == ["journal.0.corrupt-1"]
    for handle in (idle, other, fresh):
        handle.close()


# -- 2. salvage of a checkpoint with damaged records ---------------------------------------


def _checkpointed(qdir):
    """20 entries, 5 of them acked, then a checkpoint; after it, a claim (of e05) and an
    enqueue. Returns (checkpoint path, {id: payload} of the checkpoint's entries, the
    claimed id, the id enqueued after the checkpoint)."""
    with open_queue(qdir, compact_min_bytes=1 << 30) as q:
        ids = [q.enqueue(b"entry-%02d" % i) for i in range(20)]
        for _ in range(5):
            q.ack(q.claim("w")[0])
        q.compact()
        gen = q.stats()["generation"]
        claimed, _ = q.claim("w")
        later = q.enqueue(b"after the checkpoint")
    live = {i: b"entry-%02d" % n for n, i in enumerate(ids) if n >= 5}
    assert claimed == ids[5]
    return os.path.join(qdir, f"checkpoint.{gen}"), live, claimed, later


def _damage(data, how):
    """Damage one record of checkpoint bytes ``data``; the payload of the entry lost."""
    at = data.index(b"entry-12")
    if how == "flip":  # one bit of a payload: the frame's CRC fails
        data[at + 3] ^= 0x04
        return b"entry-12"
    if how == "zeroed-header":  # the header of e12's record: resynchronise by scanning
        start = data.rindex(bytes([R.MARK]), 0, at)
        data[start : start + R.HEADER_SIZE] = bytes(R.HEADER_SIZE)
        return b"entry-12"
    if how == "claimed":  # the record of the entry the journal claims after it
        data[data.index(b"entry-05") + 2] ^= 0x01
        return b"entry-05"
    if how == "count":  # the count record, the last frame
        data[-1] ^= 0x01
        return None
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["flip", "zeroed-header", "claimed", "count"])
def test_salvage_keeps_every_intact_record_of_a_damaged_checkpoint(qdir, how):
    path, live, claimed, later = _checkpointed(qdir)
    data = bytearray(_read(path))
    gone = _damage(data, how)
    _write(path, bytes(data))
    with pytest.raises(CorruptionError, match="checkpoint"):  # never repaired silently
        open_queue(qdir)
    assert _read(path) == bytes(data)

    report = salvage(qdir)
    lost = {i for i, payload in live.items() if payload == gone}
    name = os.path.basename(path)
    assert report.damaged and not report.clean
    assert all(d.startswith(name) for d in report.damaged), report.damaged
    if how == "count":
        assert report.notes == (f"{name}: entries recovered 15, recorded unknown (its "
                                "count record is damaged), lost unknown",)
    else:
        assert report.notes == (f"{name}: entries recovered 14, recorded 15, lost 1",)
    # an id the journal refers to after the checkpoint, whose record is gone, is named
    assert report.unrecoverable == ((claimed,) if how == "claimed" else ())
    assert _read(os.path.join(qdir, report.kept[0])) == bytes(data)
    with open_queue(qdir) as q:
        states = q.states()
        assert set(states) == set(live) - lost | {later}
        assert states[later] == PENDING
        if claimed not in lost:  # its claim was replayed; its claimer is gone: requeued
            assert states[claimed] == PENDING
            assert q.last_recovery.requeued == (claimed,)
        delivered = []
        while got := q.claim("drain"):
            q.ack(got[0])
            delivered.append(got)
    assert dict(delivered) == {**{i: p for i, p in live.items() if i not in lost},
                               later: b"after the checkpoint"}


def test_salvage_never_rebuilds_from_an_older_checkpoint_without_its_journal(qdir):
    with open_queue(qdir, compact_min_bytes=1 << 30) as q:
        a, b = q.enqueue(b"a"), q.enqueue(b"b")
        q.compact()
        old_gen = q.stats()["generation"]
        old = _read(os.path.join(qdir, f"checkpoint.{old_gen}"))
        q.ack(q.claim("w")[0])  # a, acked in journal.<old_gen> only
        c = q.enqueue(b"c")
        q.compact()
        path = os.path.join(qdir, f"checkpoint.{q.stats()['generation']}")
    # A power loss brought the old checkpoint back, not its journal; then damage at rest
    # to one record of the new one.
    _write(os.path.join(qdir, f"checkpoint.{old_gen}"), old)
    data = bytearray(_read(path))
    data[data.index(b"c", len(data) - 40)] ^= 0x01  # c's payload: the last entry record
    _write(path, bytes(data))
    report = salvage(qdir)
    with open_queue(qdir) as q:
        states = q.states()
    assert states.get(a, DELIVERED) == DELIVERED  # acked: never delivered again
    assert states[b] == PENDING and c not in states
    assert report.notes == (f"{os.path.basename(path)}: entries recovered 1, recorded 2, "
                            "lost 1",)


def test_a_payload_holding_queue_records_is_never_taken_for_an_entry(qdir):
    inner = R.encode_checkpoint(7, [("phantom-1", "PENDING", 0, "", "", "", b"not mine")])
    with open_queue(qdir, compact_min_bytes=1 << 30) as q:
        ids = [q.enqueue(b"<" + inner + b">"), q.enqueue(b"plain")]
        q.compact()
        path = os.path.join(qdir, f"checkpoint.{q.stats()['generation']}")
    data = bytearray(_read(path))
    data[data.index(b"<" + inner)] ^= 0x01  # the outer record's CRC fails
    _write(path, bytes(data))
    report = salvage(qdir)
    with open_queue(qdir) as q:
        assert q.states() == {ids[1]: PENDING}  # no "phantom-1"
    assert report.notes[0].endswith("entries recovered 1, recorded 2, lost 1")
