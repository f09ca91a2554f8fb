"""The runner end to end: determinism, verdicts on small targets, and what it leaves behind."""

from __future__ import annotations

import os
import re
import sqlite3

import pytest

from harness import faults
from harness.run.runner import run_scenario, run_suite
from harness.run.scenarios import Scenario, Workload
from harness.run.targets import TargetError


def scenario(*fs, name="t", entries=12, processors=1, seed=3, checks=(), max_ops=200_000):
    plan = faults.Plan(faults=tuple(fs))
    kind = fs[0].kind if fs else "disk_full"
    return Scenario(name=name, description="test", fault=kind, plan=plan,
                    workload=Workload(entries=entries, processors=processors, max_ops=max_ops),
                    seed=seed, checks=checks)


def _norm(path):
    # The target's own random names (owner tokens, temp suffixes) are not the harness's.
    return re.sub(r"[0-9a-f]{8,}", "<hex>", path) if path else path


def projection(run):
    """The history without what legitimately differs between runs (ids, temp paths)."""
    out = []
    for r in run.history.records:
        if hasattr(r, "f"):
            out.append(("op", r.type, r.process, r.f, r.key))
        elif hasattr(r, "call"):
            out.append(("fs", r.process, r.call, _norm(r.path), r.nbytes, r.outcome, r.fault))
        else:
            out.append(("fault", r.process, r.kind, r.fault, r.crashed))
    return out


def test_same_seed_gives_the_same_history():
    sc = scenario(faults.ConcurrentProcessors(processors=3),
                  faults.KillMidWrite(at_op=60), entries=15)
    for target in ("legacy", "robust"):
        a, b = run_scenario(target, sc), run_scenario(target, sc)
        assert projection(a) == projection(b)
        assert a.to_dict()["violations"] == b.to_dict()["violations"]


_ONE_RUN = """
import json, re
from harness import faults
from harness.run.runner import run_scenario
from tests.harness.run.test_runner import scenario
sc = scenario(faults.ConcurrentProcessors(processors=3), faults.MissingDirectory(at_op=40),
              faults.KillMidWrite(at_op=90, calls=("fsync",)), entries=10)
run = run_scenario("robust", sc)
print(json.dumps([[r.index, r.process, r.call, re.sub(r"-[0-9]+-", "-PID-", r.path or "")]
                  for r in run.history.fs_ops()]))
"""


def test_a_thread_mode_run_is_the_same_in_another_process():
    # robust names owner files and temp files from os.urandom; their order in a directory
    # listing decides where the schedule switches. The shim seeds that entropy from the
    # run's seed, so a replay in another process (another hash seed, another pid) meets
    # the same calls. Before, one run in three took another path.
    import json
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[3]
    outs = [json.loads(subprocess.run([sys.executable, "-c", _ONE_RUN], cwd=repo, check=True,
                                      capture_output=True, text=True, timeout=120,
                                      env={**os.environ, "PYTHONHASHSEED": str(h)}).stdout)
            for h in (1, 2, 3)]
    assert outs[0] == outs[1] == outs[2]


def test_a_shipped_scenario_replays_the_same_under_another_hash_seed(tmp_path):
    # idle-processor's kill leaves claims for recovery to re-queue; robust kept its claimed
    # entries in a set of strings, whose order follows PYTHONHASHSEED, so the same seed
    # replayed in another process claimed e7 where the first run claimed e8 (2606 ops
    # against 2595): a replay command that does not replay.
    import json
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[3]
    runs = []
    for h in (1, 4):
        out = tmp_path / f"run-{h}.json"
        subprocess.run([sys.executable, "-m", "harness", "run", "--target", "robust",
                        "--scenario", "idle-processor", "--json", str(out), "--report-dir",
                        str(tmp_path)], cwd=repo, check=True, capture_output=True,
                       timeout=300, env={**os.environ, "PYTHONHASHSEED": str(h)})
        (s,) = json.loads(out.read_text())["scenarios"]
        runs.append((s["ops"], s["history_ops"], s["faults_fired"], s["violations"]))
    assert runs[0] == runs[1]


def test_another_seed_gives_another_interleaving():
    sc = scenario(faults.ConcurrentProcessors(processors=3), entries=15)
    assert projection(run_scenario("robust", sc, seed=1)) != projection(
        run_scenario("robust", sc, seed=2))


def test_robust_passes_and_legacy_fails_a_power_loss():
    sc = scenario(faults.PowerLoss(at_op=80), entries=20)
    good, bad = run_scenario("robust", sc), run_scenario("legacy", sc)
    assert good.status == "pass" and good.faults_fired == 1
    assert bad.status == "fail"
    assert {v.kind for v in bad.result.violations} & {"lost", "silent_error", "stuck"}
    assert bad.to_dict()["replay"] == "harness run --target legacy --scenario t --seed 3"


