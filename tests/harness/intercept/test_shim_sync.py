"""Durability that does not go through fsync(fd) alone: O_SYNC/O_DSYNC writes, os.sync(),
and the renames the shim tells the model of (one fsync commits both directories' halves)."""

from __future__ import annotations

import os
import random
import shutil

import pytest

from harness.check.history import History
from harness.faults.actions import PowerCut
from harness.faults.durability import DurabilityModel
from harness.intercept.shim import ProcessorKilled, installed


class CutAtCall:
    """A plan that cuts the power at the first call of ``kind``."""

    def __init__(self, kind):
        self.kind = kind

    def decide(self, call):
        if call.kind == self.kind:
            return PowerCut(fault="PowerLoss()", kind="power_loss")
        return None


def run_then_cut(tmp_path, body):
    sandbox = tmp_path / "box"
    sandbox.mkdir()
    with installed(sandbox=str(sandbox), history=History(), plan=CutAtCall("listdir"),
                   rng=random.Random(1)) as shim:
        model = DurabilityModel(str(sandbox), shim.real)
        model.snapshot_all()
        shim.model = model
        try:
            with shim.processor(0):
                body(str(sandbox))
                try:
                    os.listdir(str(sandbox))  # the power goes here
                except ProcessorKilled:
                    pass
        finally:
            model.close()
    return sandbox


@pytest.mark.parametrize("flags,kept", [(os.O_DSYNC, b"durable without fsync"), (0, b"")],
                         ids=["o_dsync_counts_as_synced", "plain_write_is_still_lost"])
def test_a_write_is_kept_by_a_power_cut_only_when_synced(tmp_path, flags, kept):
    def body(box):
        fd = os.open(os.path.join(box, "log"), os.O_WRONLY | os.O_CREAT | flags, 0o600)
        dfd = os.open(box, os.O_RDONLY)
        os.fsync(dfd)  # the name is made durable the usual way
        os.close(dfd)
        os.write(fd, b"durable without fsync")
        os.close(fd)

    box = run_then_cut(tmp_path, body)
    assert (box / "log").read_bytes() == kept


def test_os_sync_makes_everything_durable(tmp_path):
    def body(box):
        os.makedirs(os.path.join(box, "q"))
        with open(os.path.join(box, "q", "state"), "wb") as f:
            f.write(b"synced by sync(2)")
        os.sync()

    box = run_then_cut(tmp_path, body)
    assert (box / "q" / "state").read_bytes() == b"synced by sync(2)"


@pytest.mark.parametrize("module, name", [(os, "rename"), (os, "replace"), (shutil, "move")])
def test_a_rename_is_committed_whole_by_an_fsync_of_its_source_directory(tmp_path, module, name):
    def body(box):
        move = getattr(module, name)  # looked up now: the shim's wrapper
        for sub in ("pending", "processing"):
            os.makedirs(os.path.join(box, "q", sub))
        with open(os.path.join(box, "q", "pending", "x"), "wb") as f:
            f.write(b"e1|payload")
            f.flush()
            os.fsync(f.fileno())
        os.sync()  # all of it durable, as at a snapshot
        move(os.path.join(box, "q", "pending", "x"), os.path.join(box, "q", "processing", "x"))
        dfd = os.open(os.path.join(box, "q", "pending"), os.O_RDONLY)
        os.fsync(dfd)  # processing/ is never fsynced: the rename is durable all the same
        os.close(dfd)

    box = run_then_cut(tmp_path, body)
    assert (box / "q" / "processing" / "x").read_bytes() == b"e1|payload"
    assert not (box / "q" / "pending" / "x").exists()


def test_a_move_into_or_out_of_the_sandbox_is_a_create_or_an_unlink(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "in").write_bytes(b"came in")

    def body(box):
        with open(os.path.join(box, "out"), "wb") as f:
            f.write(b"goes out")
        os.sync()
        os.rename(str(outside / "in"), os.path.join(box, "in"))
        os.rename(os.path.join(box, "out"), str(outside / "out"))
        dfd = os.open(box, os.O_RDONLY)
        os.fsync(dfd)
        os.close(dfd)

    box = run_then_cut(tmp_path, body)
    assert sorted(p.name for p in box.iterdir()) == ["in"]
    assert (box / "in").read_bytes() == b""  # its name made durable, its data never fsynced
