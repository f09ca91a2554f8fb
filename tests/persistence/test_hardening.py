"""The attacks of issue 10, through the public API: each test failed before the fix."""

import errno
import os
import pwd
import stat

import pytest

import persistence
from persistence import (
    ClaimMismatchError,
    CorruptionError,
    InvalidArgumentError,
    PayloadTooLargeError,
    UnsafeDirectoryError,
    open_queue,
    salvage,
)

# -- 1. a handle idle while others checkpoint ----------------------------------------------


@pytest.mark.parametrize("checkpoints", [1, 2, 5])
def test_an_idle_handle_never_brings_back_a_superseded_generation(qdir, checkpoints):
    a, b = open_queue(qdir), open_queue(qdir)
    x = a.enqueue(b"x")
    for n in range(checkpoints):
        a.compact()
        if n == 0:
            a.ack(a.claim("a")[0])
    y = b.enqueue(b"y")  # b idled through every checkpoint
    assert b.states() == {x: "DELIVERED", y: "PENDING"} or b.states() == {y: "PENDING"}
    assert b.claim("b") == (y, b"y")  # never x again
    a.compact()  # the record of b's claim survives a's next checkpoint
    with open_queue(qdir) as c:
        assert c.states().get(y) == "PROCESSING"
        assert c.states().get(x, "DELIVERED") == "DELIVERED"
    b.ack(y)
    a.close()
    b.close()


# -- 2. damage is kept and raised, salvage recovers what is intact -------------------------


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _filled(qdir, n=200):
    with open_queue(qdir, compact_min_bytes=1 << 30) as q:
        ids = [q.enqueue(b"m%03d" % i) for i in range(n)]
    return ids, os.path.join(qdir, "journal.0")


@pytest.mark.parametrize("damage", ["flip", "zeros", "garbage"])
def test_damage_in_a_journal_raises_keeps_evidence_and_salvage_reports(qdir, damage):
    ids, path = _filled(qdir)
    data = bytearray(_read(path))
    middle = len(data) // 2
    if damage == "flip":
        data[middle] ^= 0x10
    elif damage == "zeros":
        data[middle : middle + 4096] = bytes(4096)
    else:
        data[:] = os.urandom(len(data))
    with open(path, "wb") as f:
        f.write(data)
    with pytest.raises(CorruptionError) as info:
        open_queue(qdir)
    err = info.value
    assert err.filename == path and err.offset is not None
    assert _read(path) == bytes(data)  # never truncated
    assert _read(os.path.join(qdir, err.kept)) == bytes(data)
    report = salvage(qdir)
    assert report.damaged and not report.clean
    with open_queue(qdir) as q:
        got = q.states()
    assert set(got) <= set(ids)
    # every entry is either recovered or named as possibly lost; none silently gone
    named = set(report.possibly_lost) | set(report.unrecoverable)
    if damage != "garbage":
        assert set(ids) - set(got) <= named
        assert len(got) >= 100  # the intact records before and after the damage
    assert any(name.startswith("journal.0.corrupt-") for name in os.listdir(qdir))


def test_salvage_refuses_while_a_handle_is_open(qdir):
    with open_queue(qdir), pytest.raises(persistence.PersistenceError, match="open_handles=1"):
        salvage(qdir)


def test_a_deleted_journal_is_corruption_and_acked_entries_never_come_back(qdir):
    with open_queue(qdir) as q:
        a = q.enqueue(b"a")
        q.ack(q.claim("w")[0])
    os.unlink(os.path.join(qdir, "journal.0"))
    with pytest.raises(CorruptionError, match="missing"):
        open_queue(qdir)
    report = salvage(qdir)
    assert any("missing" in d for d in report.damaged)
    with open_queue(qdir) as q:
        assert a not in q.states() or q.states()[a] != "PENDING"


def test_a_journal_replaced_by_garbage_is_never_an_empty_queue(qdir):
    _filled(qdir, 10)
    with open(os.path.join(qdir, "journal.0"), "wb") as f:
        f.write(b"{not a journal}" * 50)
    with pytest.raises(CorruptionError):
        open_queue(qdir)