class SqliteQueue:
    """A correct queue whose I/O happens in C, out of the shim's sight."""

    def __init__(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)
        self.db = sqlite3.connect(os.path.join(directory, "q.db"), check_same_thread=False)
        self.db.execute("create table if not exists q (id integer primary key, "
                        "payload blob, state text)")
        self.db.commit()

    def enqueue(self, payload):
        cur = self.db.execute("insert into q (payload, state) values (?, 'PENDING')", (payload,))
        self.db.commit()
        return str(cur.lastrowid)

    def claim(self, worker):
        row = self.db.execute("select id, payload from q where state='PENDING' "
                              "order by id limit 1").fetchone()
        if row is None:
            return None
        self.db.execute("update q set state='PROCESSING' where id=?", (row[0],))
        self.db.commit()
        return str(row[0]), bytes(row[1])

    def ack(self, entry_id):
        self.db.execute("update q set state='DELIVERED' where id=?", (int(entry_id),))
        self.db.commit()

    def recover(self):
        self.db.execute("update q set state='PENDING' where state='PROCESSING'")
        self.db.commit()

    def close(self):
        self.db.close()


def test_a_target_the_shim_cannot_see_is_reported_as_no_fault_fired():
    run = run_scenario("sqlite", scenario(faults.DiskFull(after_bytes=100)), factory=SqliteQueue)
    assert run.faults_fired == 0
    assert run.status == "no_fault_fired"
    assert run.result.valid  # nothing wrong was seen, and that is not a pass either


class HoldsLockForever:
    """Takes the queue lock in claim and never lets go: the others wait forever."""

    def __init__(self, directory):
        import fcntl

        os.makedirs(directory, exist_ok=True)
        self._fcntl = fcntl
        self.fd = os.open(os.path.join(directory, "lock"), os.O_CREAT | os.O_RDWR, 0o600)
        self.items: list = []

    def enqueue(self, payload):
        self._fcntl.flock(self.fd, self._fcntl.LOCK_EX)
        self.items.append(payload)
        return str(len(self.items))

    def claim(self, worker):
        self._fcntl.flock(self.fd, self._fcntl.LOCK_EX)
        return None

    def ack(self, entry_id):
        pass

    def recover(self):
        pass

    def close(self):
        pass


def test_processors_that_wait_forever_on_a_lock_are_stuck():
    sc = scenario(faults.ConcurrentProcessors(processors=2), entries=6)
    run = run_scenario("holds-lock", sc, factory=HoldsLockForever)
    assert run.status == "fail"
    assert any(v.kind == "stuck" and v.entry.startswith("processor") for v in
               run.result.violations)


class Spinner(HoldsLockForever):
    """Waits for a lock file that never goes away, by polling it."""

    def enqueue(self, payload):
        while os.path.exists(os.path.join(os.path.dirname(self.fd_path), "nope")) or True:
            os.stat(self.fd_path)

    def __init__(self, directory):
        super().__init__(directory)
        self.fd_path = os.path.join(directory, "lock")


def test_a_processor_spinning_forever_hits_the_op_budget():
    run = run_scenario("spinner", scenario(faults.DiskFull(after_bytes=10), max_ops=500),
                       factory=Spinner)
    assert any(v.kind == "stuck" for v in run.result.violations)
    assert "500" in " ".join(v.detail for v in run.result.violations)


class MissingMethods:
    def __init__(self, directory):
        pass

    def enqueue(self, payload):
        return "1"


def test_a_target_without_the_contract_methods_is_refused_in_words():
    run = run_scenario("half", scenario(faults.DiskFull()), factory=MissingMethods)
    d = run.to_dict()
    assert d["status"] in ("error", "fail", "no_fault_fired")
    assert any("claim" in o and "contract" in o for o in d["observations"]) or any(
        "contract" in (op.error or "") for op in run.history.ops())


def test_unknown_targets_are_refused_before_anything_runs():
    with pytest.raises(TargetError, match="robust"):
        run_suite("no-such-target", [scenario(faults.DiskFull())])
    with pytest.raises(TargetError, match="cannot import"):
        run_suite("no_such_module_xyz:open", [scenario(faults.DiskFull())])


def test_the_run_leaves_no_sandbox_and_no_patch_behind(made_dirs):
    real_open, real_replace = open, os.replace
    run_scenario("legacy", scenario(faults.KillMidWrite(at_op=30)))
    assert made_dirs and not any(os.path.exists(path) for path in made_dirs)
    assert open is real_open and os.replace is real_replace
