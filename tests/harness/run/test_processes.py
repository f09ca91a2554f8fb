"""Process mode end to end: real processes, real SIGKILL, real kernel faults, one history.

Each test runs a scenario file on forked processes and asserts on the checker's verdict
and on what really happened (kills, restarts, the kernel's errno), never on timing.
The order of the processes' calls is the kernel's, so the legacy tests use scenarios
whose faults break legacy whatever the order.
"""

from __future__ import annotations

import os

import pytest

from harness import faults
from harness.check.history import FaultEvent, FsOp, Op
from harness.run import processes, scenarios
from harness.run.runner import run_scenario
from harness.run.scenarios import Scenario, Workload

SCENARIOS = scenarios.default_dir()


def run(target: str, name: str):
    sc = scenarios.select([name], SCENARIOS)[0]
    return run_scenario(target, sc, mode="process")


def statuses(r):
    return r.status, r.to_dict()["violations"][:3], r.observations


ALL = [s.name for s in scenarios.load_dir(SCENARIOS)]


@pytest.mark.parametrize("name", ALL)
def test_robust_passes_every_scenario_on_real_processes(name):
    r = run("robust", name)
    assert r.status == "pass", statuses(r)
    assert r.faults_fired > 0
    assert r.to_dict()["replay"].startswith("harness run --mode process --target robust")


@pytest.mark.parametrize("name", ["killed-mid-write", "power-loss", "concurrent-processors",
                                  "disk-full", "permission-denied", "missing-directory",
                                  "stale-locks"])
def test_legacy_fails_on_real_processes(name):
    r = run("legacy", name)
    assert r.status == "fail", statuses(r)
    assert r.result.violations


def test_a_kill_is_a_real_sigkill_then_a_fresh_process_recovers():
    r = run("robust", "killed-mid-write")
    assert r.kills >= 1 and r.restarts == r.kills  # every killed process came back
    records = r.history.records
    kill = next(x for x in records if isinstance(x, FaultEvent) and x.kind == "killed_mid_write")
    torn = next(x for x in records if isinstance(x, FsOp) and x.outcome == "killed")
    assert torn.index < kill.index and torn.process == kill.process
    after = [x for x in records[kill.index:] if isinstance(x, Op) and x.process == kill.process]
    # the call it died in ends unknown, then its fresh process opens and recovers
    assert after[0].type == "info" and "SIGKILL" in after[0].error
    assert [(o.type, o.f) for o in after[1:5]] == [("invoke", "open"), ("ok", "open"),
                                                    ("invoke", "recover"), ("ok", "recover")]


def test_recover_runs_with_no_other_processor_inside_a_call():
    r = run("robust", "stale-locks")  # 8 processes, one killed and restarted
    open_calls: dict[int, str] = {}
    checked = 0
    for op in r.history.ops():
        if op.type == "invoke":
            if op.f == "recover" and op.process >= 0:
                assert not {p: f for p, f in open_calls.items() if p != op.process}
                checked += 1
            open_calls[op.process] = op.f
        else:
            open_calls.pop(op.process, None)
    assert checked >= 1


def test_concurrent_processors_runs_at_least_eight_live_processes():
    r = run("robust", "concurrent-processors")  # the file asks for 4
    procs = {op.process for op in r.history.ops() if op.process >= 0}
    assert len(procs) >= processes.MIN_CONCURRENCY
    assert any("not replayed by the seed" in o for o in r.observations)


def test_power_loss_kills_every_worker_and_rolls_back():
    r = run("legacy", "power-loss")
    cut = next(x for x in r.history.records if isinstance(x, FaultEvent)
               and x.kind == "power_loss")
    assert "rolled back" in cut.effect or "dropped" in cut.effect
    assert {v.kind for v in r.result.violations} & {"lost", "silent_error"}


@pytest.mark.skipif(os.geteuid() != 0, reason="a tmpfs needs root; the run says so itself")
def test_disk_full_comes_from_a_real_full_tmpfs():
    r = run("robust", "disk-full-persistent")
    assert any("real full file system" in o for o in r.observations), r.observations
    real = [x for x in r.history.fs_ops() if x.outcome == "ENOSPC" and x.fault]
    assert real, "the kernel never answered ENOSPC"


