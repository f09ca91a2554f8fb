"""harness.search.explore: every op tried, the reduced check as the full one, no leftovers."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from harness.run.targets import resolve
from harness.search import explore as ex
from harness.search._crashstates import CrashStates, take_point
from harness.search._recording import Recording, quiet_logs, scratch_root, workload

REPO = Path(__file__).resolve().parents[3]


def test_workload_counts_queue_calls_and_keeps_the_queue_shallow():
    steps = workload(50, random.Random(3))
    calls = sum(2 if s.action == "claim" else 0 if s.action == "ack" else 1 for s in steps)
    assert calls in (50, 51)
    depth = 0
    for s in steps:
        depth += {"enqueue": 1, "claim": -1, "ack": 0}[s.action]
        assert 0 <= depth <= 3


@pytest.mark.parametrize("target", ["robust", "legacy"])
def test_reduced_check_gives_the_full_checks_verdicts(target):
    points = []
    rec = Recording(target=target, factory=resolve(target), program=workload(16, random.Random(5)),
                    root=scratch_root()[0], camera=True,
                    hook=lambda r, call: points.append(take_point(r, call)))
    with quiet_logs():
        rec.run()
        crash = CrashStates(recording=rec, points=points, final=rec.camera.tree,
                            root=scratch_root()[0], seed=1)
        try:
            assert rec.ledger.exact
            for kind, torn in (("killed_mid_write", None), ("power_loss", "prefix")):
                for i, pt in enumerate(points):
                    suffix, _problem, _fault = crash.suffix(i, kind, torn)
                    fast = rec.ledger.check(pt.mark, suffix)
                    full = rec.ledger.full_check(pt.mark, suffix)
                    assert (fast.valid, fast.counts) == (full.valid, full.counts), (kind, i)
                    assert sorted((v.kind, v.entry) for v in fast.violations) == sorted(
                        (v.kind, v.entry) for v in full.violations)
        finally:
            crash.close()


def test_robust_survives_a_kill_at_every_op_and_every_state_is_counted(made_dirs):
    run = ex.explore("robust", "killed_mid_write", ops=20)
    (sc,) = run["scenarios"]
    assert sc["status"] == "pass" and sc["violating_states"] == 0
    assert sc["states"] == sc["ops"] + 1  # every intercepted call, plus the run without fault
    assert run["sandbox"]
    assert made_dirs and not any(os.path.exists(path) for path in made_dirs)


def test_legacy_loses_entries_under_kills_and_the_replay_names_one_state():
    run = ex.explore("legacy", "killed_mid_write", ops=12)
    (sc,) = run["scenarios"]
    assert sc["status"] == "fail" and sc["violating_states"] > 0
    assert sc["replay"].startswith("harness explore --target legacy --fault killed_mid_write")
    at = int(sc["replay"].rsplit("--at ", 1)[1])
    again = ex.explore("legacy", "killed_mid_write", ops=12, at=at)["scenarios"][0]
    assert again["states"] == 2 and again["violating_states"] == 1


def test_power_loss_explores_the_clean_and_the_three_torn_variants():
    run = ex.explore("robust", "power_loss", ops=12)
    names = [s["name"] for s in run["scenarios"]]
    assert names == ["explore-power_loss", "explore-power_loss-torn-prefix",
                     "explore-power_loss-torn-sectors", "explore-power_loss-torn-holes"]
    assert all(s["status"] == "pass" for s in run["scenarios"])


def test_the_drain_runs_once_per_distinct_disk():
    opened = []

    def factory(directory):
        opened.append(directory)
        return resolve("robust")(directory)

    points = []
    rec = Recording(target="robust", factory=factory, program=workload(10, random.Random(1)),
                    root=scratch_root()[0], camera=True,
                    hook=lambda r, call: points.append(take_point(r, call)))
    rec.run()
    crash = CrashStates(recording=rec, points=points, final=rec.camera.tree,
                        root=scratch_root()[0], seed=1)
    try:
        recorded = len(opened)
        for i in range(len(points)):
            crash.suffix(i, "killed_mid_write", None)
        # no state re-runs the workload: one open per distinct disk, fewer than the states
        assert len(opened) - recorded == crash.drains < len(points)
    finally:
        crash.close()


@pytest.mark.parametrize("fault,variants", [("disk_full", 2), ("permission_denied", 2)])
def test_errno_faults_fail_the_nth_call_once_and_persistent(fault, variants):
    run = ex.explore("robust", fault, ops=8)
    assert len(run["scenarios"]) == variants
    for sc in run["scenarios"]:
        assert sc["status"] == "pass" and sc["states"] > 1 and sc["faults_fired"] > 0
    legacy = ex.explore("legacy", fault, ops=8)
    assert legacy["status"] == "fail"


def robust_checkpointing_always(directory):
    """A target for the test below: robust, checkpointing after every commit."""
    from persistence import open_queue
    return open_queue(directory, compact_min_bytes=1)


def test_a_fork_child_sees_the_directory_it_had():
    # The child works on a copy of the sandbox. Robust checks after a commit that its
    # directory is still the one it opened (re-creating a vanished one), so a copy with
    # new inode numbers made it re-create a directory nobody removed, and deadlock on the
    # lock it held itself, whenever a failed checkpoint let the commit go on.
    run = ex.explore("tests.harness.search.test_explore:robust_checkpointing_always", "disk_full",
                     ops=12)
    for sc in run["scenarios"]:
        assert sc["status"] == "pass", sc["observations"]
        assert sc["states"] > 10 and sc["faults_fired"] > 0


def repair(directory):
    """The drain's way past damage for the targets of this module (robust's salvage)."""
    from persistence import salvage
    return salvage(directory)


def test_corruption_explores_each_damage_to_each_file_between_calls():
    run = ex.explore("robust", "corruption", ops=10)
    (sc,) = run["scenarios"]
    assert sc["status"] == "pass", sc["violations"][:3]
    assert sc["states"] > 20 and sc["faults_fired"] == sc["states"] - 1
    bug = ex.explore("tests.quality.queues.bug_damage_as_torn_tail:open_queue", "corruption",
                     ops=20)
    kinds = {v["kind"] for v in bug["scenarios"][0]["violations"]}
    assert bug["status"] == "fail" and kinds & {"lost", "duplicate"}


@pytest.mark.xfail(strict=True, reason="robust finding: a journal cut at a commit boundary "
                   "while no handle is open looks like a shorter valid journal: the cut "
                   "commits (an ack, say) go unnoticed")
def test_robust_checkpointing_always_survives_damage_at_rest():
    run = ex.explore("tests.harness.search.test_explore:robust_checkpointing_always", "corruption",
                     ops=30)
    assert run["status"] == "pass", run["scenarios"][0]["violations"][:3]


def test_file_removed_removes_the_file_each_call_names_without_forking_again():
    # robust's at-fork handler makes file calls inside os.fork(): they used to fork again
    run = ex.explore("robust", "file_removed", ops=6)
    (sc,) = run["scenarios"]
    assert sc["states"] > 5 and sc["faults_fired"] == sc["states"] - 1
    assert not [o for o in sc["observations"] if "died" in o or "raised" in o]
    for v in sc["violations"]:
        assert v["faults"] and v["faults"][0].startswith("FileRemoved(path=")


def test_interleavings_try_every_single_switch_point():
    run = ex.explore("legacy", "concurrent_processors")
    (sc,) = run["scenarios"]
    assert sc["preemption_bound"] == 1 and sc["states"] > 2
    assert sc["violating_states"] > 0


def test_cli_writes_json_with_states_and_exits_1_on_violations(tmp_path):
    out = tmp_path / "e.json"
    proc = subprocess.run([sys.executable, "-m", "harness", "explore", "--target", "legacy",
                           "--fault", "killed_mid_write", "--ops", "6", "--json", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    data = json.loads(out.read_text())
    assert data["scenarios"][0]["states"] > 0 and "replay:" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "harness", "explore", "--fault", "nope"],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2


_SNAPSHOT = "tests.quality.queues.correct_snapshot:open_queue"
_RETRY = "tests.quality.queues.bug_fsync_retry_trusted:open_queue"


def test_fsync_failure_fails_every_fsync_in_turn_then_cuts_the_power(made_dirs):
    run = ex.explore(_SNAPSHOT, "fsync_failure", ops=10)
    names = [s["name"] for s in run["scenarios"]]
    assert names == ["explore-fsync_failure-power-loss-after-step",
                     "explore-fsync_failure-power-loss-after-next-step"]
    for sc in run["scenarios"]:
        # one state per fsync and directory fsync of the recording run, plus the run
        # without a fault; the queue reports the EIO, so nothing it acknowledged is lost
        assert sc["status"] == "pass", sc["violations"][:2]
        assert sc["states"] > 10 and sc["faults_fired"] == sc["states"] - 1
    assert made_dirs and not any(os.path.exists(path) for path in made_dirs)


def test_fsync_failure_explore_catches_a_retried_and_trusted_fsync():
    run = ex.explore(_RETRY, "fsync_failure", ops=10)
    now, later = run["scenarios"]
    assert now["status"] == "fail" and now["violating_states"] > 0
    assert {v["kind"] for v in now["violations"]} & {"lost", "silent_error"}
    assert any("a failed fsync dropped" in v["detail"] for v in now["violations"])
    at = int(now["replay"].rsplit("--at ", 1)[1])
    again = ex.explore(_RETRY, "fsync_failure", ops=10, at=at)["scenarios"][0]
    assert again["violating_states"] == 1
