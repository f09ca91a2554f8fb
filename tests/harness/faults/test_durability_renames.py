"""Tests of the durability model's renames between directories (crash-model rule 2).

ext4, XFS and btrfs journal a rename as one transaction over both directories, and an
fsync of either commits it: after a power loss the file is under its old name or its
new one, never in neither directory and never in both. A rename no fsync of either
directory followed is undone whole.
"""

from __future__ import annotations

import os
import random
import types

import pytest

from harness.faults.durability import DurabilityModel

_REAL_NAMES = ("open", "read", "write", "close", "stat", "lstat", "fstat", "listdir", "mkdir",
               "rmdir", "unlink", "lseek", "ftruncate", "fsync")


class Queue:
    """A maildir-like sandbox: q/tmp, q/pending, q/processing, q/done, all durable."""

    def __init__(self, root):
        self.root = str(root)
        for sub in ("tmp", "pending", "processing", "done"):
            os.makedirs(self.p(f"q/{sub}"))
        self.model = DurabilityModel(self.root, types.SimpleNamespace(
            **{n: getattr(os, n) for n in _REAL_NAMES}))
        self.model.snapshot_all()

    def p(self, rel):
        return os.path.join(self.root, rel)

    def write(self, rel, data):
        fd = os.open(self.p(rel), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
            self.model.file_synced(fd)
        finally:
            os.close(fd)

    def rename(self, a, b, *, told=True):
        os.rename(self.p(a), self.p(b))
        if told:  # what the shim does after every rename
            self.model.renamed(self.p(a), self.p(b), os.lstat(self.p(b)).st_ino)

    def sync_dir(self, rel):
        fd = os.open(self.p(rel), os.O_RDONLY)
        try:
            os.fsync(fd)
            self.model.dir_synced(fd)
        finally:
            os.close(fd)

    def crash(self):
        return self.model.power_loss(random.Random(0))

    def where(self, name):
        """The subdirectories of q/ that hold ``name`` after the crash, with its bytes."""
        out = {}
        for sub in sorted(os.listdir(self.p("q"))):
            path = self.p(f"q/{sub}/{name}")
            if os.path.exists(path):
                with open(path, "rb") as f:
                    out[sub] = f.read()
        return out


@pytest.fixture
def q(tmp_path):
    queue = Queue(tmp_path / "sandbox")
    yield queue
    queue.model.close()


def _pending(q, name="x", data=b"e1|payload"):
    """An entry durably in pending/: written, fsynced, its directory fsynced."""
    q.write(f"q/pending/{name}", data)
    q.sync_dir("q/pending")


def test_an_fsync_of_the_source_commits_the_whole_rename(q):
    # The found case (correct_maildir, process mode): P1 claims x, pending/ -> processing/;
    # P0 enqueues y and fsyncs pending/; the power goes before P1's fsync of processing/.
    # pending/'s fsync committed the claim whole: x is in processing/, not lost.
    _pending(q)
    q.rename("q/pending/x", "q/processing/x")
    q.write("q/tmp/y", b"e2|other")
    q.rename("q/tmp/y", "q/pending/y")
    q.sync_dir("q/pending")
    q.crash()
    assert q.where("x") == {"processing": b"e1|payload"}
    assert q.where("y") == {"pending": b"e2|other"}


def test_an_fsync_of_the_target_commits_the_whole_rename(q):
    # claim made durable by processing/'s fsync only, then acked (unlink, fsync): the
    # source half was committed with the target half, so x does not come back in pending/
    _pending(q)
    q.rename("q/pending/x", "q/processing/x")
    q.sync_dir("q/processing")
    os.unlink(q.p("q/processing/x"))
    q.sync_dir("q/processing")
    said = q.crash()
    assert q.where("x") == {}
    assert said == []


def test_a_rename_neither_directory_was_fsynced_after_is_undone(q):
    _pending(q)
    q.rename("q/pending/x", "q/processing/x")
    q.sync_dir("q/done")  # an unrelated directory commits nothing of it
    said = q.crash()
    assert q.where("x") == {"pending": b"e1|payload"}
    assert said == ["restored q/pending/x (its removal was never made durable by an fsync "
                    "of q/pending/)", "dropped q/processing/x (never made durable by an "
                    "fsync of q/processing/)"]


def test_a_file_created_in_a_directory_never_fsynced_vanishes(q):
    q.write("q/pending/x", b"e1|payload")  # its data fsynced, its name not
    q.sync_dir("q/processing")
    q.crash()
    assert q.where("x") == {}


def test_a_file_created_then_renamed_and_never_dir_synced_vanishes(q):
    q.write("q/tmp/x", b"e1|payload")
    q.rename("q/tmp/x", "q/pending/x")
    q.crash()
    assert q.where("x") == {}


def test_an_fsync_of_the_directory_it_was_created_in_commits_its_move(q):
    # create and rename both changed tmp/: tmp/'s fsync commits them (and the rename's
    # half in pending/)
    q.write("q/tmp/x", b"e1|payload")
    q.rename("q/tmp/x", "q/pending/x")
    q.sync_dir("q/tmp")
    q.crash()
    assert q.where("x") == {"pending": b"e1|payload"}


@pytest.mark.parametrize("synced, left_in", [("processing", "done"), ("done", "done"),
                                             ("pending", "processing")])
def test_a_chain_of_renames_leaves_the_file_in_one_place(q, synced, left_in):
    # pending -> processing -> done. An fsync of a directory commits the renames that
    # changed it and the earlier ones of the same file: never in two places, or none.
    _pending(q)
    q.rename("q/pending/x", "q/processing/x")
    q.rename("q/processing/x", "q/done/x")
    q.sync_dir(f"q/{synced}")
    q.crash()
    assert q.where("x") == {left_in: b"e1|payload"}


def test_a_rename_then_an_unlink_fsynced_by_the_source_keeps_the_new_name(q):
    # the source's fsync commits the rename; the unlink changed processing/ only
    _pending(q)
    q.rename("q/pending/x", "q/processing/x")
    os.unlink(q.p("q/processing/x"))
    q.sync_dir("q/pending")
    q.crash()
    assert q.where("x") == {"processing": b"e1|payload"}


def test_a_rename_then_an_unlink_fsynced_by_the_target_is_gone(q):
    _pending(q)
    q.rename("q/pending/x", "q/processing/x")
    os.unlink(q.p("q/processing/x"))
    q.sync_dir("q/processing")
    q.crash()
    assert q.where("x") == {}


@pytest.mark.parametrize("synced", ["tmp", "pending"])
def test_a_rename_onto_an_existing_name_replaces_it_in_the_same_transaction(q, synced):
    _pending(q, data=b"old")
    q.write("q/tmp/x", b"new")
    q.sync_dir("q/tmp")
    q.rename("q/tmp/x", "q/pending/x")
    q.sync_dir(f"q/{synced}")
    q.crash()
    assert q.where("x") == {"pending": b"new"}


def test_a_rename_onto_an_existing_name_undone_brings_both_back(q):
    _pending(q, data=b"old")
    q.write("q/tmp/x", b"new")
    q.sync_dir("q/tmp")
    q.rename("q/tmp/x", "q/pending/x")
    q.crash()
    assert q.where("x") == {"pending": b"old", "tmp": b"new"}


def test_a_rename_onto_a_name_an_earlier_rename_placed_commits_both_in_order(q):
    # processing/x -> pending/x (pending), then tmp/x -> pending/x replaces it; tmp/'s
    # fsync commits the second, so the first (its name in common) before it
    q.write("q/processing/x", b"first")
    q.sync_dir("q/processing")
    q.write("q/tmp/x", b"second")
    q.sync_dir("q/tmp")
    q.rename("q/processing/x", "q/pending/x")
    q.rename("q/tmp/x", "q/pending/x")
    q.sync_dir("q/tmp")
    q.crash()
    assert q.where("x") == {"pending": b"second"}


def test_a_rename_within_one_directory_is_as_before(q):
    _pending(q)
    q.rename("q/pending/x", "q/pending/y")
    q.sync_dir("q/processing")
    q.crash()
    assert q.where("x") == {"pending": b"e1|payload"} and q.where("y") == {}


def test_a_chain_through_a_rename_within_a_directory_leaves_the_file_in_one_place(q):
    # pending/x -> processing/x -> processing/y -> done/y; within-directory renames are
    # not told to the model, yet done/'s fsync must not leave x behind in processing/
    _pending(q)
    q.rename("q/pending/x", "q/processing/x")
    q.sync_dir("q/processing")
    q.rename("q/processing/x", "q/processing/y", told=False)
    q.rename("q/processing/y", "q/done/y")
    q.sync_dir("q/done")
    q.crash()
    assert q.where("x") == {} and q.where("y") == {"done": b"e1|payload"}
