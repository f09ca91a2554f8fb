"""FsyncFailure through the shim: EIO on the right calls, told once to every descriptor
open on the file, and the durability model dropping what it was to write; then
torn="holes" at a power cut. On the real disk and under pyfakefs (the `sandbox` fixture)."""

from __future__ import annotations

import errno
import os
import random

import pytest

from harness.check.history import History
from harness.faults import FsyncFailure, Plan, PowerLoss
from harness.faults.durability import DurabilityModel
from harness.intercept.shim import ProcessorKilled, installed

PAGE = 4096


def run(sandbox, body, *faults, cut=True):
    """Run ``body(sandbox)`` as processor 0 under ``faults`` with a durability model; then
    (``cut``) the power goes at a listdir. Returns the history."""
    plan = Plan((*faults, PowerLoss(calls=("listdir",))) if cut else faults)
    history = History()
    with installed(sandbox=sandbox, history=history, plan=plan.arm(random.Random(1)),
                   rng=random.Random(1)) as shim:
        model = DurabilityModel(sandbox, shim.real)
        model.snapshot_all()
        shim.model = model
        try:
            with shim.processor(0):
                body(sandbox)
                if cut:
                    with pytest.raises(ProcessorKilled):
                        os.listdir(sandbox)
        finally:
            model.close()
    return history


def read(sandbox, rel):
    with open(os.path.join(sandbox, rel), "rb") as f:
        return f.read()


def new_file(box, rel, data=b""):
    """A file whose name is durable (the directory fsynced), with ``data`` unsynced."""
    fd = os.open(os.path.join(box, rel), os.O_RDWR | os.O_CREAT, 0o600)
    dfd = os.open(box, os.O_RDONLY)
    os.fsync(dfd)
    os.close(dfd)
    os.write(fd, data)
    return fd


def eio(call, *args):
    with pytest.raises(OSError) as info:
        call(*args)
    assert info.value.errno == errno.EIO
    return info.value


def test_fsync_and_fdatasync_of_a_matching_file_raise_eio(sandbox):
    fault = FsyncFailure(calls=("fsync",), path="log", times=2)

    def body(box):
        fd = new_file(box, "log", b"x")
        other = new_file(box, "other", b"y")
        os.fsync(other)  # another path: not matched
        eio(os.fsync, fd)
        eio(os.fdatasync, fd)
        os.fsync(fd)  # used up (times=2)
        dfd = os.open(box, os.O_RDONLY)
        os.fsync(dfd)  # a directory: calls=("fsync",) does not match it
        os.close(dfd)
        os.sync()  # sync(2) never fails
        os.close(fd)
        os.close(other)

    h = run(sandbox, body, fault, cut=False)
    failed = [(r.call, r.path, r.outcome, r.fault) for r in h.fs_ops() if r.outcome != "ok"]
    assert failed == [("fsync", "log", "EIO", repr(fault))] * 2


def test_a_file_objects_fsync_and_a_directory_fsync_raise_eio(sandbox):
    def body(box):
        with open(os.path.join(box, "f"), "wb") as f:
            f.write(b"data")
            f.flush()
            eio(os.fsync, f.fileno())
        dfd = os.open(box, os.O_RDONLY)
        eio(os.fsync, dfd)
        os.close(dfd)

    h = run(sandbox, body, FsyncFailure(times=2), cut=False)
    assert [(r.call, r.outcome) for r in h.fs_ops() if r.outcome != "ok"] == [
        ("fsync", "EIO"), ("dirsync", "EIO")]


def test_what_a_failed_fsync_dropped_is_lost_though_a_later_fsync_succeeds(sandbox):
    seen = []

    def body(box):
        fd = new_file(box, "log", b"A" * 100)
        eio(os.fsync, fd)
        os.lseek(fd, 2 * PAGE, os.SEEK_SET)
        os.write(fd, b"B" * 10)  # another page: the dropped one is not written again
        os.fsync(fd)  # succeeds
        seen.append(read(box, "log")[:100])
        os.close(fd)

    run(sandbox, body, FsyncFailure(calls=("fsync",)))
    assert seen == [b"A" * 100]  # reads saw the dropped bytes (the page cache)
    got = read(sandbox, "log")
    assert len(got) == 2 * PAGE + 10 and got[2 * PAGE:] == b"B" * 10
    assert got[:100] == bytes(100)  # after the power loss: zeros where they were


