"""The journal's format and its reading rules: a torn tail is cut, damage is kept."""

import errno
import os

import pytest

from persistence import _os
from persistence import _records as R
from persistence import journal as J
from persistence.errors import CorruptionError, DiskFullError, PayloadTooLargeError

RECORDS = [
    R.rec_enqueue("a-1", b"\x00\xff binary \xc3\x28"),
    R.rec_enqueue("a-2", b""),
    R.rec_claim("a-1", "worker é", "tok"),
    R.rec_fail("a-1", False, "reason ✓"),
    R.rec_ack("a-2"),
    R.rec_id("R", "a-1"),
    R.rec_id("Y", "a-1"),
    R.rec_id("X", "a-1"),
    R.rec_seal(7),
]
DECODED = [
    ("E", "a-1", b"\x00\xff binary \xc3\x28"),
    ("E", "a-2", b""),
    ("C", "a-1", "worker é", "tok"),
    ("F", "a-1", False, "reason ✓"),
    ("A", "a-2"),
    ("R", "a-1"),
    ("Y", "a-1"),
    ("X", "a-1"),
    ("S", 7),
]


def _commits(n, durable_step=True):
    """``n`` one-record commits, each claiming every earlier byte durable."""
    out = b""
    for i in range(n):
        out += R.commit_frame(len(out) if durable_step else 0,
                              [R.rec_enqueue(f"t-{i + 1}", b"payload %d" % i)])
    return out


def test_records_round_trip_byte_for_byte_in_one_commit():
    data = R.commit_frame(0, RECORDS)
    records, valid, last = R.scan_commits(data)
    assert (records, valid, last) == (DECODED, len(data), 0)
    records, valid, last = R.scan_commits(data + data + data[:-1])
    assert (records, valid, last) == (DECODED * 2, 2 * len(data), len(data))


@pytest.mark.parametrize("cut", [1, 5, 9, 12])
def test_a_commit_cut_short_is_all_or_nothing(cut):
    first = R.commit_frame(0, RECORDS[:2])
    data = first + R.commit_frame(len(first), RECORDS[2:5])
    records, valid, _ = R.scan_commits(data[:-cut])
    assert records == DECODED[:2] and valid == len(first)


def _journal(tmp_path, data=b""):
    path = str(tmp_path / "journal.0")
    with open(path, "wb") as f:
        f.write(data)
    return J.Journal.open(path, 0), path


def _read(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.mark.parametrize("tail", [b"\xb2\x00\x00", b"\x00" * 700, "half"])
def test_torn_tail_is_cut_reported_and_logged(tmp_path, caplog, tail):
    good = _commits(3)
    last = R.commit_frame(len(good), RECORDS[:1])
    if tail == "half":
        tail = last[: len(last) // 2]
    j, path = _journal(tmp_path, good + tail)
    records, cut = j.read_tail()
    assert len(records) == 3 and cut == len(tail)
    assert _read(path) == good and j.end == len(good)
    assert "torn journal tail cut" in caplog.text
    j.append(RECORDS[4:5], True)
    assert R.scan_commits(_read(path))[1] == len(_read(path))
    j.close()


@pytest.mark.parametrize("damage", ["flip", "zeros", "garbage-start"])
def test_damage_before_durable_commits_is_never_cut(tmp_path, damage):
    data = bytearray(_commits(40))
    middle = len(data) // 2
    if damage == "flip":
        data[middle] ^= 0x10
    elif damage == "zeros":
        data[middle : middle + 64] = bytes(64)
    else:
        data[0] = 0x5A
    j, path = _journal(tmp_path, bytes(data))
    with pytest.raises(CorruptionError) as info:
        j.read_tail()
    err = info.value
    assert err.filename == path and err.offset is not None and err.offset <= middle
    assert f"offset={err.offset}" in str(err)
    assert _read(path) == bytes(data)  # evidence untouched
    assert _read(os.path.join(tmp_path, err.kept)) == bytes(data)
    j.close()


def test_a_journal_of_format_version_1_is_refused_not_emptied(tmp_path):
    data = b"\xb1" + b"\x00\x00\x00\x05" + b"\x00" * 13
    j, path = _journal(tmp_path, data)
    with pytest.raises(CorruptionError, match="format version 1"):
        j.read_tail()
    assert _read(path) == data
    j.close()


def test_failed_write_leaves_the_file_unchanged(tmp_path, monkeypatch):
    first = R.commit_frame(0, RECORDS[:1])
    j, path = _journal(tmp_path, first)
    j.read_tail()
    real = os.write

    def short_then_full(fd, data):
        if len(data) > 5:
            return real(fd, bytes(data[:5]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", short_then_full)
    with pytest.raises(DiskFullError):
        j.append(RECORDS[1:3], True)
    monkeypatch.undo()
    assert _read(path) == first
    j.append(RECORDS[1:2], True)  # works again once space is back
    assert R.scan_commits(_read(path))[0] == DECODED[:2]
    j.close()


def test_a_failed_fsync_poisons_the_journal_for_good(tmp_path, monkeypatch):
    j, path = _journal(tmp_path)

    def eio(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", eio)
    with pytest.raises(CorruptionError):
        j.append(RECORDS[:1], True)
    monkeypatch.undo()
    assert j.poisoned
    # A later fsync that succeeds must never be taken as proof for what the kernel may
    # have dropped: the file refuses every further append.
    with pytest.raises(CorruptionError, match="not trusted"):
        j.append(RECORDS[1:2], True)
    j.close()


def test_an_oversized_commit_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    j, path = _journal(tmp_path)
    monkeypatch.setattr(R, "MAX_BODY", 64)
    with pytest.raises(PayloadTooLargeError):
        j.append([R.rec_enqueue("a-1", b"x" * 100)], True)
    assert _read(path) == b""
    j.close()


def test_checkpoint_round_trip_and_invalid_forms():
    entries = [
        ("a-1", "PENDING", 2, "", "", "r", b"\x00p"),
        ("a-2", "FAILED", 5, "o", "w", "x", b""),
    ]
    data = R.encode_checkpoint(3, entries)
    gen, body = R.decode_checkpoint(data)
    assert gen == 3
    assert [r[1:] for r in body] == entries
    assert R.decode_checkpoint(data[:-1]) is None  # no end record
    assert R.decode_checkpoint(data + b"x") is None
    assert R.decode_checkpoint(b"") is None


def test_a_bad_checkpoint_is_kept_aside_and_raises(tmp_path):
    path = str(tmp_path / "checkpoint.2")
    with open(path, "wb") as f:
        f.write(b"\xb2not a checkpoint")
    with pytest.raises(CorruptionError) as info:
        J.read_checkpoint(path)
    assert info.value.kept == "checkpoint.2.corrupt-1"
    assert _read(path) == _read(str(tmp_path / "checkpoint.2.corrupt-1"))


def test_atomic_write_leaves_no_temp_and_is_private(tmp_path):
    J.write_file_atomically(str(tmp_path), "checkpoint.1", b"data")
    assert os.listdir(tmp_path) == ["checkpoint.1"]
    assert os.stat(tmp_path / "checkpoint.1").st_mode & 0o777 == 0o600


def test_atomic_write_failure_removes_temp_and_keeps_old(tmp_path, monkeypatch):
    J.write_file_atomically(str(tmp_path), "checkpoint.1", b"old")

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(DiskFullError):
        J.write_file_atomically(str(tmp_path), "checkpoint.1", b"new")
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["checkpoint.1"]
    assert _os.read_all(str(tmp_path / "checkpoint.1")) == b"old"