# -- 3. symbolic links and ownership --------------------------------------------------------


def test_a_symlink_at_a_journal_name_is_refused_not_followed(qdir, tmp_path):
    with open_queue(qdir) as q:
        q.enqueue(b"a")
        q.compact()
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    os.unlink(os.path.join(qdir, "journal.1"))
    os.symlink(victim, os.path.join(qdir, "journal.1"))
    with pytest.raises(UnsafeDirectoryError):
        open_queue(qdir)
    assert victim.read_bytes() == b"precious"


def test_a_symlink_at_owners_never_lets_recover_delete_elsewhere(qdir, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "deadbeef").write_bytes(b"keep me")
    open_queue(qdir).close()
    os.rmdir(os.path.join(qdir, "owners"))
    os.symlink(elsewhere, os.path.join(qdir, "owners"))
    with pytest.raises(UnsafeDirectoryError):
        open_queue(qdir)
    assert (elsewhere / "deadbeef").read_bytes() == b"keep me"


def test_a_world_writable_directory_of_ours_is_tightened(qdir, caplog):
    os.makedirs(qdir)
    os.chmod(qdir, 0o777)
    with open_queue(qdir):
        assert stat.S_IMODE(os.stat(qdir).st_mode) == 0o700
    assert "tightened" in caplog.text


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_directory_owned_by_another_user_is_refused(qdir):
    os.makedirs(qdir)
    nobody = pwd.getpwnam("nobody")
    os.chown(qdir, nobody.pw_uid, nobody.pw_gid)
    os.chmod(qdir, 0o777)
    with pytest.raises(UnsafeDirectoryError, match="owned by uid"):
        open_queue(qdir)
    assert os.listdir(qdir) == []  # nothing written into it


def test_the_path_is_resolved_once(tmp_path):
    real = tmp_path / "real"
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    with open_queue(str(link)) as q:
        assert q.directory == str(real)
        link.unlink()
        link.symlink_to(tmp_path, target_is_directory=True)  # swapped later: no effect
        a = q.enqueue(b"a")
    with open_queue(str(real)) as q:
        assert q.states() == {a: "PENDING"}


# -- 6. fsync failure -------------------------------------------------------------------------


def test_an_ack_whose_fsync_failed_never_becomes_true_later(qdir, monkeypatch):
    q = open_queue(qdir)
    a = q.enqueue(b"a")
    q.claim("w")
    real = os.fsync
    failed = []

    def eio_once(fd):
        if not failed:
            failed.append(fd)
            raise OSError(errno.EIO, "Input/output error")
        return real(fd)

    monkeypatch.setattr(os, "fsync", eio_once)
    with pytest.raises(CorruptionError, match="not applied"):
        q.ack(a)
    monkeypatch.undo()
    assert q.states() == {a: "PROCESSING"}
    b = q.enqueue(b"b")  # a later, successful fsync proves nothing about the ack
    q.close()
    with open_queue(qdir) as again:
        again.recover()
        assert again.states() == {a: "PENDING", b: "PENDING"}


