"""Tests of the durability model: what a power loss keeps, and what it undoes."""

from __future__ import annotations

import os
import random
import types

import pytest

from harness.faults.durability import SECTOR, DurabilityModel

_REAL_NAMES = ("open", "read", "write", "close", "stat", "lstat", "fstat", "listdir", "mkdir",
               "rmdir", "unlink", "lseek", "ftruncate", "fsync")


def _real():
    # looked up at call time, so under pyfakefs these are the fake functions
    return types.SimpleNamespace(**{n: getattr(os, n) for n in _REAL_NAMES})


class Disk:
    """A tiny target: writes files and fsyncs them the way a queue would, telling the model."""

    def __init__(self, root, model):
        self.root, self.model = str(root), model

    def p(self, rel):
        return os.path.join(self.root, rel)

    def write(self, rel, data, *, sync=False, append=False):
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
        fd = os.open(self.p(rel), flags, 0o600)
        try:
            os.write(fd, data)
            if sync:
                os.fsync(fd)
                self.model.file_synced(fd)
        finally:
            os.close(fd)

    def sync_dir(self, rel=""):
        fd = os.open(self.p(rel) if rel else self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
            self.model.dir_synced(fd)
        finally:
            os.close(fd)

    def read(self, rel):
        with open(self.p(rel), "rb") as f:
            return f.read()

    def exists(self, rel):
        return os.path.exists(self.p(rel))

    def crash(self, seed=0, torn=None, names="strict"):
        return self.model.power_loss(random.Random(seed), torn, names)


@pytest.fixture
def disk(tmp_path):
    root = tmp_path / "sandbox"
    (root / "q").mkdir(parents=True)
    (root / "q" / "queue.json").write_bytes(b'["old"]')
    model = DurabilityModel(str(root), _real())
    model.snapshot_all()
    return Disk(root, model)


def test_unsynced_data_is_lost(disk):
    disk.write("q/queue.json", b'["new", "unsynced"]')
    said = disk.crash()
    assert disk.read("q/queue.json") == b'["old"]'
    assert said == ["rolled back q/queue.json to its content when the run started (7 of 19 bytes)"]


def test_synced_data_is_kept(disk):
    disk.write("q/queue.json", b'["new"]', sync=True)
    disk.write("q/queue.json", b"more", append=True)
    said = disk.crash()
    assert disk.read("q/queue.json") == b'["new"]'
    assert said == ["rolled back q/queue.json to its last fsync (7 of 11 bytes)"]


def test_rename_without_dir_fsync_is_undone(disk):
    disk.write("q/queue.json.tmp", b'["new"]', sync=True)
    os.replace(disk.p("q/queue.json.tmp"), disk.p("q/queue.json"))
    said = disk.crash()
    assert disk.read("q/queue.json") == b'["old"]'
    assert not disk.exists("q/queue.json.tmp")
    assert said == ["restored q/queue.json (the rename onto it was never made durable by an "
                    "fsync of q/)"]


def test_rename_with_dir_fsync_is_kept(disk):
    disk.write("q/queue.json.tmp", b'["new"]', sync=True)
    os.replace(disk.p("q/queue.json.tmp"), disk.p("q/queue.json"))
    disk.sync_dir("q")
    assert disk.crash() == []
    assert disk.read("q/queue.json") == b'["new"]'
    assert sorted(os.listdir(disk.p("q"))) == ["queue.json"]


def test_new_file_without_dir_fsync_is_dropped(disk):
    disk.write("q/pending-1", b"e1|hello")
    said = disk.crash()
    assert not disk.exists("q/pending-1")
    assert said == ["dropped q/pending-1 (never made durable by an fsync of q/)"]


def test_file_fsynced_but_creation_not_dir_synced_is_dropped(disk):
    disk.write("q/pending-1", b"e1|hello", sync=True)
    disk.crash()
    assert not disk.exists("q/pending-1")


def test_created_and_dir_synced_but_data_not_fsynced_is_empty(disk):
    disk.write("q/pending-1", b"e1|hello")
    disk.sync_dir("q")
    said = disk.crash()
    assert disk.read("q/pending-1") == b""
    assert said == ["rolled back q/pending-1 to empty (its data was never fsynced) (0 of 8 bytes)"]


def test_unlink_without_dir_fsync_is_undone(disk):
    os.unlink(disk.p("q/queue.json"))
    said = disk.crash()
    assert disk.read("q/queue.json") == b'["old"]'
    assert said == ["restored q/queue.json (its removal was never made durable by an fsync of q/)"]


def test_unlink_with_dir_fsync_is_kept(disk):
    os.unlink(disk.p("q/queue.json"))
    disk.sync_dir("q")
    disk.crash()
    assert os.listdir(disk.p("q")) == []


def test_mkdir_without_parent_dir_fsync_is_dropped(disk):
    os.mkdir(disk.p("q/pending"))
    disk.write("q/pending/1", b"e1|x", sync=True)
    disk.sync_dir("q/pending")
    said = disk.crash()
    assert not disk.exists("q/pending")
    assert said == ["dropped q/pending/ (never made durable by an fsync of q/)"]


def test_new_directory_synced_by_parent_only_is_empty(disk):
    os.mkdir(disk.p("q/pending"))
    disk.write("q/pending/1", b"e1|x", sync=True)
    disk.sync_dir("q")
    disk.crash()
    assert os.listdir(disk.p("q/pending")) == []


def test_full_recipe_for_a_new_directory_is_kept(disk):
    os.mkdir(disk.p("q/pending"))
    disk.write("q/pending/1", b"e1|x", sync=True)
    disk.sync_dir("q/pending")
    disk.sync_dir("q")
    assert disk.crash() == []
    assert disk.read("q/pending/1") == b"e1|x"


def test_incident_save_sequence_rolls_back_to_the_old_queue(disk):
    # the legacy save: fixed temp name, delete, move; no fsync anywhere
    disk.write("q/queue.json.tmp", b'["old", "e1"]')
    os.unlink(disk.p("q/queue.json"))
    os.rename(disk.p("q/queue.json.tmp"), disk.p("q/queue.json"))
    said = disk.crash()
    assert disk.read("q/queue.json") == b'["old"]'
    assert sorted(os.listdir(disk.p("q"))) == ["queue.json"]
    assert said == ["restored q/queue.json (the rename onto it was never made durable by an "
                    "fsync of q/)"]


def test_correct_recipe_keeps_the_new_content(disk):
    disk.write("q/queue.json.tmp", b'["old", "e1"]', sync=True)
    os.replace(disk.p("q/queue.json.tmp"), disk.p("q/queue.json"))
    disk.sync_dir("q")
    assert disk.crash() == []
    assert disk.read("q/queue.json") == b'["old", "e1"]'


def test_second_save_does_not_lend_new_content_to_the_old_name(disk):
    # two legacy saves: the second temp file may get the inode number the first save
    # freed; the durable name must still show its own old bytes
    for n in range(3):
        disk.write("q/queue.json.tmp", b'["save %d"]' % n, sync=True)
        os.unlink(disk.p("q/queue.json"))
        os.rename(disk.p("q/queue.json.tmp"), disk.p("q/queue.json"))
    disk.crash()
    assert disk.read("q/queue.json") == b'["old"]'


def test_file_synced_after_it_was_renamed_is_found(disk):
    disk.write("q/a", b"1")
    disk.sync_dir("q")
    os.rename(disk.p("q/a"), disk.p("q/b"))
    fd = os.open(disk.p("q/b"), os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"23")
    os.fsync(fd)
    disk.model.file_synced(fd)
    os.close(fd)
    disk.crash()
    assert disk.read("q/a") == b"123" and not disk.exists("q/b")


def test_removed_by_fault_is_durably_gone(disk):
    import shutil
    shutil.rmtree(disk.p("q"))
    disk.model.removed_by_fault(disk.p("q"))
    assert disk.crash() == []
    assert os.listdir(disk.root) == []


def _torn_setup(tmp_path, seed, torn):
    root = tmp_path / f"torn-{torn}-{seed}"
    root.mkdir()
    old = b"A" * (2 * SECTOR)
    (root / "log").write_bytes(old)
    disk = Disk(root, DurabilityModel(str(root), _real()))
    disk.model.snapshot_all()
    new = bytes(range(256)) * 24  # 6144 bytes: 12 sectors, all differ from "A"
    disk.write("log", new)
    said = disk.crash(seed, torn)
    return old, new, disk.read("log"), said


def test_torn_prefix_keeps_a_sector_aligned_prefix(tmp_path):
    outcomes = set()
    for seed in range(12):
        old, new, got, said = _torn_setup(tmp_path, seed, "prefix")
        k = max(k for k in range(13) if got[:k * SECTOR] == new[:k * SECTOR])
        assert got[k * SECTOR:] == old[k * SECTOR:]  # the rest is the old bytes, or nothing
        assert len(got) == (len(new) if k == 12 else max(len(old), k * SECTOR))
        assert said == ([] if k == 12 else [
            f"tore log: kept {k} of 12 sectors that were not yet durable "
            f"({len(got)} of {len(new)} bytes)"])
        outcomes.add(k)
    assert len(outcomes) > 3


def test_torn_sectors_are_deterministic_for_a_seed(tmp_path):
    a = _torn_setup(tmp_path, 5, "sectors")
    root2 = tmp_path / "again"
    root2.mkdir()
    b = _torn_setup(root2, 5, "sectors")
    assert a[2] == b[2] and a[3] == b[3]
    old, new, got, _ = a
    for i in range(len(got) // SECTOR):
        sector = got[i * SECTOR:(i + 1) * SECTOR]
        assert sector in (new[i * SECTOR:(i + 1) * SECTOR], old[i * SECTOR:(i + 1) * SECTOR],
                          bytes(SECTOR))
    results = {_torn_setup(tmp_path, s, "sectors")[2] for s in range(6, 12)}
    assert len(results) > 1


def test_nothing_outside_the_root_is_touched(tmp_path, disk):
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"keep me")
    before = sorted(os.listdir(tmp_path))
    disk.write("q/new", b"x")
    disk.crash()
    assert outside.read_bytes() == b"keep me"
    assert sorted(os.listdir(tmp_path)) == before
    with pytest.raises(AssertionError):
        disk.model.removed_by_fault(str(tmp_path / "outside.txt"))


def test_modes_are_kept(disk):
    os.chmod(disk.p("q/queue.json"), 0o640)
    disk.model.snapshot_all()
    disk.write("q/queue.json", b"x")
    disk.crash()
    assert os.stat(disk.p("q/queue.json")).st_mode & 0o777 == 0o640


def test_second_crash_with_nothing_new_changes_nothing(disk):
    disk.write("q/queue.json", b"lost")
    disk.crash()
    assert disk.crash() == []
    assert disk.read("q/queue.json") == b'["old"]'


# -- names="eager": every name change persists, file data only as fsynced (rule 6)


def _rename_before_fsync(disk):
    """write tmp -> rename onto queue.json -> (the power goes here) -> fsync -> dirsync"""
    disk.write("q/queue.json.tmp", b'["old", "e1"]')
    os.replace(disk.p("q/queue.json.tmp"), disk.p("q/queue.json"))


def _correct_recipe(disk):
    """write tmp -> fsync tmp -> rename -> (the power goes here) -> dirsync"""
    disk.write("q/queue.json.tmp", b'["old", "e1"]', sync=True)
    os.replace(disk.p("q/queue.json.tmp"), disk.p("q/queue.json"))


def test_rename_before_fsync_survives_strict(disk):
    _rename_before_fsync(disk)
    disk.crash(names="strict")
    assert disk.read("q/queue.json") == b'["old"]'  # the rename is undone with its data


def test_rename_before_fsync_loses_the_queue_under_eager(disk):
    _rename_before_fsync(disk)
    said = disk.crash(names="eager")
    assert disk.read("q/queue.json") == b""  # the old content is gone, the new never synced
    assert sorted(os.listdir(disk.p("q"))) == ["queue.json"]
    assert said == ["rolled back q/queue.json to empty (its data was never fsynced) "
                    "(0 of 13 bytes)"]


@pytest.mark.parametrize("names", ["strict", "eager"])
def test_correct_recipe_survives_both_flavours(disk, names):
    _correct_recipe(disk)
    disk.crash(names=names)
    # strict: the rename was not durable yet, the old queue is whole; eager: the new one is
    assert disk.read("q/queue.json") == {"strict": b'["old"]', "eager": b'["old", "e1"]'}[names]
    disk.write("q/queue.json.tmp", b'["e2"]', sync=True)
    os.replace(disk.p("q/queue.json.tmp"), disk.p("q/queue.json"))
    disk.sync_dir("q")
    assert disk.crash(names=names) == [] and disk.read("q/queue.json") == b'["e2"]'


def test_eager_keeps_names_but_only_synced_data(disk):
    disk.write("q/queue.json", b'["old", "unsynced"]')  # in place, never fsynced
    disk.write("q/synced", b"kept", sync=True)  # created, fsynced, dir never synced
    disk.write("q/unsynced", b"lost")
    os.mkdir(disk.p("q/sub"))
    disk.write("q/sub/x", b"y")
    said = disk.crash(names="eager")
    assert disk.read("q/queue.json") == b'["old"]'
    assert disk.read("q/synced") == b"kept" and disk.read("q/unsynced") == b""
    assert disk.read("q/sub/x") == b""
    assert sorted(said) == [
        "rolled back q/queue.json to its content when the run started (7 of 19 bytes)",
        "rolled back q/sub/x to empty (its data was never fsynced) (0 of 1 bytes)",
        "rolled back q/unsynced to empty (its data was never fsynced) (0 of 4 bytes)"]
    assert disk.crash(names="eager") == []  # all of it is durable now


def test_eager_keeps_an_unlink_and_a_fault_removal(disk):
    import shutil
    os.unlink(disk.p("q/queue.json"))
    assert disk.crash(names="eager") == [] and os.listdir(disk.p("q")) == []
    disk.write("q/a", b"1", sync=True)
    shutil.rmtree(disk.p("q"))
    disk.model.removed_by_fault(disk.p("q"))
    assert disk.crash(names="eager") == [] and os.listdir(disk.root) == []


def test_eager_tears_too(tmp_path):
    root = tmp_path / "eager-torn"
    root.mkdir()
    disk = Disk(root, DurabilityModel(str(root), _real()))
    disk.model.snapshot_all()
    new = bytes(range(256)) * 8  # 4 sectors, never fsynced
    got = set()
    for seed in range(8):
        disk.write("log", new)
        said = disk.crash(seed, "prefix", "eager")
        data = disk.read("log")
        k = len(data) // SECTOR
        assert data == new[:k * SECTOR] and (k == 4 or said[0].startswith("tore log: kept"))
        got.add(k)
    assert len(got) > 1


def test_power_loss_refuses_unknown_flavours(disk):
    with pytest.raises(ValueError, match="torn='half'; expected None, 'prefix', 'sectors' "
                                         "or 'holes'"):
        disk.crash(torn="half")
    with pytest.raises(ValueError, match="names='lazy'; expected 'strict' or 'eager'"):
        disk.crash(names="lazy")


def test_under_pyfakefs(fs):
    fs.create_file("/sandbox/q/queue.json", contents=b'["old"]')
    model = DurabilityModel("/sandbox", _real())
    model.snapshot_all()
    disk = Disk("/sandbox", model)
    # the incident's save: lost
    disk.write("q/queue.json.tmp", b'["new"]')
    os.unlink(disk.p("q/queue.json"))
    os.rename(disk.p("q/queue.json.tmp"), disk.p("q/queue.json"))
    assert disk.crash() and disk.read("q/queue.json") == b'["old"]'
    # the correct recipe: kept
    disk.write("q/queue.json.tmp", b'["new"]', sync=True)
    os.replace(disk.p("q/queue.json.tmp"), disk.p("q/queue.json"))
    disk.sync_dir("q")
    assert disk.crash() == []
    assert disk.read("q/queue.json") == b'["new"]'
    # rename before fsync: survives strict, loses the queue under eager
    for names, left in (("strict", b'["new"]'), ("eager", b"")):
        _rename_before_fsync(disk)
        disk.crash(names=names)
        assert disk.read("q/queue.json") == left


# -- a failed fsync (rule 7): the dropped pages stay dropped


PAGE = 4096


def _failed_fsync(disk, rel, data, *, append=False):
    """Write ``data`` to ``rel``; its fsync fails with EIO (the model is told so)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else 0)
    fd = os.open(disk.p(rel), flags, 0o600)
    try:
        os.write(fd, data)
        disk.model.file_sync_failed(fd)
    finally:
        os.close(fd)


def _write_at(disk, rel, offset, data, *, sync=True):
    """pwrite ``data`` at ``offset``, told to the model as the shim tells it, then fsync."""
    fd = os.open(disk.p(rel), os.O_WRONLY)
    try:
        os.lseek(fd, offset, os.SEEK_SET)
        n = os.write(fd, data)
        disk.model.file_written(fd, offset, offset + n)
        if sync:
            os.fsync(fd)
            disk.model.file_synced(fd)
    finally:
        os.close(fd)


@pytest.fixture
def log(tmp_path):
    """A durable 1-page file 'log' of b"A"s in a durable directory."""
    root = tmp_path / "box"
    root.mkdir()
    (root / "log").write_bytes(b"A" * PAGE)
    model = DurabilityModel(str(root), _real())
    model.snapshot_all()
    return Disk(root, model)


def test_a_failed_fsync_makes_nothing_durable_and_reads_still_see_the_data(log):
    _failed_fsync(log, "log", b"B" * PAGE)  # overwrites page 0 in place
    assert log.read("log") == b"B" * PAGE  # the page cache keeps it
    assert log.model.dropping
    said = log.crash()
    assert log.read("log") == b"A" * PAGE
    assert any("a failed fsync dropped" in s for s in said), said


def test_a_later_successful_fsync_does_not_bring_dropped_pages_back(log):
    _failed_fsync(log, "log", b"B" * 100, append=True)  # page 0 gains 100 bytes: dropped
    # written past the dropped page, then fsynced: that fsync succeeds
    _write_at(log, "log", 3 * PAGE, b"C" * 10)
    log.crash()
    got = log.read("log")
    assert len(got) == 3 * PAGE + 10  # the later fsync made the new length durable
    assert got[:PAGE] == b"A" * PAGE  # page 0 as before the failure...
    assert got[PAGE:PAGE + 100] == bytes(100)  # ...the appended bytes read as zeros
    assert got[3 * PAGE:] == b"C" * 10


def test_writing_a_dropped_page_again_makes_all_of_it_durable(log):
    _failed_fsync(log, "log", b"B" * 100, append=True)
    # one byte in the dropped page dirties the whole page, the dropped bytes included
    _write_at(log, "log", PAGE + 100, b"C")
    assert not log.model.dropping
    log.crash()
    assert log.read("log") == b"A" * PAGE + b"B" * 100 + b"C"


def test_writing_the_head_of_a_dropped_page_dirties_its_tail_too(log):
    _failed_fsync(log, "log", b"B" * PAGE, append=True)  # page 1 dropped, all of it
    _write_at(log, "log", PAGE, b"C")
    log.crash()
    assert log.read("log") == b"A" * PAGE + b"C" + b"B" * (PAGE - 1)


def test_without_a_failure_every_fsync_is_whole(log):
    # the control for the two tests above: the same writes, the fsync succeeding
    with open(log.p("log"), "ab") as f:
        f.write(b"B" * 100)
    _write_at(log, "log", 3 * PAGE, b"C" * 10)
    log.crash()
    assert log.read("log")[PAGE:PAGE + 100] == b"B" * 100


def test_truncating_over_dropped_pages_forgets_them(log):
    _failed_fsync(log, "log", b"B" * PAGE, append=True)  # page 1 dropped
    fd = os.open(log.p("log"), os.O_WRONLY)
    try:
        os.ftruncate(fd, PAGE)
        log.model.file_written(fd, PAGE, None)
        os.lseek(fd, PAGE, os.SEEK_SET)
        os.write(fd, b"D" * 10)  # not told: a truncation already made it new space
        os.fsync(fd)
        log.model.file_synced(fd)
    finally:
        os.close(fd)
    log.crash()
    assert log.read("log") == b"A" * PAGE + b"D" * 10


def test_sync2_writes_dirty_pages_only_not_dropped_ones(log):
    _failed_fsync(log, "log", b"B" * PAGE)
    log.model.snapshot_all()  # what the shim does at os.sync()
    log.crash()
    assert log.read("log") == b"A" * PAGE


def test_a_failed_directory_fsync_leaves_the_entries_as_they_were(log):
    log.write("new", b"x", sync=True)
    fd = os.open(log.root, os.O_RDONLY)
    try:
        log.model.file_sync_failed(fd)  # a directory: nothing is dropped, nothing made durable
    finally:
        os.close(fd)
    assert not log.model.dropping
    log.crash()
    assert not log.exists("new")
    log.write("new", b"x", sync=True)
    log.sync_dir()  # a later directory fsync that succeeds makes the entries durable
    log.crash()
    assert log.read("new") == b"x"


def test_a_power_loss_forgets_what_was_dropped(log):
    _failed_fsync(log, "log", b"B" * PAGE)
    log.crash()
    assert not log.model.dropping
    log.write("log", b"E" * PAGE, sync=True)
    log.crash()
    assert log.read("log") == b"E" * PAGE


def test_fsync_failure_under_pyfakefs(fs):
    fs.create_file("/box/log", contents=b"A" * PAGE)
    model = DurabilityModel("/box", _real())
    model.snapshot_all()
    disk = Disk("/box", model)
    _failed_fsync(disk, "log", b"B" * 100, append=True)
    _write_at(disk, "log", 3 * PAGE, b"C" * 10)
    disk.crash()
    got = disk.read("log")
    assert got[:PAGE] == b"A" * PAGE and got[PAGE:PAGE + 100] == bytes(100)
    assert got[3 * PAGE:] == b"C" * 10


# -- torn="holes" (rule 5): fresh space may read as zeros, durable bytes never do


def test_torn_holes_zero_only_space_the_file_gained(tmp_path):
    trailing = kept_new = 0
    for seed in range(16):
        old, new, got, said = _torn_setup(tmp_path, seed, "holes")
        assert len(old) <= len(got) <= len(new)
        for i in range((len(got) + SECTOR - 1) // SECTOR):
            sector = got[i * SECTOR:(i + 1) * SECTOR]
            was, now = old[i * SECTOR:(i + 1) * SECTOR], new[i * SECTOR:(i + 1) * SECTOR]
            if i * SECTOR < len(old):
                assert sector in (was, now)  # a durable sector: old or new, never zeros
            else:
                assert sector in (now[:len(sector)], bytes(len(sector)))
        last = got[-SECTOR:]
        trailing += last == bytes(SECTOR)  # the size reached the disk, its data did not
        kept_new += got[2 * SECTOR:3 * SECTOR] == new[2 * SECTOR:3 * SECTOR]
        assert got == new or said[0].startswith("tore log: kept")
    assert trailing and kept_new  # both shapes turn up


def test_torn_holes_are_deterministic_for_a_seed(tmp_path):
    a = _torn_setup(tmp_path, 3, "holes")
    root2 = tmp_path / "again"
    root2.mkdir()
    assert _torn_setup(root2, 3, "holes")[2:] == a[2:]
    assert len({_torn_setup(tmp_path, s, "holes")[2] for s in range(4, 10)}) > 1


def test_torn_sectors_never_end_in_a_zeroed_sector(tmp_path):
    # what "holes" adds: "sectors" stretches the file only to a sector that persisted
    for seed in range(16):
        _old, new, got, _said = _torn_setup(tmp_path, seed, "sectors")
        assert got == new or len(got) == 2 * SECTOR or got[-SECTOR:] != bytes(SECTOR)