def test_disk_full_says_why_when_the_tmpfs_variant_is_skipped(monkeypatch):
    monkeypatch.setattr("harness.faults.mounts.tmpfs_refusal", lambda: "not allowed in this test")
    r = run("robust", "disk-full")
    assert any("variant was skipped: not allowed in this test" in o for o in r.observations)
    assert r.status == "pass"


def _permission_scenario(calls):
    return Scenario(name="perm", description="t", fault="permission_denied",
                    plan=faults.Plan((faults.PermissionDenied(calls=calls, at_op=30,
                                                              heal_after_ops=60),)),
                    workload=Workload(entries=12), seed=1)


def test_permission_denied_is_a_real_eacces_from_the_kernel_where_mode_bits_say_it():
    # every change of a directory entry refused: the w bits off say exactly that
    r = run_scenario("legacy", _permission_scenario(("replace", "mkdir", "unlink", "rmdir")),
                     mode="process")
    assert any("real EACCES from the kernel" in o for o in r.observations), r.observations
    assert any(x.outcome == "EACCES" for x in r.history.fs_ops())


def test_a_permission_fault_on_reads_only_refuses_reads_only_in_process_mode():
    # before: chmod 000 of the directory, which refused every write too, so a bug needing
    # "read refused, write allowed" was never reached in process mode
    r = run_scenario("robust", _permission_scenario(("open_read",)), mode="process")
    assert not any("real EACCES from the kernel" in o for o in r.observations)
    refused = {x.call for x in r.history.fs_ops() if x.outcome == "EACCES"}
    assert refused == {"open"}
    assert all(x.outcome == "ok" for x in r.history.fs_ops()
               if x.call in ("write", "replace", "mkdir") and x.process >= 0)
    assert r.status == "pass", r.to_dict()["violations"][:3]


def test_missing_directory_is_deleted_by_the_parent():
    r = run("robust", "missing-directory")
    event = next(x for x in r.history.records if isinstance(x, FaultEvent)
                 and x.kind == "missing_directory")
    assert "the harness process removed directory q/" in event.effect


def test_legacy_leaves_its_lock_file_when_killed_holding_it():
    # one processor, so no other one breaks the stale lock before we look
    sc = Scenario(name="stale-lock", description="t", fault="killed_mid_write",
                  plan=faults.Plan(faults=(faults.KillMidWrite(at_op=40),)),
                  workload=Workload(entries=15, processors=1), checks=("stale_locks",))
    r = run_scenario("legacy", sc, mode="process")
    after_kill = [o for o in r.observations if o.startswith("lock files right after")]
    assert after_kill and "queue.json.lock" in after_kill[0], r.observations


def test_a_process_killed_while_restarting_resumes_its_program_not_from_the_top():
    # Seed 3 of killed-mid-rename kills a restarted process again before its first step;
    # it used to start its program over and enqueue e1.. a second time (false duplicates).
    from collections import Counter

    from harness.run.runner import run_scenario
    from harness.run.scenarios import default_dir, select

    sc = select(["killed-mid-rename"], default_dir())[0]
    run = run_scenario("robust", sc, seed=3, mode="process")
    enqueues = Counter(op.key for op in run.history.ops()
                       if op.f == "enqueue" and op.type == "invoke")
    assert enqueues and max(enqueues.values()) == 1
    assert run.status == "pass", run.to_dict()["violations"][:3]


