"""Tests of the checker: literal histories (tests/histories/*.json), edge cases, a property."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.check.checker import COUNTS, VERDICTS, Result, check
from harness.check.history import DRAIN, NEMESIS, History

HISTORIES = Path(__file__).resolve().parents[2] / "histories"


def load(name: str) -> History:
    """A literal history from tests/histories (fault records spell their kind ``fault_kind``)."""
    return History.from_json(json.loads((HISTORIES / f"{name}.json").read_text()))


def nonzero(result: Result) -> dict[str, int]:
    return {k: v for k, v in result.counts.items() if v}


# name -> (valid, entries, non-zero counts)
EXPECTED = {
    "clean": (True, {"e1": "delivered", "e2": "delivered", "e3": "delivered"},
              {"delivered": 3, "enqueued": 3, "enqueue_ok": 3, "acked": 3}),
    "lost": (False, {"e1": "delivered", "e2": "lost"},
             {"delivered": 1, "lost": 1, "enqueued": 2, "enqueue_ok": 2, "acked": 1}),
    "duplicate_after_ack": (False, {"e1": "duplicate"},
                            {"duplicate": 1, "enqueued": 1, "enqueue_ok": 1, "acked": 1}),
    "duplicate_concurrent": (False, {"e1": "duplicate", "e2": "delivered"},
                             {"delivered": 1, "duplicate": 1, "enqueued": 2, "enqueue_ok": 2,
                              "acked": 2}),
    "stuck": (False, {"e1": "delivered", "e2": "stuck", "e3": "stuck"},
              {"delivered": 1, "stuck": 2, "enqueued": 3, "enqueue_ok": 3, "acked": 1}),
    "phantom": (False, {"e1": "delivered", "7": "phantom", "8": "phantom"},
                {"delivered": 1, "phantom": 2, "enqueued": 1, "enqueue_ok": 1, "acked": 1}),
    "corrupt": (False, {"e1": "corrupt", "e2": "delivered"},
                {"delivered": 1, "corrupt": 1, "enqueued": 2, "enqueue_ok": 2, "acked": 2}),
    "silent_error": (False, {"e1": "silent_error", "e2": "delivered"},
                     {"delivered": 1, "silent_error": 1, "enqueued": 2, "enqueue_ok": 2,
                      "acked": 1}),
    "recovered": (True, {"e1": "recovered", "e2": "failed"},
                  {"recovered": 1, "failed": 1, "enqueued": 2, "acked": 1}),
    "destroyed": (True, {"e1": "destroyed", "e2": "delivered"},
                  {"delivered": 1, "destroyed": 1, "enqueued": 2, "enqueue_ok": 2, "acked": 1}),
    "indeterminate": (True, {"e1": "indeterminate"}, {"indeterminate": 1, "enqueued": 1}),
}


def test_every_literal_history_is_covered():
    assert {p.stem for p in HISTORIES.glob("*.json")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_literal_history(name):
    valid, entries, counts = EXPECTED[name]
    result = check(load(name))
    assert result.valid is valid
    assert result.entries == entries
    assert nonzero(result) == counts
    assert list(result.counts) == list(COUNTS)  # every verdict, zeros included
    kinds = sorted(v.kind for v in result.violations)
    assert kinds == sorted(k for k in entries.values() if k not in VERDICTS[:5])


@pytest.mark.parametrize("name, entry, ops, faults, words", [
    ("lost", "e2", (2, 3), ("PowerLoss(at_op=4)",),
     ["entry e2", "returned ok at op 3", "never came out", "PowerLoss(at_op=4) fired at op 4",
      "rolled back q/journal.0"]),
    ("duplicate_after_ack", "e1", (0, 1, 3, 4, 5, 10, 11, 12), ("PowerLoss(at_op=6)",),
     ["returned ok at op 5", "claimed it again at op 10", "PowerLoss(at_op=6) fired at op 6"]),
    ("duplicate_concurrent", "e1", (0, 1, 5, 7, 8, 9, 10, 11), (),
     ["process 1 claimed it at op 7 while process 0 still held it", "claim at op 5"]),
    ("stuck", "e2", (2, 3, 21), (), ["states() at op 21", "queue id 2 PENDING"]),
    ("stuck", "e3", (4, 5, 15, 16, 17, 21), (),
     ["the drain claimed it at op 15 but its ack failed at op 17", "PROCESSING"]),
    ("phantom", "7", (11,), (), ["queue id 7", "op 11", "key e9", "no enqueue ever invoked"]),
    ("phantom", "8", (15,), (), ["b'garbage'", "does not parse"]),
    ("corrupt", "e1", (0, 1, 10, 11, 12), ("PowerLoss(at_op=5, torn=True)",),
     ["8 bytes b'e1|hello', truncated", "14 bytes", "PowerLoss(at_op=5, torn=True) fired at op 4"]),
    ("silent_error", "e1", (0, 2), ("DiskFull(after_bytes=0)",),
     ["lost", "enqueue (op 0 to 2) returned ok", "DiskFull(after_bytes=0) fired at op 1",
      "ENOSPC", "swallowed"]),
])
def test_violation_names_entry_ops_and_fault(name, entry, ops, faults, words):
    (v,) = [v for v in check(load(name)).violations if v.entry == entry]
    assert (v.ops, v.faults) == (ops, faults)
    for word in words:
        assert word in v.detail, (word, v.detail)
    tags = {"tags": list(v.tags)} if v.tags else {}  # "released": it had been claimed
    assert v.to_dict() == {"kind": v.kind, "entry": entry, "detail": v.detail,
                           "ops": list(ops), "faults": list(faults), **tags}


# -- literal in-Python histories for the edge cases

def enq(h, p, key, text=None, outcome="ok", id=None):
    h.op("invoke", p, "enqueue", key=key, value={"payload": (text or f"{key}|x").encode()})
    h.op(outcome, p, "enqueue", key=key, value={"id": id or key} if outcome == "ok" else None)


def claim(h, p, id, text):
    h.op("invoke", p, "claim")
    payload = text.encode()
    return h.op("ok", p, "claim", key=text.split("|")[0], value={"id": id, "payload": payload})


def ack(h, p, key, id, outcome="ok"):
    h.op("invoke", p, "ack", key=key, value={"id": id})
    return h.op(outcome, p, "ack", key=key, value={"id": id})


def drain(h, *entries, states=None):
    for f in ("open", "recover"):
        h.op("invoke", DRAIN, f)
        h.op("ok", DRAIN, f)
    for key in entries:
        claim(h, DRAIN, key, f"{key}|x")
        ack(h, DRAIN, key, key)
    h.op("invoke", DRAIN, "claim")
    h.op("ok", DRAIN, "claim")
    h.op("invoke", DRAIN, "states")
    h.op("ok", DRAIN, "states", value=states or {})


def kill(h, p, at="KillMidWrite(at_op=3)"):
    return h.fault(p, "killed_mid_write", at, f"killed process {p}", crashed=[p])


def test_ack_unknown_then_never_seen_is_fine():
    h = History()
    enq(h, 0, "e1")
    claim(h, 1, "e1", "e1|x")
    ack(h, 1, "e1", "e1", outcome="info")
    drain(h)
    result = check(h)
    assert result.valid and result.entries == {"e1": "delivered"}
    assert result.counts["acked"] == 0


def test_claim_crash_redelivered_is_fine():
    h = History()
    enq(h, 0, "e1")
    claim(h, 1, "e1", "e1|x")
    kill(h, 1)
    claim(h, 0, "e1", "e1|x")
    ack(h, 0, "e1", "e1")
    drain(h)
    assert check(h).valid


def test_claim_crash_never_seen_again_is_lost_and_cites_the_crash():
    h = History()
    enq(h, 0, "e1")
    claim(h, 1, "e1", "e1|x")  # ok at op 3
    kill(h, 1)  # op 4
    drain(h)
    result = check(h)
    (v,) = result.violations
    assert (v.kind, v.entry, v.ops, v.faults) == ("lost", "e1", (0, 1, 3),
                                                   ("KillMidWrite(at_op=3)",))
    assert "claimed by process 1 at op 3, released when it crashed at op 4" in v.detail
    assert "KillMidWrite(at_op=3) fired at op 4 (killed process 1; crashed process 1)" in v.detail


def test_a_claim_that_died_in_flight_tags_the_entries_it_may_have_taken():
    # The claim never returned: the history cannot say which entry, if any, it took. A
    # loss is still a loss (at-least-once), tagged for an at-most-once queue's promises.
    h = History()
    enq(h, 0, "e1")
    h.op("invoke", 1, "claim")
    kill(h, 1)
    enq(h, 0, "e2")  # enqueued after that claim died: it cannot have taken it
    drain(h)
    result = check(h)
    by_entry = {v.entry: v for v in result.violations}
    assert set(by_entry) == {"e1", "e2"}
    assert by_entry["e1"].tags == ("claim_died",) and by_entry["e2"].tags == ()


def test_ack_unknown_then_redelivered_then_crash_is_lost():
    # The redelivery shows the unknown ack did not consume it; its new claimer died.
    h = History()
    enq(h, 0, "e1")
    claim(h, 1, "e1", "e1|x")
    ack(h, 1, "e1", "e1", outcome="info")
    claim(h, 0, "e1", "e1|x")
    kill(h, 0)
    drain(h)
    assert check(h).entries == {"e1": "lost"}


def test_power_loss_releases_every_listed_processor():
    h = History()
    enq(h, 0, "e1")
    enq(h, 0, "e2")
    claim(h, 0, "e1", "e1|x")
    claim(h, 1, "e2", "e2|x")
    h.fault(NEMESIS, "power_loss", "PowerLoss(at_op=9)", "rolled back q/", crashed=[0, 1])
    claim(h, 2, "e1", "e1|x")
    ack(h, 2, "e1", "e1")
    claim(h, 2, "e2", "e2|x")
    ack(h, 2, "e2", "e2")
    drain(h)
    assert check(h).valid


def test_kill_of_one_processor_does_not_release_another():
    h = History()
    enq(h, 0, "e1")
    claim(h, 0, "e1", "e1|x")
    kill(h, 1)
    claim(h, 1, "e1", "e1|x")
    ack(h, 1, "e1", "e1")
    drain(h)
    (v,) = check(h).violations
    assert v.kind == "duplicate" and "process 0 still held it" in v.detail


@pytest.mark.parametrize("release", ["open", "close", "ack_fail"])
def test_restart_close_and_failed_ack_release_the_claim(release):
    h = History()
    enq(h, 0, "e1")
    claim(h, 0, "e1", "e1|x")
    if release == "ack_fail":
        ack(h, 0, "e1", "e1", outcome="fail")
    else:
        h.op("invoke", 0, release)
        h.op("ok", 0, release)
    claim(h, 1, "e1", "e1|x")
    ack(h, 1, "e1", "e1")
    drain(h)
    assert check(h).valid


def test_drain_start_releases_every_claim():
    h = History()
    enq(h, 0, "e1")
    claim(h, 0, "e1", "e1|x")  # never acked, no crash recorded
    drain(h, "e1")
    result = check(h)
    assert result.valid and result.entries == {"e1": "delivered"}


def test_drain_claim_without_ack_is_stuck():
    h = History()
    enq(h, 0, "e1")
    drain(h)
    h.op("invoke", DRAIN, "claim")  # after the states call: still part of the drain
    h.op("ok", DRAIN, "claim", key="e1", value={"id": "e1", "payload": b"e1|x"})
    (v,) = check(h).violations
    assert v.kind == "stuck" and "never acked it" in v.detail


def test_ack_of_an_id_never_claimed_is_ignored():
    h = History()
    enq(h, 0, "e1")
    ack(h, 1, "e1", "e1")  # process 1 never claimed e1
    drain(h, "e1")
    result = check(h)
    assert result.valid and result.entries == {"e1": "delivered"}


def test_a_fault_the_call_never_saw_as_an_error_does_not_make_it_silent():
    # A rollback during the ack is no error the target could have reported: still a
    # duplicate, not a swallowed error.
    h = History()
    enq(h, 0, "e1")
    claim(h, 1, "e1", "e1|x")
    h.op("invoke", 1, "ack", key="e1", value={"id": "e1"})
    h.fault(NEMESIS, "power_loss", "PowerLoss(at_op=5)", "rolled back q/acks", crashed=[0])
    h.op("ok", 1, "ack", key="e1", value={"id": "e1"})
    drain(h, "e1")
    (v,) = check(h).violations
    assert v.kind == "duplicate"


def test_an_error_inside_an_ok_call_makes_the_loss_silent_even_with_no_fault_of_ours():
    # The incident: the move of the shared temp file failed with ENOENT, the save was
    # logged and swallowed, and enqueue returned ok.
    h = History()
    h.op("invoke", 0, "enqueue", key="e1", value={"payload": b"e1|x"})
    h.fs(0, "write", path="q/queue.json.tmp", nbytes=5)
    h.fs(0, "replace", path="q/queue.json.tmp", path2="q/queue.json", outcome="ENOENT")
    h.op("ok", 0, "enqueue", key="e1", value={"id": "1"})
    drain(h)
    (v,) = check(h).violations
    assert v.kind == "silent_error"
    assert "ENOENT" in v.detail


def test_probing_errors_inside_an_ok_call_are_not_swallowed_errors():
    h = History()
    h.op("invoke", 0, "enqueue", key="e1", value={"payload": b"e1|x"})
    h.fs(0, "stat", path="q/journal.1", outcome="ENOENT")
    h.fs(0, "lock", path="q/lock", outcome="EAGAIN")
    h.fs(0, "mkdir", path="q", outcome="EEXIST")
    h.op("ok", 0, "enqueue", key="e1", value={"id": "1"})
    drain(h)
    assert [v.kind for v in check(h).violations] == ["lost"]


def test_directory_removed_after_the_entry_landed_inside_its_enqueue_is_destroyed():
    h = History()
    h.op("invoke", 0, "enqueue", key="e1", value={"payload": b"e1|x"})
    h.fs(0, "write", path="q/log", nbytes=5)
    h.fault(0, "missing_directory", "MissingDirectory()", "removed q/", destroyed=True)
    h.fs(0, "fsync", path="q/log")
    h.op("ok", 0, "enqueue", key="e1", value={"id": "1"})
    drain(h)
    r = check(h)
    assert r.valid and r.entries == {"e1": "destroyed"}


def test_writing_on_after_the_directory_was_removed_is_a_loss_not_destruction():
    h = History()
    h.op("invoke", 0, "enqueue", key="e1", value={"payload": b"e1|x"})
    h.fault(0, "missing_directory", "MissingDirectory()", "removed q/", destroyed=True)
    h.fs(0, "write", path="q/log", nbytes=5)
    h.fs(0, "fsync", path="q/log")
    h.op("ok", 0, "enqueue", key="e1", value={"id": "1"})
    drain(h)
    assert [v.kind for v in check(h).violations] == ["lost"]


def test_recover_releases_every_claim_held_at_that_point():
    h = History()
    enq(h, 0, "e1")
    claim(h, 1, "e1", "e1|x")  # held by 1, which stays alive between calls
    h.op("invoke", 2, "recover")
    h.op("ok", 2, "recover")
    claim(h, 2, "e1", "e1|x")  # legitimately handed out again
    h.op("invoke", 2, "ack", key="e1", value={"id": "e1"})
    h.op("ok", 2, "ack", key="e1", value={"id": "e1"})
    drain(h)
    assert check(h).valid


def test_fault_in_another_processors_call_is_not_swallowed_by_this_one():
    h = History()
    h.op("invoke", 0, "enqueue", key="e1", value={"payload": b"e1|x"})
    h.fs(1, "write", path="q/j", outcome="ENOSPC", fault="DiskFull(after_bytes=0)")
    h.op("ok", 0, "enqueue", key="e1", value={"id": 1})
    drain(h)
    assert [v.kind for v in check(h).violations] == ["lost"]


def test_enqueue_that_never_completed_is_indeterminate():
    h = History()
    h.op("invoke", 0, "enqueue", key="e1", value={"payload": b"e1|x"})
    kill(h, 0)
    drain(h)
    result = check(h)
    assert result.valid and result.entries == {"e1": "indeterminate"}


def test_states_keys_may_be_text_after_json():
    h = History()
    enq(h, 0, "e1", id=5)
    drain(h, states={"5": "pending"})
    assert check(h).entries == {"e1": "stuck"}


def test_violations_are_in_a_deterministic_order():
    h = History()
    for n in (3, 1, 2):
        enq(h, 0, f"e{n}")
    drain(h)
    result = check(h)
    assert [v.entry for v in result.violations] == ["e3", "e1", "e2"]  # by first op
    assert check(h) == result


def test_result_is_the_same_under_another_hash_seed():
    code = ("import json, sys; sys.path[:0] = [sys.argv[1], sys.argv[2]];"
            "from test_checker import load; from harness.check.checker import check;"
            "print(json.dumps([check(load(n)).to_dict() for n in sys.argv[3:]]))")
    names = sorted(EXPECTED)
    outs = {
        subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent),
                        str(Path(__file__).resolve().parents[3]), *names],
                       env={**os.environ, "PYTHONHASHSEED": seed}, capture_output=True,
                       text=True, check=True).stdout
        for seed in ("1", "2")
    }
    assert len(outs) == 1


def test_the_runners_own_kill_releases_claims_but_is_no_fault():
    h = History()
    enq(h, 0, "e1")
    claim(h, 0, "e1", "e1|x")
    h.fault(NEMESIS, "kill", "every processor stops before the final drain",
            "every processor killed", crashed=[0])
    drain(h)
    (v,) = check(h).violations
    assert (v.kind, v.faults) == ("lost", ())
    assert "released when the runner stopped it" in v.detail
    assert v.detail.endswith("; no fault fired around it")


def test_a_loss_with_no_fault_around_it_names_the_last_fault_before_it():
    h = History()
    kill(h, 0, "KillMidWrite(at_op=1)")  # op 0: leaves, say, a stale lock behind
    enq(h, 0, "e1")
    drain(h)
    (v,) = check(h).violations
    assert v.faults == ()
    assert v.detail.endswith("no fault fired around it (the last one before it: "
                             "KillMidWrite(at_op=1) fired at op 0 (killed process 0; "
                             "crashed process 0))")


def test_a_phantom_never_hides_an_entry_of_the_same_name():
    h = History()
    enq(h, 0, "e1", id="7")
    h.op("invoke", DRAIN, "claim")
    h.op("ok", DRAIN, "claim", key="e1", value={"id": "7", "payload": b"e1|x"})
    ack(h, DRAIN, "e1", "7")
    claim(h, DRAIN, "e1", "bogus")  # queue id "e1" (no id any enqueue returned), no key
    result = check(h)
    assert result.entries == {"e1": "delivered", "id e1": "phantom"}
    assert [v.entry for v in result.violations] == ["id e1"]


def test_handed_out_from_memory_after_its_files_were_deleted_is_still_destroyed():
    # The claim wrote nothing after the directory went: the entry did not survive the
    # deletion on disk, so losing it when its claimer stops is the fault's doing.
    h = History()
    enq(h, 0, "e1")
    h.op("invoke", 0, "claim")
    h.fs(0, "write", path="q/journal.0", nbytes=20)
    h.fault(0, "missing_directory", "MissingDirectory()", "removed q/", destroyed=True)
    h.op("ok", 0, "claim", key="e1", value={"id": "e1", "payload": b"e1|x"})
    h.fault(0, "kill", "runner", "stopped", crashed=[0])
    drain(h)
    r = check(h)
    assert r.valid and r.entries == {"e1": "destroyed"}


def test_a_claim_that_recreated_the_store_after_the_deletion_must_come_back():
    h = History()
    enq(h, 0, "e1")
    h.op("invoke", 0, "claim")
    h.fault(0, "missing_directory", "MissingDirectory()", "removed q/", destroyed=True)
    h.fs(0, "mkdir", path="q")
    h.fs(0, "write", path="q/checkpoint.1", nbytes=40)
    h.op("ok", 0, "claim", key="e1", value={"id": "e1", "payload": b"e1|x"})
    h.fault(0, "killed_mid_write", "KillMidWrite()", "killed", crashed=[0])
    drain(h)
    assert [v.kind for v in check(h).violations] == ["lost"]


def test_handed_out_again_after_its_ack_was_deleted_with_the_directory_is_destroyed():
    # The directory holding the ack's record was removed before the second claim: a
    # queue rebuilding from what survived (or from a stale memory) cannot know of it.
    h = History()
    enq(h, 0, "e1")
    claim(h, 0, "e1", "e1|x")
    ack(h, 0, "e1", "e1")
    h.fault(0, "missing_directory", "MissingDirectory()", "removed q/", destroyed=True)
    claim(h, 1, "e1", "e1|x")
    ack(h, 1, "e1", "e1")
    drain(h)
    r = check(h)
    assert r.valid and r.entries == {"e1": "destroyed"}


def test_handed_out_again_after_its_ack_with_the_deletion_before_the_ack_is_a_duplicate():
    h = History()
    enq(h, 0, "e1")
    h.fault(0, "missing_directory", "MissingDirectory()", "removed q/", destroyed=True)
    claim(h, 0, "e1", "e1|x")
    ack(h, 0, "e1", "e1")
    claim(h, 1, "e1", "e1|x")
    ack(h, 1, "e1", "e1")
    drain(h)
    assert [v.kind for v in check(h).violations] == ["duplicate"]


# -- fsync failure: trusting a failed fsync is a violation, reporting it is not

_EIO = "FsyncFailure(calls=('fsync',))"
_CUT = "PowerLoss(at_op=9)"


def _enqueue_through_a_failed_fsync(h, outcome, *, retried=False):
    h.op("invoke", 0, "enqueue", key="e1", value={"payload": b"e1|x"})
    h.fs(0, "write", path="q/log", nbytes=5)
    h.fs(0, "fsync", path="q/log", outcome="EIO", fault=_EIO)
    if retried:
        h.fs(0, "fsync", path="q/log")  # the retry returns ok: nothing was left to write
    h.op(outcome, 0, "enqueue", key="e1", value={"id": "e1"} if outcome == "ok" else None,
         error=None if outcome == "ok" else "OSError: [Errno 5] Input/output error")
    h.fault(NEMESIS, "power_loss", _CUT, "power lost; q/log: 5 bytes in pages a failed "
            "fsync dropped were not written again since", crashed=[0])


@pytest.mark.parametrize("retried", [False, True], ids=["swallowed", "retried_and_trusted"])
def test_an_enqueue_ok_through_a_failed_fsync_then_lost_is_a_silent_error(retried):
    h = History()
    _enqueue_through_a_failed_fsync(h, "ok", retried=retried)
    drain(h)
    (v,) = check(h).violations
    assert v.kind == "silent_error" and v.entry == "e1"
    assert v.faults[0] == _EIO and _CUT in v.faults
    assert "fsync q/log -> EIO" in v.detail and "the error was swallowed" in v.detail


@pytest.mark.parametrize("outcome, verdict", [("fail", "failed"), ("info", "indeterminate")])
def test_an_enqueue_that_reported_the_eio_may_lose_its_entry(outcome, verdict):
    h = History()
    _enqueue_through_a_failed_fsync(h, outcome)
    drain(h)
    result = check(h)
    assert result.valid and result.entries == {"e1": verdict}


def test_an_entry_reported_failed_that_survives_anyway_is_recovered():
    h = History()
    _enqueue_through_a_failed_fsync(h, "info")
    drain(h, "e1")
    result = check(h)
    assert result.valid and result.entries == {"e1": "recovered"}
