"""``--layer fuse``: verdicts from below every process, where the Python shim sees nothing.

Real runs through a FUSE mount (`harness.run._fusemount`): the robust queue still passes,
the incident's legacy design still fails, and a SQLite queue whose commits are not
fsynced (litequeue: WAL with synchronous=NORMAL) loses acknowledged entries on a power
loss the shim cannot even deliver, while one that fsyncs each commit (huey's
SqliteStorage: synchronous=FULL) keeps them. Skipped, with the reason, where FUSE cannot
run here (no /dev/fuse, not root, no fuse3).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness import faults
from harness.run import _fusemount, runner
from harness.run.scenarios import Scenario, ScenarioError, Workload, default_dir, load, select

pytestmark = pytest.mark.skipif(_fusemount.refusal() is not None,
                                reason=f"FUSE layer unavailable: {_fusemount.refusal()}")


@pytest.mark.parametrize("name", ["killed-mid-write", "power-loss-torn", "fsync-failure",
                                  "file-removed", "disk-full", "missing-directory-mid-save"])
def test_the_robust_queue_passes_under_the_fuse_layer(name):
    sc = select([name], default_dir())[0]
    d = runner.run_scenario_runs("robust", sc, layer="fuse")
    assert d["status"] == "pass", (d.get("error"), d["violations"][:2])
    assert d["faults_fired"] > 0 and d["layer"] == "fuse"
    assert d["replay"].endswith("--layer fuse")


def test_the_incident_design_still_fails_under_the_fuse_layer():
    sc = select(["incident"], default_dir())[0]
    d = runner.run_scenario_runs("legacy", sc, layer="fuse")
    assert d["status"] == "fail"
    assert {v["kind"] for v in d["violations"]} & {"lost", "duplicate", "silent_error"}


def _power_cut(at_op: int) -> Scenario:
    plan = faults.Plan(faults=(faults.PowerLoss(at_op=at_op, calls=("write",)),))
    return Scenario(name="sqlite-power-cut", description="a power cut at a write",
                    fault="power_loss", plan=plan,
                    workload=Workload(entries=12, processors=1), mode="process")


def test_a_sqlite_queue_without_fsync_per_commit_loses_entries_only_the_fuse_layer_sees():
    sc = _power_cut(150)
    shim = runner.run_scenario("examples.litequeue_sqlite:open_queue", sc).to_dict()
    assert shim["status"] == "no_fault_fired"  # SQLite's writes are C: the shim never sees one
    fuse = runner.run_scenario("examples.litequeue_sqlite:open_queue", sc,
                               layer="fuse").to_dict()
    assert fuse["status"] == "fail", fuse.get("error")
    lost = [v for v in fuse["violations"] if v["kind"] == "lost"]
    assert lost and all("queue.sqlite3-wal" in v["detail"] for v in lost)


def test_a_sqlite_queue_that_fsyncs_each_commit_survives_the_same_power_cut():
    d = runner.run_scenario("examples.huey_sqlite:open_queue", _power_cut(150),
                            layer="fuse").to_dict()
    assert d["status"] == "pass", (d.get("error"), d["violations"][:2])
    assert d["faults_fired"] == 1


def test_the_fuse_layer_refuses_thread_mode_with_a_clear_message(tmp_path):
    done = subprocess.run([sys.executable, "-m", "harness", "run", "--target", "robust",
                           "--scenario", "power-loss", "--layer", "fuse", "--mode", "thread",
                           "--report-dir", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 2
    assert "--layer fuse runs in process mode only" in done.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('description = "x"\nfault = "power_loss"\nmode = "thread"\n'
                   'layer = "fuse"\n[[faults]]\nkind = "power_loss"\n')
    with pytest.raises(ScenarioError, match="layer"):
        load(bad)
