import errno
import os

import pytest

from persistence import _os
from persistence import journal as J
from persistence.errors import CorruptionError, DiskFullError

RECORDS = [
    J.rec_enqueue("a-1", b"\x00\xff binary \xc3\x28"),
    J.rec_enqueue("a-2", b""),
    J.rec_claim("a-1", "worker é", "tok"),
    J.rec_fail("a-1", False, "reason ✓"),
    J.rec_ack("a-2"),
    J.rec_requeue("a-1"),
    J.rec_seal(7),
]


def test_records_round_trip_byte_for_byte():
    records, valid = J.scan(b"".join(RECORDS))
    assert valid == sum(map(len, RECORDS))
    assert records == [
        ("E", "a-1", b"\x00\xff binary \xc3\x28"),
        ("E", "a-2", b""),
        ("C", "a-1", "worker é", "tok"),
        ("F", "a-1", False, "reason ✓"),
        ("A", "a-2"),
        ("R", "a-1"),
        ("S", 7),
    ]


@pytest.mark.parametrize("cut", [1, 5, 9, 12])
def test_scan_stops_at_a_truncated_record(cut):
    data = b"".join(RECORDS[:3])
    records, valid = J.scan(data[:-cut])
    assert len(records) == 2 and valid == len(RECORDS[0]) + len(RECORDS[1])


def test_scan_stops_at_garbage_and_flipped_bits():
    good = b"".join(RECORDS[:2])
    assert J.scan(good + b"\x00garbage")[1] == len(good)
    flipped = bytearray(good)
    flipped[-1] ^= 0x01
    assert J.scan(bytes(flipped))[0] == J.scan(good)[0][:1]


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _journal(tmp_path, data=b""):
    path = str(tmp_path / "journal.0")
    with open(path, "wb") as f:
        f.write(data)
    j, created = J.Journal.open(path, 0)
    assert not created
    return j, path


def test_torn_tail_is_cut_reported_and_logged(tmp_path, caplog):
    good = b"".join(RECORDS[:2])
    j, path = _journal(tmp_path, good + RECORDS[2][:7])
    records, cut = j.read_tail()
    assert len(records) == 2 and cut == 7
    assert os.path.getsize(path) == len(good) == j.end
    assert "torn journal tail cut" in caplog.text
    j.append(RECORDS[4], True)
    assert J.scan(_read(path))[1] == len(good) + len(RECORDS[4])
    j.close()


def test_failed_append_leaves_the_file_unchanged(tmp_path, monkeypatch):
    j, path = _journal(tmp_path, RECORDS[0])
    j.read_tail()
    real = os.write

    def short_then_full(fd, data):
        if len(data) > 5:
            return real(fd, bytes(data[:5]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", short_then_full)
    with pytest.raises(DiskFullError):
        j.append(RECORDS[1] + RECORDS[2], True)
    monkeypatch.undo()
    assert _read(path) == RECORDS[0]
    j.append(RECORDS[1], True)  # works again once space is back
    assert J.scan(_read(path))[1] == len(RECORDS[0]) + len(RECORDS[1])
    j.close()


def test_failed_rollback_is_repaired_before_next_append(tmp_path, monkeypatch):
    j, path = _journal(tmp_path, RECORDS[0])
    j.read_tail()

    def eio(fd):
        raise OSError(errno.EIO, "Input/output error")

    def no_truncate(fd, size):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", eio)
    monkeypatch.setattr(os, "ftruncate", no_truncate)
    with pytest.raises(CorruptionError):
        j.append(RECORDS[1][:-2] + b"xx", True)  # a record whose CRC will not match
    monkeypatch.undo()
    records, cut = j.read_tail()
    assert records == [] and cut == len(RECORDS[1])
    assert _read(path) == RECORDS[0]
    j.close()


def test_checkpoint_round_trip_and_invalid_forms():
    entries = [
        ("a-1", "PENDING", 2, "", "", "r", b"\x00p"),
        ("a-2", "FAILED", 5, "o", "w", "x", b""),
    ]
    data = J.encode_checkpoint(3, entries)
    gen, body = J.decode_checkpoint(data)
    assert gen == 3
    assert [r[1:] for r in body] == [
        ("a-1", "PENDING", 2, "", "", "r", b"\x00p"),
        ("a-2", "FAILED", 5, "o", "w", "x", b""),
    ]
    assert J.decode_checkpoint(data[:-1]) is None  # no end record
    assert J.decode_checkpoint(data + b"x") is None
    assert J.decode_checkpoint(b"") is None


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