def test_every_fsync_failing_stops_the_handle(qdir, monkeypatch):
    q = open_queue(qdir)
    q.enqueue(b"a")

    def eio(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", eio)
    with pytest.raises(CorruptionError):
        q.enqueue(b"b")
    monkeypatch.undo()
    with pytest.raises(CorruptionError, match="stopped"):
        q.enqueue(b"c")
    q.close()
    with open_queue(qdir) as again:
        assert sorted(again.states().values()) == ["PENDING"]


# -- 7. acks answer the claim they belong to ------------------------------------------------


def test_only_the_claiming_handle_may_ack_or_fail(qdir):
    with open_queue(qdir) as a, open_queue(qdir) as b:
        x = a.enqueue(b"x")
        assert a.claim("wa") == (x, b"x")
        with pytest.raises(ClaimMismatchError):
            b.ack(x)
        with pytest.raises(ClaimMismatchError):
            b.fail(x, "not mine")
        assert b.states() == {x: "PROCESSING"}
        a.ack(x)
        assert b.states() == {x: "DELIVERED"}


def test_a_live_handle_whose_owner_file_was_removed_keeps_its_claims(qdir):
    a = open_queue(qdir)
    x, y, z = a.enqueue(b"x"), a.enqueue(b"y"), a.enqueue(b"z")
    a.claim("wa")
    os.unlink(os.path.join(qdir, "owners", a._token))  # a tmp cleaner, a "stale lock"
    with open_queue(qdir) as b:
        assert b.recover().requeued == ()  # a is alive: its liveness byte says so
        assert b.states() == {x: "PROCESSING", y: "PENDING", z: "PENDING"}
        assert b.claim("wb") == (y, b"y")  # never x, which a holds
        a.ack(x)
        b.ack(y)
    with pytest.raises(persistence.PersistenceError, match="liveness lock"):
        salvage(qdir)  # a is still open, although no owner file says so
    assert a.claim("wa") == (z, b"z")
    assert os.listdir(os.path.join(qdir, "owners")) == [a._token]  # re-created at the claim
    a.ack(z)
    a.close()
    with open_queue(qdir) as c:
        assert set(c.states().values()) == {"DELIVERED"}


def test_without_liveness_locks_a_stale_ack_after_the_release_is_refused(qdir, monkeypatch):
    """Where OFD locks do not exist (macOS), a missing owner file reads as dead, as it
    did before liveness locks: the claim is released, and the old holder's ack refused."""
    import fcntl

    monkeypatch.delattr(fcntl, "F_OFD_SETLK")
    monkeypatch.delattr(fcntl, "F_OFD_GETLK")
    a = open_queue(qdir)
    x = a.enqueue(b"x")
    a.claim("wa")
    os.unlink(os.path.join(qdir, "owners", a._token))  # looks dead, as after a hang
    with open_queue(qdir) as b:
        b.recover()
        assert b.states() == {x: "PENDING"}  # released: its owner file looks dead
        assert b.claim("wb") == (x, b"x")
        with pytest.raises(ClaimMismatchError):
            a.ack(x)  # a's claim was released: b's claim must stand
        b.ack(x)
    a.close()


# -- 8. limits and FAILED entries ------------------------------------------------------------


def test_limits_are_checked_with_typed_errors(qdir):
    with pytest.raises(InvalidArgumentError):
        open_queue(qdir, max_payload_bytes=2 << 30)
    with pytest.raises(InvalidArgumentError):
        open_queue(qdir, max_attempts=1 << 20)
    with pytest.raises(InvalidArgumentError, match="non-empty"):
        open_queue("")
    with pytest.raises(TypeError):
        open_queue(b"/tmp/q")
    with open_queue(qdir, max_payload_bytes=10) as q:
        with pytest.raises(PayloadTooLargeError):
            q.enqueue(b"x" * 11)
        q.enqueue(b"x")
        with pytest.raises(InvalidArgumentError, match="worker"):
            q.claim("w" * 70000)
        with pytest.raises(InvalidArgumentError):
            q.claim("\udcff")
        x = q.claim("w")[0]
        with pytest.raises(InvalidArgumentError, match="reason"):
            q.fail(x, "r" * 5000)
        assert q.states() == {x: "PROCESSING"}


def test_failed_entries_can_be_listed_retried_and_purged(qdir):
    with open_queue(qdir, max_attempts=1) as q:
        a, b = q.enqueue(b"a"), q.enqueue(b"b")
        for _ in range(2):
            q.fail(q.claim("w")[0], "boom")
        assert [(f.id, f.payload, f.attempts, f.reason) for f in q.failed()] == [
            (a, b"a", 1, "boom"), (b, b"b", 1, "boom")]
        assert q.retry_failed([a]) == [a]
        assert q.purge_failed() == [b]
    with open_queue(qdir) as q:
        assert q.states() == {a: "PENDING"}
        assert q.failed() == []
        assert q.claim("w") == (a, b"a")


def test_a_journal_truncated_under_a_live_handle_is_damage(qdir):
    with open_queue(qdir) as q:
        ids = [q.enqueue(b"e%d" % i) for i in range(20)]
        path = os.path.join(qdir, f"journal.{q.stats()['generation']}")
        os.truncate(path, os.path.getsize(path) // 2)  # acknowledged commits cut away
        with pytest.raises(CorruptionError, match="shrank"):
            q.enqueue(b"after")
    assert ids


def test_salvage_names_entries_whose_enqueue_was_lost(qdir):
    with open_queue(qdir, compact_min_bytes=1 << 30) as q:
        ids = [q.enqueue(b"e%02d" % i) for i in range(40)]  # one commit each
        claimed = [i for i, _ in q.claim_many("w", 40)]  # one commit naming all 40
    path = os.path.join(qdir, "journal.0")
    data = bytearray(_read(path))
    third = len(data) // 3
    data[third : third + 200] = bytes(200)  # some enqueues lost, the claim survives
    with open(path, "wb") as f:
        f.write(data)
    with pytest.raises(CorruptionError):
        open_queue(qdir)
    report = salvage(qdir)
    assert report.unrecoverable  # the claim names ids whose enqueue is gone
    with open_queue(qdir) as q:
        recovered = set(q.states())
    assert set(report.unrecoverable) | recovered == set(ids) == set(claimed)
    assert not set(report.unrecoverable) & recovered


def test_threads_sharing_one_handle_deliver_each_entry_once(qdir):
    import threading

    with open_queue(qdir) as q:
        ids = q.enqueue_many([b"%d" % i for i in range(2000)])
        got = []

        def work():
            while (claimed := q.claim("t")) is not None:
                q.ack(claimed[0])
                got.append(claimed[0])

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(got) == sorted(ids)  # each exactly once
        assert set(q.states().values()) == {"DELIVERED"}
        assert q.stats()["torn_tail_repairs"] == 0


# -- found by the harness (issue 11): a journal removed mid-commit, a directory another
# process made


def test_a_journal_removed_by_another_program_mid_commit_loses_no_acked_write(tmp_path,
                                                                               monkeypatch):
    from persistence import _store

    q = persistence.open_queue(tmp_path / "q")
    q.enqueue(b"e1|before")
    real = _store.Store.write
    removed = []

    def write_then_removed(self, journal, records, sync, spend_reserve):
        real(self, journal, records, sync, spend_reserve)
        if not removed:  # a tmp cleaner deletes the live journal right after the write
            os.unlink(journal.path)
            removed.append(journal.path)

    monkeypatch.setattr(_store.Store, "write", write_then_removed)
    q.enqueue(b"e2|during")
    monkeypatch.setattr(_store.Store, "write", real)
    q.close()
    assert removed
    again = persistence.open_queue(tmp_path / "q")
    got = [c for c in (again.claim("w") for _ in range(3)) if c is not None]
    assert sorted(payload for _ident, payload in got) == [b"e1|before", b"e2|during"]


def test_open_makes_the_name_of_a_directory_another_process_made_durable(tmp_path,
                                                                        monkeypatch):
    from persistence import _os

    (tmp_path / "q").mkdir()  # made by a process that has not fsynced the parent yet
    synced = []
    real = _os.fsync_dir
    monkeypatch.setattr(_os, "fsync_dir", lambda path: (synced.append(path), real(path)))
    persistence.open_queue(tmp_path / "q").close()
    assert str(tmp_path) in synced


def test_open_makes_the_names_in_an_existing_directory_durable(tmp_path, monkeypatch):
    # found by harness explore (FsyncFailure at the directory fsync of the first open): the
    # generation files were named, the fsync failed, and no later open fsynced q/ again
    from persistence import _os

    persistence.open_queue(tmp_path / "q").close()
    synced = []
    real = _os.fsync_dir
    monkeypatch.setattr(_os, "fsync_dir", lambda path: (synced.append(path), real(path)))
    persistence.open_queue(tmp_path / "q").close()
    assert str(tmp_path / "q") in synced
