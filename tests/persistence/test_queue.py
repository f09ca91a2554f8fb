import errno
import os
import shutil
import stat

import pytest

from persistence import (
    CorruptionError,
    DiskFullError,
    InvalidTransitionError,
    PayloadTooLargeError,
    PermissionDeniedError,
    QueueClosedError,
    StorageMissingError,
    UnknownEntryError,
    open_queue,
)
from persistence import _records as R

# -- API contract ----------------------------------------------------------------------


def test_lifecycle_fifo_and_states(queue):
    a, b = queue.enqueue(b"a"), queue.enqueue(b"b")
    assert queue.states() == {a: "PENDING", b: "PENDING"}
    assert queue.claim("w") == (a, b"a")
    assert queue.states()[a] == "PROCESSING"
    queue.ack(a)
    assert queue.states() == {a: "DELIVERED", b: "PENDING"}
    assert queue.claim("w") == (b, b"b")
    assert queue.claim("w") is None
    stats = queue.stats()
    assert (stats["DELIVERED"], stats["PROCESSING"], stats["PENDING"]) == (1, 1, 0)


PAYLOADS = [b"", b"\x00\xff\xfe", "é".encode("latin-1"), bytes(range(256))]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payloads_round_trip_byte_for_byte_across_reopen(qdir, payload):
    with open_queue(qdir) as q:
        entry_id = q.enqueue(payload)
    with open_queue(qdir) as q:
        assert q.claim("w") == (entry_id, payload)


def test_fail_retries_then_fails_with_reason(qdir):
    with open_queue(qdir, max_attempts=2) as q:
        entry_id = q.enqueue(b"x")
        q.claim("w")
        q.fail(entry_id, "first")
        assert q.states()[entry_id] == "PENDING"
        assert q.claim("w")[0] == entry_id
        q.fail(entry_id, "second: gave up")
        assert q.states()[entry_id] == "FAILED"
        assert q.claim("w") is None
    with open_queue(qdir) as q:
        assert q.states()[entry_id] == "FAILED"
        q.compact()
        assert q._entries[entry_id].reason == "second: gave up"


def test_unknown_id_and_invalid_transitions(queue):
    with pytest.raises(UnknownEntryError, match="nope"):
        queue.ack("nope")
    entry_id = queue.enqueue(b"x")
    with pytest.raises(InvalidTransitionError, match="state=PENDING"):
        queue.ack(entry_id)
    with pytest.raises(InvalidTransitionError):
        queue.fail(entry_id, "r")
    queue.claim("w")
    with pytest.raises(InvalidTransitionError):
        queue.ack_many([entry_id, entry_id])  # all or nothing
    assert queue.states()[entry_id] == "PROCESSING"
    queue.ack(entry_id)
    with pytest.raises(InvalidTransitionError, match="state=DELIVERED"):
        queue.ack(entry_id)


def test_closed_queue_and_context_manager(qdir):
    with open_queue(qdir) as q:
        q.enqueue(b"x")
    for call in (lambda: q.enqueue(b"y"), lambda: q.claim("w"), q.states, q.recover):
        with pytest.raises(QueueClosedError):
            call()
    q.close()  # idempotent
    assert q.stats()["PENDING"] == 1


def test_batches_commit_with_one_fsync_each(qdir):
    # No automatic checkpoint in between: its fsyncs would be counted with the batches'.
    queue = open_queue(qdir, compact_min_bytes=1 << 20)
    before = queue.stats()["fsyncs"]
    ids = queue.enqueue_many([b"%d" % i for i in range(100)])
    assert queue.stats()["fsyncs"] == before + 1
    got = queue.claim_many("w", 100)
    assert [i for i, _ in got] == ids
    assert queue.stats()["fsyncs"] == before + 1  # claims are not fsynced by default
    queue.ack_many(ids)
    assert queue.stats()["fsyncs"] == before + 2
    assert len(set(ids)) == 100
    queue.close()


def test_durable_claims_fsync_each_claim(qdir):
    with open_queue(qdir, durable_claims=True) as q:
        q.enqueue(b"x")
        before = q.stats()["fsyncs"]
        q.claim("w")
        assert q.stats()["fsyncs"] == before + 1