def test_writing_the_dropped_page_again_through_a_file_object_makes_it_durable(sandbox):
    def body(box):
        with open(os.path.join(box, "log"), "w+b") as f:
            dfd = os.open(box, os.O_RDONLY)
            os.fsync(dfd)
            os.close(dfd)
            f.write(b"A" * 100)
            f.flush()
            eio(os.fsync, f.fileno())
            f.write(b"C")  # lands in the dropped page: all of the page is dirty again
            f.flush()
            os.fsync(f.fileno())

    run(sandbox, body, FsyncFailure(calls=("fsync",)))
    assert read(sandbox, "log") == b"A" * 100 + b"C"


def test_every_descriptor_open_at_the_failure_is_told_once(sandbox):
    fault = FsyncFailure(calls=("fsync",))
    outcomes = []

    def body(box):
        first = new_file(box, "log", b"A")
        second = os.open(os.path.join(box, "log"), os.O_WRONLY)
        eio(os.fsync, first)
        late = os.open(os.path.join(box, "log"), os.O_WRONLY)  # opened after the failure
        os.fsync(late)
        exc = eio(os.fsync, second)  # errseq_t: told at its next fsync...
        outcomes.append(exc.filename)
        os.fsync(second)  # ...once
        os.fsync(first)
        for fd in (first, second, late):
            os.close(fd)

    h = run(sandbox, body, fault, cut=False)
    assert outcomes == [os.path.join(sandbox, "log")]
    told = [r for r in h.fs_ops() if r.outcome == "EIO"]
    assert len(told) == 2 and all(r.fault == repr(fault) for r in told)


def test_a_later_write_fsync_on_another_descriptor_reports_the_error(sandbox):
    # The write through the second descriptor was dirty when the first one's fsync
    # failed: it is dropped too, so the second fsync must not return ok (it writes back
    # what is dirty, nothing here, and the file's length, then reports the error).
    def body(box):
        writer = new_file(box, "log", b"W" * 10)
        syncer = os.open(os.path.join(box, "log"), os.O_WRONLY)
        eio(os.fsync, syncer)
        eio(os.fsync, writer)
        os.close(writer)
        os.close(syncer)

    run(sandbox, body, FsyncFailure(calls=("fsync",)))
    assert read(sandbox, "log") == bytes(10)


def test_without_the_fault_the_same_writes_survive(sandbox):
    def body(box):
        fd = new_file(box, "log", b"A" * 100)
        os.fsync(fd)
        os.lseek(fd, 2 * PAGE, os.SEEK_SET)
        os.write(fd, b"B" * 10)
        os.fsync(fd)
        os.close(fd)

    run(sandbox, body)
    assert read(sandbox, "log")[:100] == b"A" * 100


def test_a_power_cut_with_holes_zeroes_only_fresh_sectors(sandbox):
    fault = PowerLoss(calls=("fsync",), path="log", torn="holes")
    outcomes = set()
    for seed in range(8):
        box = os.path.join(sandbox, f"s{seed}")
        os.mkdir(box)
        with open(os.path.join(box, "log"), "wb") as f:
            f.write(b"A" * 512)
        history = History()
        with installed(sandbox=box, history=history, plan=Plan((fault,)).arm(
                random.Random(seed)), rng=random.Random(seed)) as shim:
            model = DurabilityModel(box, shim.real)
            model.snapshot_all()
            shim.model = model
            try:
                with shim.processor(0):
                    fd = os.open(os.path.join(box, "log"), os.O_WRONLY | os.O_APPEND)
                    os.write(fd, b"B" * 2048)
                    with pytest.raises(ProcessorKilled):
                        os.fsync(fd)
            finally:
                model.close()
        got = read(box, "log")
        assert got[:512] == b"A" * 512  # a durable sector is never zeroed
        sectors = [got[i:i + 512] for i in range(512, len(got), 512)]
        assert all(s in (b"B" * 512, bytes(512)) for s in sectors)
        outcomes.add(tuple(s[:1] for s in sectors))
    assert any(o and o[-1] == b"\0" for o in outcomes)  # a file ending in a NUL hole