def _at_rest(*extra, entries=12):
    return Scenario(name="at-rest", description="t", fault="corruption",
                    plan=faults.Plan(faults=(*extra,)),
                    workload=Workload(entries=entries, processors=2), seed=2)


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_damage_at_rest_comes_between_the_crash_and_the_restart(mode):
    sc = _at_rest(faults.KillMidWrite(at_op=30), faults.Corruption(before="restart"))
    r = run_scenario("robust", sc, mode=mode)
    records = r.history.records
    kill = next(x for x in records if isinstance(x, FaultEvent) and x.kind == "killed_mid_write")
    damage = next(x for x in records if isinstance(x, FaultEvent) and x.kind == "corruption")
    assert damage.ranges and damage.process == -2 and kill.index < damage.index
    # the crashed processor's fresh process opens only after the damage, and nobody else is
    # inside a call when it strikes
    # (in process mode a processor killed at the end of its program may never come back:
    # the kernel's interleaving decides, so only a reopen that happened is checked)
    reopen = next((x for x in records[kill.index:] if isinstance(x, Op)
                   and x.process == kill.process and x.f == "open" and x.type == "invoke"),
                  None)
    assert reopen is None or damage.index < reopen.index
    inside = {}
    for x in records[:damage.index]:
        if isinstance(x, Op):
            inside[x.process] = x.type == "invoke"
    assert not any(inside.values()), inside
    assert r.status == "pass", r.to_dict()["violations"][:3]


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_damage_before_the_drain_is_repaired_by_the_drain(mode):
    # a zeroed sector in the middle of the journal: robust refuses to open, salvage repairs
    sc = _at_rest(faults.Corruption(damage="sector", path="q/journal.*"), entries=40)
    r = run_scenario("robust", sc, mode=mode)
    (damage,) = [x for x in r.history.faults() if x.kind == "corruption"]
    drain = [(o.f, o.type) for o in r.history.ops() if o.process == -1]
    assert damage.ranges[0][0].startswith("q/journal.")
    assert ("open", "info") in drain and ("repair", "ok") in drain, drain
    assert r.status == "pass", r.to_dict()["violations"][:3]


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_files_removed_by_another_program_are_removed_for_real(mode):
    sc = Scenario(name="removed", description="t", fault="file_removed",
                  plan=faults.Plan(faults=(faults.FileRemoved(path="q/owners/*", at_op=40),)),
                  workload=Workload(entries=10, processors=2), seed=1)
    r = run_scenario("robust", sc, mode=mode)
    (event,) = [x for x in r.history.faults() if x.kind == "file_removed"]
    assert event.effect.startswith("another program removed q/owners/") and event.process >= 0
    assert not event.destroyed  # an owner file holds no entry
    assert r.status == "pass", r.to_dict()["violations"][:3]


# -- FsyncFailure on real processes: the worker's shim raises, the parent's model drops

_RETRY = "tests.quality.queues.bug_fsync_retry_trusted:open_queue"


def _retry_trusted(directory):
    from tests.quality.queues.bug_fsync_retry_trusted import open_queue
    return open_queue(directory)


def _fsync_then_power(mode):
    """The temp file's first fsync fails; the power goes at the first call after the first
    enqueue that returned ok (found from a thread-mode run: one processor, same calls)."""
    fail = faults.FsyncFailure(calls=("fsync",), path="q/state.json.tmp*")
    probe = Scenario(name="fsync-probe", description="t", fault="fsync_failure",
                     plan=faults.Plan(faults=(fail,)), workload=Workload(entries=3))
    ops = 0
    for rec in run_scenario(_RETRY, probe, factory=_retry_trusted).history.records:
        ops += isinstance(rec, FsOp)
        if isinstance(rec, Op) and rec.f == "enqueue" and rec.type == "ok":
            break
    sc = Scenario(name="fsync-then-power", description="t", fault="fsync_failure",
                  plan=faults.Plan(faults=(fail, faults.PowerLoss(at_op=ops + 1))),
                  workload=Workload(entries=3))
    return run_scenario(_RETRY, sc, factory=_retry_trusted, mode=mode)


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_fsync_failure_raises_eio_in_the_worker_and_the_loss_shows_at_a_power_loss(mode):
    r = _fsync_then_power(mode)
    failed = [x for x in r.history.fs_ops() if x.outcome == "EIO"]
    assert [(x.call, x.fault) for x in failed] == [
        ("fsync", "FsyncFailure(calls=('fsync',), path='q/state.json.tmp*')")]
    cut = next(x for x in r.history.records if isinstance(x, FaultEvent)
               and x.kind == "power_loss")
    assert "a failed fsync dropped" in cut.effect  # the retried fsync made none of it durable
    assert r.status == "fail"
    assert {v.kind for v in r.result.violations} & {"silent_error", "lost"}