def test_payload_limit_writes_nothing(qdir):
    with open_queue(qdir, max_payload_bytes=4) as q:
        before = q.stats()["journal_bytes"]
        with pytest.raises(PayloadTooLargeError, match="size=5 .*limit=4"):
            q.enqueue(b"12345")
        with pytest.raises(PayloadTooLargeError):
            q.enqueue_many([b"1", b"12345"])
        assert q.stats()["journal_bytes"] == before and q.states() == {}
        with pytest.raises(TypeError, match="str"):
            q.enqueue("text")


@pytest.mark.parametrize(
    ("options", "exc", "text"),
    [
        ({"max_attempts": 0}, ValueError, "max_attempts=0"),
        ({"max_attempts": "3"}, TypeError, "max_attempts='3'"),
        ({"retain_delivered": -1}, ValueError, "retain_delivered=-1"),
        ({"durable_claims": 1}, TypeError, "durable_claims=1"),
        ({"max_payload_bytes": True}, TypeError, "max_payload_bytes=True"),
        ({"colour": "red"}, TypeError, "colour"),
    ],
)
def test_option_validation_names_value_and_expectation(qdir, options, exc, text):
    with pytest.raises(exc, match=text):
        open_queue(qdir, **options)


def test_create_false_on_missing_directory(qdir):
    with pytest.raises(StorageMissingError, match="create=False"):
        open_queue(qdir, create=False)


def test_ids_unique_across_instances_and_reopen(qdir):
    ids = set()
    for _ in range(3):
        with open_queue(qdir) as q:
            ids.update(q.enqueue_many([b""] * 10))
    assert len(ids) == 30


def test_permissions_private(qdir, queue):
    queue.enqueue(b"x")
    queue.compact()
    assert stat.S_IMODE(os.stat(qdir).st_mode) == 0o700
    for name in os.listdir(qdir):
        path = os.path.join(qdir, name)
        if os.path.isfile(path):
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, name


# -- durability recipe order -----------------------------------------------------------


def test_enqueue_writes_then_fsyncs_before_returning(spy, queue):
    spy.calls.clear()
    queue.enqueue(b"x")
    calls = [c for c in spy.names() if c[0] in ("write", "fsync")]
    assert calls == [("write", "journal.0"), ("fsync", "journal.0")]


def test_checkpoint_recipe_order(spy, queue):
    queue.enqueue(b"x")
    spy.calls.clear()
    queue.compact()
    calls = [c for c in spy.names() if c[0] != "close"]
    tmp = next(p for c, p in calls if c == "open" and p.startswith(".tmp-"))
    order = [
        ("write", tmp),
        ("fsync", tmp),
        ("open", "journal.1"),  # created empty before the seal: nothing pending if it fails
        ("write", "journal.0"),  # the seal
        ("fsync", "journal.0"),
        ("replace", f"{tmp} -> checkpoint.1"),
        ("fsync", "q/"),  # both new names made durable by one directory fsync
        ("unlink", "journal.0"),
    ]
    positions = [calls.index(step) for step in order]
    assert positions == sorted(positions), calls


def test_new_directory_and_journal_are_made_durable(tmp_path, spy):
    with open_queue(str(tmp_path / "a" / "q")):
        pass
    calls = [c for c in spy.names() if c[0] in ("open", "fsync")]
    assert ("fsync", "a/") in calls  # parent of the new queue directory
    j = calls.index(("open", "journal.0"))
    c = calls.index(("open", "checkpoint.0")) if ("open", "checkpoint.0") in calls else j
    assert ("fsync", "q/") in calls[max(j, c):]


# -- compaction ------------------------------------------------------------------------


