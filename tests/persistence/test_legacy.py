"""Check that the legacy model reproduces each mechanism of the incident, deterministically.

Every interleaving here is driven by hand (spies and monkeypatched calls), never by
timing, so each test shows one way the old queue loses or strands a message.
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import shutil
import time

import pytest

from persistence import legacy
from persistence.legacy import LOCK_FILE, QUEUE_FILE, TEMP_FILE, open_legacy

__all__: list[str] = []

LOGGER = "persistence.legacy"


class Crash(BaseException):
    """A simulated kill: raised from inside an OS call, never swallowed."""


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    # The retry loops sleep a few ms; record instead so no test depends on time.
    sleeps: list[float] = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    return sleeps


def read_file(directory) -> list[dict]:
    with open(os.path.join(directory, QUEUE_FILE)) as handle:
        return json.load(handle)


def file_ids(directory) -> set[str]:
    return {entry["id"] for entry in read_file(directory)}


def spy_moves(monkeypatch, before=None) -> list[tuple[str, str]]:
    """Record shutil.move calls; ``before(n, src, dst)`` runs ahead of the n-th real move."""
    calls: list[tuple[str, str]] = []
    real_move = shutil.move

    def move(src, dst, *args, **kwargs):
        calls.append((os.fspath(src), os.fspath(dst)))
        if before is not None:
            before(len(calls), src, dst)
        return real_move(src, dst, *args, **kwargs)

    monkeypatch.setattr(shutil, "move", move)
    return calls


def test_round_trip_binary_payload(tmp_path):
    payload = bytes(range(256)) * 2
    q = open_legacy(tmp_path)
    entry_id = q.enqueue(payload)
    assert open_legacy(tmp_path).claim("w1") == (entry_id, payload)
    q.ack(entry_id)
    assert open_legacy(tmp_path).states() == {entry_id: "DELIVERED"}


def test_fail_returns_to_pending_then_failed(tmp_path):
    q = open_legacy(tmp_path, max_attempts=2)
    entry_id = q.enqueue(b"x")
    for expected in ("PENDING", "FAILED"):
        assert q.claim("w")[0] == entry_id
        q.fail(entry_id, "boom")
        assert q.states()[entry_id] == expected


def test_every_save_uses_the_same_fixed_temp_name(tmp_path, monkeypatch):
    written: list[str] = []
    real_open = builtins.open

    def spy_open(file, mode="r", *args, **kwargs):
        if "w" in mode:
            written.append(os.path.basename(os.fspath(file)))
        return real_open(file, mode, *args, **kwargs)

    a, b = open_legacy(tmp_path), open_legacy(tmp_path)
    monkeypatch.setattr(builtins, "open", spy_open)
    moves = spy_moves(monkeypatch)
    a.enqueue(b"1")
    b.enqueue(b"2")
    a.claim("w")
    assert written == [TEMP_FILE] * 3
    assert moves == [(str(tmp_path / TEMP_FILE), str(tmp_path / QUEUE_FILE))] * 3


def test_queue_json_is_deleted_before_the_move(tmp_path, monkeypatch):
    q = open_legacy(tmp_path)
    order: list[str] = []
    real_remove = os.remove

    def spy_remove(path, *args, **kwargs):
        order.append(f"remove {os.path.basename(path)}")
        return real_remove(path, *args, **kwargs)

    monkeypatch.setattr(os, "remove", spy_remove)
    spy_moves(monkeypatch, before=lambda n, src, dst: order.append("move"))
    q.enqueue(b"x")
    # Between these two steps there is no queue.json at all; the lock goes last.
    assert order == [f"remove {QUEUE_FILE}", "move", f"remove {LOCK_FILE}"]


def test_no_fsync_anywhere(tmp_path, monkeypatch):
    def forbidden(*args):
        raise AssertionError("the legacy queue never fsyncs")

    monkeypatch.setattr(os, "fsync", forbidden)
    q = open_legacy(tmp_path)
    q.enqueue(b"x")
    q.ack(q.claim("w")[0])
    assert q.stats()["fsyncs"] == 0


def test_missing_file_is_created_as_empty_list_and_read_as_empty(tmp_path):
    q = open_legacy(tmp_path)
    assert (tmp_path / QUEUE_FILE).read_text() == "[]"
    q.enqueue_many([b"a", b"b"])
    os.remove(tmp_path / QUEUE_FILE)
    assert q.states() == {}
    assert (tmp_path / QUEUE_FILE).read_text() == "[]"


@pytest.mark.parametrize(
    "error",
    [
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
        PermissionError(13, "Permission denied"),
        FileNotFoundError(2, "No such file or directory"),
    ],
    ids=["decode", "permission", "not-found"],
)
def test_read_error_becomes_empty_queue_and_next_save_overwrites(tmp_path, monkeypatch, error):
    q = open_legacy(tmp_path)
    old_ids = q.enqueue_many([b"a", b"b", b"c"])
    real_open = builtins.open
    failures = [error]

    def flaky_open(file, mode="r", *args, **kwargs):
        if os.path.basename(os.fspath(file)) == QUEUE_FILE and "r" in mode and failures:
            raise failures.pop()
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", flaky_open)
    new_id = q.enqueue(b"d")
    # One transient read fault, and the three entries already on disk are gone.
    assert file_ids(tmp_path) == {new_id}
    assert not set(old_ids) & file_ids(tmp_path)


def test_partial_recovery_keeps_list_before_trailing_junk(tmp_path, caplog):
    q = open_legacy(tmp_path)
    ids = q.enqueue_many([b"a", b"b"])
    path = tmp_path / QUEUE_FILE
    damaged = path.read_text() + '{"id": "torn", "sta'
    path.write_text(damaged)
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        assert q.states() == dict.fromkeys(ids, "PENDING")
    assert "partial recovery" in caplog.text
    assert (tmp_path / f"{QUEUE_FILE}.backup-1").read_text() == damaged
    assert set(ids) == file_ids(tmp_path)


def test_partial_recovery_of_torn_file_scans_objects_and_drops_the_rest(tmp_path):
    q = open_legacy(tmp_path)
    ids = q.enqueue_many([b"a", b"b", b"c"])
    path = tmp_path / QUEUE_FILE
    text = path.read_text()
    torn = text[: text.rfind('"payload"')]  # cut inside the last entry, no closing ]
    path.write_text(torn)
    assert q.states() == dict.fromkeys(ids[:2], "PENDING")
    assert (tmp_path / f"{QUEUE_FILE}.backup-1").read_text() == torn
    assert file_ids(tmp_path) == set(ids[:2])


def test_shorter_save_over_longer_gives_extra_data_and_drops_the_tail(tmp_path):
    q = open_legacy(tmp_path)
    ids = q.enqueue_many([b"a", b"b", b"c"])
    path = tmp_path / QUEUE_FILE
    long_text = path.read_text()
    short_text = json.dumps(read_file(tmp_path)[:1])
    # Two writers truncating and writing the same file: the short one over the long one.
    path.write_text(short_text + long_text[len(short_text) :])
    assert q.states() == {ids[0]: "PENDING"}
    assert os.path.exists(tmp_path / f"{QUEUE_FILE}.backup-1")


def fail_temp_writes(monkeypatch, error: BaseException) -> None:
    """Make every open of queue.json.tmp for writing raise ``error``."""
    real_open = builtins.open

    def spy_open(file, mode="r", *args, **kwargs):
        if os.path.basename(os.fspath(file)) == TEMP_FILE and "w" in mode:
            raise error
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy_open)


def test_save_error_is_logged_and_swallowed(tmp_path, monkeypatch, caplog):
    q = open_legacy(tmp_path)
    kept = q.enqueue(b"kept")
    with monkeypatch.context() as patch, caplog.at_level(logging.ERROR, logger=LOGGER):
        fail_temp_writes(patch, OSError(28, "No space left on device"))
        lost = q.enqueue(b"lost")
    assert isinstance(lost, str) and lost  # the caller was told it worked
    assert "queue save failed during enqueue" in caplog.text
    assert "No space left on device" in caplog.text
    assert file_ids(tmp_path) == {kept}
    assert not os.path.exists(tmp_path / LOCK_FILE)  # an ordinary error releases the lock


def test_crash_mid_save_leaves_a_stale_lock_that_the_next_save_breaks(
    tmp_path, monkeypatch, caplog, no_sleep
):
    q = open_legacy(tmp_path)
    first = q.enqueue(b"first")
    with monkeypatch.context() as patch, pytest.raises(Crash):
        fail_temp_writes(patch, Crash())
        q.claim("w1")  # killed while writing its temp file
    assert os.path.exists(tmp_path / LOCK_FILE)  # the incident's stale .lock
    restarted = open_legacy(tmp_path)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        second = restarted.enqueue(b"second")
    assert no_sleep  # it waited a little before taking the lock for stale
    assert "breaking stale lock" in caplog.text
    assert not os.path.exists(tmp_path / LOCK_FILE)
    assert restarted.states() == {first: "PENDING", second: "PENDING"}


def test_entry_claimed_by_a_crashed_processor_stays_processing(tmp_path):
    q = open_legacy(tmp_path)
    first = q.enqueue(b"first")
    assert q.claim("w1") == (first, b"first")  # ... and then the processor dies
    restarted = open_legacy(tmp_path)
    assert not restarted.recover().requeued
    assert restarted.claim("w2") is None
    assert restarted.states() == {first: "PROCESSING"}  # stuck for good


def test_two_instances_interleaved_lose_an_update(tmp_path, monkeypatch):
    a, b = open_legacy(tmp_path), open_legacy(tmp_path)
    base = a.enqueue(b"base")
    b_view = b._load()  # B loads ...
    first = a.enqueue(b"from a")  # ... A loads, modifies and saves ...
    monkeypatch.setattr(b, "_load", lambda: [dict(entry) for entry in b_view])
    second = b.enqueue(b"from b")  # ... B saves what it loaded before A's save.
    assert file_ids(tmp_path) == {base, second}
    assert first not in file_ids(tmp_path)


def other_processor_runs_first(tmp_path, other, results: list[str]):
    """A spy step: ahead of the first move, ``other`` runs a whole enqueue."""

    def step(n, src, dst):
        if n == 1:
            # The first processor sits between write and move. Its lock is removed as
            # "stale" (the incident's own next step), and the other processor runs a
            # whole operation, moving the shared queue.json.tmp away first.
            os.remove(tmp_path / LOCK_FILE)
            results.append(other.enqueue(b"from other"))

    return step


@pytest.mark.parametrize("seed_fix", [False, True])
def test_temp_file_race_loses_the_save_silently(tmp_path, monkeypatch, caplog, seed_fix):
    a = open_legacy(tmp_path, seed_fix=seed_fix)
    b = open_legacy(tmp_path, seed_fix=seed_fix)
    base = a.enqueue(b"base")
    other: list[str] = []
    checks: list[tuple[str, bool]] = []
    real_exists = os.path.exists

    def spy_exists(path):
        result = real_exists(path)
        checks.append((os.path.basename(os.fspath(path)), result))
        return result

    monkeypatch.setattr(os.path, "exists", spy_exists)
    spy_moves(monkeypatch, before=other_processor_runs_first(tmp_path, b, other))
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        lost = a.enqueue(b"from a")
    assert lost
    assert f"No such file or directory: '{tmp_path / TEMP_FILE}'" in caplog.text
    # With the fix, its existence checks ran and passed, then the file vanished anyway.
    assert ((TEMP_FILE, True) in checks) is seed_fix
    # B loaded inside A's delete-then-move window, so it saw an empty queue too.
    assert file_ids(tmp_path) == set(other)
    assert not {base, lost} & file_ids(tmp_path)


def test_seed_fix_clearer_error_still_swallowed(tmp_path, monkeypatch, caplog):
    q = open_legacy(tmp_path, seed_fix=True)
    kept = q.enqueue(b"kept")
    real_remove = os.remove

    def delete_then_lose_temp(path, *args, **kwargs):
        real_remove(path, *args, **kwargs)
        if os.path.basename(path) == QUEUE_FILE:
            real_remove(tmp_path / TEMP_FILE)  # another processor's cleanup took it

    with monkeypatch.context() as patch, caplog.at_level(logging.ERROR, logger=LOGGER):
        patch.setattr(os, "remove", delete_then_lose_temp)
        lost = q.enqueue(b"lost")
    assert lost
    assert "temp file disappeared before it could be moved" in caplog.text
    assert q.states() == {}  # queue.json was already deleted: both entries gone
    assert kept not in q.states()


@pytest.mark.parametrize("seed_fix", [False, True])
def test_removed_directory_recreated_only_by_seed_fix(tmp_path, seed_fix):
    directory = tmp_path / "message_queue"
    q = open_legacy(directory, seed_fix=seed_fix)
    shutil.rmtree(directory)
    entry_id = q.enqueue(b"x")
    saved = os.path.exists(directory / QUEUE_FILE) and entry_id in q.states()
    assert saved is seed_fix


def test_processing_left_by_crashed_processor_stays_after_recover(tmp_path):
    crashed = open_legacy(tmp_path)
    entry_id = crashed.enqueue(b"x")
    assert crashed.claim("w1")[0] == entry_id
    del crashed  # killed before ack: nothing else happens
    restarted = open_legacy(tmp_path)
    assert restarted.recover().requeued == ()
    assert restarted.states() == {entry_id: "PROCESSING"}
    assert restarted.claim("w2") is None


def test_delivered_entries_are_never_removed(tmp_path):
    with open_legacy(tmp_path) as q:
        ids = q.enqueue_many([b"p" * 100] * 5)
        size_before = q.stats()["file_bytes"]
        claimed = q.claim_many("w", 10)
        assert [entry_id for entry_id, _ in claimed] == ids
        q.ack_many(ids)
        stats = q.stats()
    assert stats["DELIVERED"] == 5 and stats["PENDING"] == 0
    assert stats["file_bytes"] >= size_before
    assert len(read_file(tmp_path)) == 5


def test_batch_forms_rewrite_the_file_once_per_entry(tmp_path, monkeypatch):
    q = open_legacy(tmp_path)
    moves = spy_moves(monkeypatch)
    ids = q.enqueue_many([b"a", b"b", b"c"])
    q.ack_many([entry_id for entry_id, _ in q.claim_many("w", 3)])
    assert len(moves) == 9
    assert set(q.states().values()) == {"DELIVERED"} and len(ids) == 3


def test_closed_queue_refuses_operations(tmp_path):
    q = open_legacy(tmp_path)
    q.close()
    with pytest.raises(ValueError):
        q.enqueue(b"x")
    assert legacy.open_queue(tmp_path).states() == {}