def test_the_parent_tells_every_other_process_with_the_file_open_once(tmp_path):
    """errseq_t across processes: the parent notes each other child with the file open at
    the failure, and answers that child's next fsync of it (only) with the fault."""
    import random as _random
    import types

    from harness.check.history import History
    from harness.faults.durability import DurabilityModel
    from harness.run._parent import Conductor, _Child

    (tmp_path / "log").write_bytes(b"")
    model = DurabilityModel(str(tmp_path), types.SimpleNamespace(**{
        n: getattr(os, n) for n in ("open", "read", "write", "close", "lstat", "fstat",
                                    "listdir", "mkdir", "rmdir", "unlink", "lseek")}))
    model.snapshot_all()
    fault = faults.FsyncFailure()
    conductor = Conductor(ctx=None, history=History(), armed=faults.Plan((fault,)).arm(
        _random.Random(1)), model=model, real=None, disk_rng=_random.Random(1), base=None,
        factory=None, programs=[], max_ops=10, deadline=0.0)
    me = types.SimpleNamespace(pid=os.getpid())  # both "children" are this process
    failing, other = _Child(0, me, None, failing=repr(fault)), _Child(1, me, None)
    conductor._children = {0: failing, 1: other}
    fd = os.open(tmp_path / "log", os.O_WRONLY)
    elsewhere = os.open(tmp_path, os.O_RDONLY)
    try:
        os.write(fd, b"x")
        conductor._dropped(failing, "sync_failed", fd)
        assert model.dropping
        assert conductor._synced(other, elsewhere, True) is None  # another file: not told
        assert conductor._synced(other, fd, False) == repr(fault)
        assert conductor._synced(other, fd, False) is None  # once
        assert conductor._synced(failing, fd, False) is None  # it was told at the failure
    finally:
        os.close(fd)
        os.close(elsewhere)
        model.close()


def _correct_log(directory):
    from tests.quality.queues.correct_log import open_queue
    return open_queue(directory)


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_appends_over_a_dropped_page_make_it_durable_again(mode):
    # correct_log reports the EIO; its next append lands in the page the failure dropped,
    # which makes the whole page (the failed record too) durable again, as a page cache
    # does. Unless the workers' writes reach the parent's model, that page stays dropped
    # and the power loss cuts the log short: a false loss.
    sc = Scenario(name="dropped-page", description="t", fault="fsync_failure",
                  plan=faults.Plan(faults=(
                      faults.FsyncFailure(calls=("fsync",), path="q/queue.log", at_op=20),
                      faults.PowerLoss(at_op=80))), workload=Workload(entries=6))
    r = run_scenario("tests.quality.queues.correct_log:open_queue", sc, factory=_correct_log,
                     mode=mode)
    assert [x.outcome for x in r.history.fs_ops() if x.fault and "Fsync" in x.fault] == ["EIO"]
    assert r.status == "pass", statuses(r)


def _ask_about_a_closed_descriptor(conn):
    conn.send(("synced", 1_000_000, False))  # no such descriptor: the parent cannot open it
    conn.recv()  # waits for the answer, as a worker does


def test_an_error_serving_a_request_is_a_harness_error_not_a_silent_wait(tmp_path):
    # The parent used to take any OSError while serving for the child's death, and never
    # answered the (live) child: the run waited for its deadline, then blamed the target.
    import random as _random
    import time
    import types

    import multiprocess

    from harness.check.history import History
    from harness.faults.durability import DurabilityModel
    from harness.run._parent import Conductor, ParentError, _Child

    model = DurabilityModel(str(tmp_path), types.SimpleNamespace(**{
        n: getattr(os, n) for n in ("open", "read", "write", "close", "lstat", "fstat",
                                    "listdir", "mkdir", "rmdir", "unlink", "lseek")}))
    model.snapshot_all()
    ctx = multiprocess.get_context("fork")
    conductor = Conductor(ctx=ctx, history=History(), armed=None, model=model, real=None,
                          disk_rng=_random.Random(1), base=None, factory=None, programs=[],
                          max_ops=10, deadline=time.monotonic() + 60)
    parent_end, child_end = ctx.Pipe()
    proc = ctx.Process(target=_ask_about_a_closed_descriptor, args=(child_end,), daemon=True)
    proc.start()
    conductor._procs.append(proc)
    conductor._children = {0: _Child(0, proc, parent_end)}
    try:
        with pytest.raises(ParentError, match="processor 0's 'synced' request"):
            conductor._loop()
    finally:
        conductor.reap()
        model.close()