def test_automatic_compaction_drops_delivered_keeps_pending(qdir):
    with open_queue(qdir, compact_min_bytes=2000, retain_delivered=3) as q:
        for _ in range(100):
            entry_id = q.enqueue(b"p" * 50)
            assert q.claim("w")[0] == entry_id
            q.ack(entry_id)
            assert q.stats()["journal_bytes"] <= 2000 + 200  # never grows without bound
        keep = q.enqueue_many([b"k" * 50] * 5)
        assert q.stats()["checkpoints"] >= 2
        q.compact()
        delivered = [i for i, s in q.states().items() if s == "DELIVERED"]
        assert len(delivered) == 3
    with open_queue(qdir) as q:
        states = q.states()
        assert [i for i, s in states.items() if s == "DELIVERED"] == delivered
        assert [q.claim("w")[0] for _ in keep] == keep
        gen = q.stats()["generation"]
        assert sorted(os.listdir(qdir)) == [
            f"checkpoint.{gen}", f"journal.{gen}", "owners", "reserve"]


def test_retention_after_compact(qdir):
    with open_queue(qdir, retain_delivered=2) as q:
        ids = q.enqueue_many([b"x"] * 5)
        pending = q.enqueue(b"still here")
        q.claim_many("w", 5)
        q.ack_many(ids)
        q.compact()
        assert q.states() == {ids[3]: "DELIVERED", ids[4]: "DELIVERED", pending: "PENDING"}
    with open_queue(qdir) as q:
        assert q.claim("w") == (pending, b"still here")


def test_crash_leftovers_of_compaction_are_recovered(qdir):
    with open_queue(qdir) as q:
        a = q.enqueue(b"a")
        q.compact()
        b = q.enqueue(b"b")
    # a crash between steps: a temp file and an older generation left behind
    with open(os.path.join(qdir, ".tmp-999-deadbeef"), "wb") as f:
        f.write(b"half a checkpoint")
    with open(os.path.join(qdir, "journal.0"), "wb") as f:
        f.write(b"old")
    with open_queue(qdir) as q:
        assert q.last_recovery.temp_files_removed == (".tmp-999-deadbeef",)
        assert q.states() == {a: "PENDING", b: "PENDING"}
    assert sorted(os.listdir(qdir)) == ["checkpoint.1", "journal.1", "owners", "reserve"]


def test_sealed_journal_without_checkpoint_is_finished_by_the_next_opener(qdir):
    with open_queue(qdir) as q:
        a = q.enqueue(b"a")
    path = os.path.join(qdir, "journal.0")
    with open(path, "ab") as f:  # sealer died before publishing checkpoint.1
        f.write(R.commit_frame(os.path.getsize(path), [R.rec_seal(1)]))
    with open_queue(qdir) as q:
        assert q.states() == {a: "PENDING"}
        b = q.enqueue(b"b")
        assert q.stats()["generation"] == 1
    with open_queue(qdir) as q:
        assert q.states() == {a: "PENDING", b: "PENDING"}


def test_missing_journal_of_the_live_generation_is_corruption_not_empty(qdir):
    with open_queue(qdir) as q:
        q.enqueue(b"a")
        q.compact()
        q.ack(q.claim("w")[0])  # only in journal.1: without it "a" would come back
    os.unlink(os.path.join(qdir, "journal.1"))
    with pytest.raises(CorruptionError, match="journal.1.*missing"):
        open_queue(qdir)
    assert "checkpoint.1" in os.listdir(qdir)  # nothing removed


# -- torn tail and corruption ----------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncate", "zeros"])
def test_torn_tail_detected_cut_reported(qdir, damage, caplog):
    with open_queue(qdir) as q:
        a = q.enqueue(b"first")
        b = q.enqueue(b"second")
    path = os.path.join(qdir, "journal.0")
    size = os.path.getsize(path)
    if damage == "truncate":
        os.truncate(path, size - 3)
    else:
        with open(path, "ab") as f:  # a hole the crash left before the data landed
            f.write(bytes(512))
    with open_queue(qdir) as q:
        report = q.last_recovery
        assert report.torn_bytes_cut > 0
        assert q.stats()["torn_tail_repairs"] == 1
        expected = {a: "PENDING"} if damage == "truncate" else {a: "PENDING", b: "PENDING"}
        assert q.states() == expected
        c = q.enqueue(b"after")
    with open_queue(qdir) as q:
        assert q.last_recovery.clean
        assert q.states() == {**expected, c: "PENDING"}
    assert "torn journal tail cut" in caplog.text


