"""Tests of the durability model while other processes change the tree under it.

In process mode the model lives in the parent and reads the sandbox while the other
workers go on with their own calls: a rename or unlink can land between two steps of
one of the model's walks. Such a walk must neither forget what an fsync made durable
nor fail (the parent would never answer the worker that asked: a hang).
"""

from __future__ import annotations

import os
import random
import types

from harness.faults.durability import DurabilityModel

_REAL_NAMES = ("open", "read", "write", "close", "stat", "lstat", "fstat", "listdir", "mkdir",
               "rmdir", "unlink", "lseek", "ftruncate", "fsync")


def _racing(after_listing: str, race):
    """The real os calls, but ``race()`` runs once, right after the first listdir of a
    path ending in ``after_listing``: another process's call landing mid-walk."""
    calls = {n: getattr(os, n) for n in _REAL_NAMES}
    armed = [True]

    def listdir(path):
        names = os.listdir(path)
        if armed[0] and str(path).endswith(after_listing):
            armed[0] = False
            race()
        return names

    calls["listdir"] = listdir
    return types.SimpleNamespace(**calls), armed


def _sync(model, path, data=None):
    fd = os.open(path, os.O_RDONLY if data is None else os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        if data is not None:
            os.write(fd, data)
        os.fsync(fd)
        (model.dir_synced if data is None else model.file_synced)(fd)
    finally:
        os.close(fd)


def _queue(tmp_path, after_listing, race):
    root = tmp_path / "sandbox"
    for sub in ("tmp", "pending", "processing"):
        (root / "q" / sub).mkdir(parents=True)
    real, armed = _racing(after_listing, race)
    armed[0] = False  # not during the snapshot
    model = DurabilityModel(str(root), real)
    model.snapshot_all()
    return root, model, armed


def test_a_rename_during_a_walk_keeps_the_files_synced_data(tmp_path):
    # Process A wrote and fsynced tmp/x; process B fsyncs processing/, and the model's
    # walk lists pending/ just before A renames tmp/x into it and tmp/ just after, so
    # the walk sees x nowhere. Then A fsyncs pending/ and the power goes: x was fsynced,
    # its data must be there (it came back empty: "corrupt" on a correct maildir queue).
    root = tmp_path / "sandbox"
    tmp, pending = root / "q" / "tmp" / "x", root / "q" / "pending" / "x"
    _root, model, armed = _queue(tmp_path, "pending", lambda: os.rename(tmp, pending))
    _sync(model, str(tmp), b"e4|payload")
    armed[0] = True
    _sync(model, str(root / "q" / "processing"))
    assert not armed[0], "the race did not run"
    _sync(model, str(root / "q" / "pending"))
    model.power_loss(random.Random(0))
    assert pending.read_bytes() == b"e4|payload"
    model.close()


def test_a_name_removed_during_a_walk_is_not_an_error(tmp_path):
    # B unlinks pending/y between the model's listing of pending/ and its lstat of y.
    root = tmp_path / "sandbox"
    y = root / "q" / "pending" / "y"
    _root, model, armed = _queue(tmp_path, "pending", lambda: os.unlink(y))
    _sync(model, str(y), b"e5|payload")
    armed[0] = True
    _sync(model, str(root / "q" / "pending"))  # raised FileNotFoundError
    assert not armed[0], "the race did not run"
    model.power_loss(random.Random(0))
    assert not y.exists()  # y was never made durable by an fsync of pending/
    model.close()


def test_a_rename_told_after_an_fsync_that_saw_it_is_committed_whole(tmp_path):
    # P1 renames pending/x into processing/; before the parent hears of it, it serves
    # P0's fsync of pending/, whose listing has x gone already. P1's report then comes:
    # that fsync committed the rename whole, so x is in processing/ after the power loss.
    root = tmp_path / "sandbox"
    pending, processing = root / "q" / "pending" / "x", root / "q" / "processing" / "x"
    _root, model, _armed = _queue(tmp_path, "-", lambda: None)
    _sync(model, str(pending), b"e6|payload")
    _sync(model, str(root / "q" / "pending"))
    os.rename(pending, processing)
    _sync(model, str(root / "q" / "pending"))
    model.renamed(str(pending), str(processing), os.lstat(processing).st_ino)
    model.power_loss(random.Random(0))
    assert processing.read_bytes() == b"e6|payload" and not pending.exists()
    model.close()


def test_a_rename_told_after_an_fsync_of_its_target_is_committed_whole(tmp_path):
    root = tmp_path / "sandbox"
    pending, processing = root / "q" / "pending" / "x", root / "q" / "processing" / "x"
    _root, model, _armed = _queue(tmp_path, "-", lambda: None)
    _sync(model, str(pending), b"e7|payload")
    _sync(model, str(root / "q" / "pending"))
    os.rename(pending, processing)
    _sync(model, str(root / "q" / "processing"))
    model.renamed(str(pending), str(processing), os.lstat(processing).st_ino)
    model.power_loss(random.Random(0))
    assert processing.read_bytes() == b"e7|payload" and not pending.exists()
    model.close()