def test_unreadable_checkpoint_moved_aside_not_deleted(qdir):
    with open_queue(qdir) as q:
        q.enqueue(b"a")
        q.compact()
        q.enqueue(b"b")
        q.compact()  # now checkpoint.2
    with open(os.path.join(qdir, "checkpoint.2"), "r+b") as f:
        f.seek(20)
        f.write(b"XX")
    with pytest.raises(CorruptionError, match="not a complete, valid checkpoint"):
        open_queue(qdir)  # the older generation is gone: refuse, never "empty queue"
    assert "checkpoint.2.corrupt-1" in os.listdir(qdir)


# -- typed errors and coming back --------------------------------------------------------


def test_disk_full_leaves_state_unchanged_then_recovers(queue, monkeypatch):
    a = queue.enqueue(b"a")
    real = os.write

    def full_for_big_writes(fd, data):
        if len(data) > 50:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    monkeypatch.setattr(os, "write", full_for_big_writes)
    with pytest.raises(DiskFullError, match="journal.0.*errno=ENOSPC"):
        queue.enqueue(b"b" * 100)
    monkeypatch.undo()
    assert queue.states() == {a: "PENDING"}
    b = queue.enqueue(b"b" * 100)
    assert queue.states() == {a: "PENDING", b: "PENDING"}


def test_short_write_then_enospc_is_rolled_back_on_disk(qdir, monkeypatch):
    with open_queue(qdir) as q:
        a = q.enqueue(b"a")
        real = os.write
        calls = []

        def short_then_full(fd, data):
            calls.append(1)
            if len(calls) == 1:
                return real(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "write", short_then_full)
        with pytest.raises(DiskFullError):
            q.enqueue_many([b"x" * 40] * 3)
        monkeypatch.undo()
    with open_queue(qdir) as q:
        assert q.last_recovery.clean
        assert q.states() == {a: "PENDING"}


def test_permission_denied_then_recovers(queue, monkeypatch):
    a = queue.enqueue(b"a")

    def denied(fd, data):  # what write(2) says to a sealed or immutable file
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "write", denied)
    with pytest.raises(PermissionDeniedError):
        queue.enqueue(b"b")
    monkeypatch.undo()
    assert queue.states() == {a: "PENDING"}
    assert queue.claim("w") == (a, b"a")


def test_open_permission_denied_is_typed(qdir, monkeypatch):
    real = os.open

    def deny_owner(path, *args, **kw):
        if "owners" in os.fsdecode(path):
            raise OSError(errno.EACCES, "Permission denied")
        return real(path, *args, **kw)

    monkeypatch.setattr(os, "open", deny_owner)
    with pytest.raises(PermissionDeniedError, match="owners"):
        open_queue(qdir)


def test_vanished_directory_is_re_established_with_state(qdir):
    with open_queue(qdir) as q, open_queue(qdir) as other:
        a = q.enqueue(b"a")
        b = q.enqueue(b"b")
        q.claim("w")
        shutil.rmtree(qdir)
        c = q.enqueue(b"c")
        assert stat.S_IMODE(os.stat(qdir).st_mode) == 0o700
        assert other.states() == {a: "PROCESSING", b: "PENDING", c: "PENDING"}
        q.ack(a)
    with open_queue(qdir) as q:
        assert q.states() == {a: "DELIVERED", b: "PENDING", c: "PENDING"}


def test_vanished_directory_and_parent_raise_storage_missing(tmp_path):
    parent = tmp_path / "parent"
    q = open_queue(str(parent / "q"))
    a = q.enqueue(b"a")
    shutil.rmtree(parent)
    with pytest.raises(StorageMissingError, match="path=.*q'"):
        q.enqueue(b"b")
    assert not parent.exists()  # never silently re-created above the queue
    parent.mkdir()
    b = q.enqueue(b"b")  # the cause is gone: works again, state intact
    assert q.states() == {a: "PENDING", b: "PENDING"}
    q.close()


def test_unwritable_parent_raises_storage_missing(qdir, monkeypatch):
    q = open_queue(qdir)
    shutil.rmtree(qdir)

    def denied(path, mode=0o777):
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "mkdir", denied)
    with pytest.raises(StorageMissingError):
        q.enqueue(b"x")
    monkeypatch.undo()
    q.enqueue(b"x")
    q.close()


# -- liveness ----------------------------------------------------------------------------


def test_closed_owners_claims_are_requeued_live_ones_are_not(qdir):
    with open_queue(qdir) as live, open_queue(qdir) as rescuer:
        gone = open_queue(qdir)
        a, b = gone.enqueue(b"a"), gone.enqueue(b"b")
        assert gone.claim("w")[0] == a
        assert live.claim("w")[0] == b
        gone.close()
        report = rescuer.recover()
        assert report.requeued == (a,)
        assert rescuer.states() == {a: "PENDING", b: "PROCESSING"}
        assert rescuer.claim("w") == (a, b"a")


def test_directory_removed_during_a_commit_is_recreated_before_returning(tmp_path, monkeypatch):
    """The record landed in a journal whose directory vanished mid-commit (after its fsync):
    the queue re-creates the directory from memory before telling the caller it worked."""
    import shutil

    import persistence._store as store

    directory = tmp_path / "q"
    q = open_queue(str(directory))
    first = q.enqueue(b"before")
    real_fsync = store._os.fsync
    removed: list[str] = []

    def fsync_then_remove(fd, path):
        real_fsync(fd, path)
        if not removed:
            removed.append(str(path))
            shutil.rmtree(directory)

    monkeypatch.setattr(store._os, "fsync", fsync_then_remove)
    second = q.enqueue(b"during")
    monkeypatch.undo()
    assert removed and "journal" in removed[0]
    q.close()
    again = open_queue(str(directory))
    assert again.states() == {first: "PENDING", second: "PENDING"}
    again.close()


def test_directory_removed_during_an_automatic_checkpoint_loses_nothing(tmp_path, monkeypatch):
    """A commit whose checkpoint found the directory gone re-creates it before returning."""
    import shutil

    import persistence._store as store

    directory = tmp_path / "q"
    q = open_queue(str(directory), compact_min_bytes=1)  # checkpoints as early as it can
    ids = [q.enqueue(b"before")]
    real_replace = store._os.replace
    removed: list[str] = []

    def remove_then_replace(src, dst):
        if not removed:
            removed.append(dst)
            shutil.rmtree(directory)
        return real_replace(src, dst)

    monkeypatch.setattr(store._os, "replace", remove_then_replace)
    while not removed and len(ids) < 200:  # until a commit's checkpoint meets the removal
        ids.append(q.enqueue(b"during %d" % len(ids)))
    monkeypatch.undo()
    assert removed
    q.close()
    again = open_queue(str(directory))
    assert again.states() == dict.fromkeys(ids, "PENDING")
    again.close()


def _within(seconds, fn):
    """``[fn()]``, or ``[]`` if it has not returned after ``seconds``: run in a daemon
    thread, so a deadlock the test guards against fails it instead of hanging the suite."""
    import threading

    done: list = []
    worker = threading.Thread(target=lambda: done.append(fn()), daemon=True)
    worker.start()
    worker.join(seconds)
    return done


def test_a_directory_replaced_while_opening_is_the_one_attached(tmp_path, monkeypatch):
    """Another process removed and re-created the directory between our look at it and
    our opening it: the identity kept is the new directory's, where our files are. (It
    was the old one's: the first commit took the directory for vanished, and
    re-establishing locked what it already held through another descriptor, a deadlock
    with itself, found by harness stress.)"""
    import persistence._store as store

    directory = tmp_path / "q"
    open_queue(str(directory)).close()
    real_open = store._os.open_dir
    replaced: list[str] = []

    def replace_then_open(path):
        if not replaced and path == str(directory):
            replaced.append(path)
            os.rename(directory, tmp_path / "old")  # kept: no inode number is reused
            os.makedirs(directory / "owners", mode=0o700)
        return real_open(path)

    monkeypatch.setattr(store._os, "open_dir", replace_then_open)

    def open_and_enqueue():
        with open_queue(str(directory)) as q:
            return q.enqueue(b"x")

    done = _within(10, open_and_enqueue)
    monkeypatch.undo()
    assert replaced
    assert done, "opening and one commit never returned (deadlocked on its own lock)"
    with open_queue(str(directory)) as again:
        assert again.states() == {done[0]: "PENDING"}


def test_re_establishing_retries_after_its_checkpoint_met_a_full_disk(tmp_path, monkeypatch):
    """The directory vanished and the checkpoint that re-creates it met ENOSPC: the call
    raises DiskFullError, and the next call finishes the job with the files it already
    holds. (It attached a second time and deadlocked on its own lock; found by stress.)"""
    import persistence._store as store
    from persistence.errors import DiskFullError, from_oserror

    directory = tmp_path / "q"
    q = open_queue(str(directory))
    first = q.enqueue(b"before")
    shutil.rmtree(directory)
    real_write = store._os.write_all
    failed: list[str] = []

    def full_once(fd, data, path):
        if not failed and "checkpoint" not in path and os.path.basename(path).startswith("."):
            failed.append(path)
            raise from_oserror(OSError(errno.ENOSPC, "No space left on device"), "write", path)
        return real_write(fd, data, path)

    monkeypatch.setattr(store._os, "write_all", full_once)
    with pytest.raises(DiskFullError):
        q.enqueue(b"during")
    assert failed
    done = _within(10, lambda: q.enqueue(b"after"))
    assert done, "the retry never returned (deadlocked on its own lock)"
    q.close()
    with open_queue(str(directory)) as again:
        states = again.states()
    assert states[first] == "PENDING" and states[done[0]] == "PENDING"


def test_a_directory_re_created_under_the_same_inode_number_is_noticed(tmp_path, monkeypatch):
    """ext4 may hand a removed directory's inode number to the next mkdir: another process
    re-creating the queue directory can give it the identity ours had (not while we hold
    a descriptor on ours, but a filesystem without stable inode numbers may). The
    directory we hold open has no links left all the same, and that is what tells us."""
    import persistence._store as store

    directory = tmp_path / "q"
    q = open_queue(str(directory))
    before = q.enqueue(b"before")
    old = os.stat(directory)
    shutil.rmtree(directory)
    open_queue(str(directory)).close()  # another process: a new, empty queue there
    new = os.stat(directory)
    real_lstat, real_fstat = store._os.lstat_or_none, store._os.fstat

    def renumbered(st):  # what the kernel may do; this test makes sure it does
        if st is None or (st.st_dev, st.st_ino) != (new.st_dev, new.st_ino):
            return st
        _cls, (fields, extra) = st.__reduce__()
        fields = list(fields)
        fields[1], fields[2] = old.st_ino, old.st_dev
        return os.stat_result(fields, extra)

    monkeypatch.setattr(store._os, "lstat_or_none", lambda p: renumbered(real_lstat(p)))
    monkeypatch.setattr(store._os, "fstat", lambda fd, p: renumbered(real_fstat(fd, p)))
    after = q.enqueue(b"after")  # must land in the directory that is there now
    q.close()
    monkeypatch.undo()
    with open_queue(str(directory)) as again:
        states = again.states()
    assert states.get(after) == "PENDING"
    assert before not in states  # destroyed with the directory it was in


def test_a_claim_whose_directory_was_replaced_mid_commit_raises(tmp_path, monkeypatch):
    """The claim's record went to the vanished journal and another process had made a new
    queue there: the claim was decided on a state that is gone, so it raises rather than
    write it again (which handed out an entry acked in the new queue a second time)."""
    import persistence._store as store
    from persistence.errors import StorageMissingError

    directory = tmp_path / "q"
    q = open_queue(str(directory), durable_claims=True)
    q.enqueue(b"a")
    real_fsync = store._os.fsync
    replaced: list[str] = []

    def fsync_then_replace(fd, path):
        real_fsync(fd, path)
        if not replaced and "journal" in str(path):
            replaced.append(str(path))
            shutil.rmtree(directory)
            open_queue(str(directory)).close()  # another process: a new queue there

    monkeypatch.setattr(store._os, "fsync", fsync_then_replace)
    with pytest.raises(StorageMissingError, match="another state"):
        q.claim("w")
    monkeypatch.undo()
    assert replaced
    q.close()
    with open_queue(str(directory)) as again:
        assert again.states() == {}
