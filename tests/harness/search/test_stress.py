"""harness.search.stress: the legacy race is found and shrunk, replays, settings, shards."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness.search import stress

REPO = Path(__file__).resolve().parents[3]


def test_legacy_temp_file_race_shrinks_to_two_processors_and_few_calls(tmp_path):
    out = stress.stress("legacy", examples=200, seed=7, database=str(tmp_path / "db"),
                        report_dir=str(tmp_path), kinds=("concurrent_processors",))
    assert out["found"]
    # Each symptom is shrunk apart: the incident's own, a save that met ENOENT on the
    # shared temp file and was swallowed, is not hidden behind a plain lost update.
    races = {c["bug"]: c for c in out["counterexamples"]}
    assert {"silent_error", "lost"} <= set(races), sorted(races)
    c = races["silent_error"]
    assert c["processors"] == 2 and c["ops"] <= 10, c["program"]
    assert c["faults"] == ["ConcurrentProcessors()"]
    assert "queue.json.tmp -> q/queue.json: ENOENT" in c["program"], c["program"]
    assert out["counterexample"] == min(out["counterexamples"], key=stress._rank)
    run = stress.replay(c["replay"].rsplit(" ", 1)[1])  # the saved draws fail again
    assert run.status == "fail"
    assert {v.kind for v in run.result.violations} == {v["kind"] for v in c["violations"]}
    # the figures printed add up: examples and shrinking runs are runs that happened (the
    # shrink count once included draws that never reached a run: "163 runs, 180 of them
    # shrinking")
    assert out["examples"] + out["shrink_runs"] <= out["runs"], out


def test_robust_survives_a_short_search(tmp_path):
    out = stress.stress("robust", examples=15, seed=3, database=str(tmp_path / "db"),
                        report_dir=str(tmp_path))
    assert not out["found"] and out["examples"] >= 15 and out["counterexample"] is None


def test_shard_seeds_are_deterministic_and_distinct():
    a = stress.shard_seeds(5, (1, 2), 2)
    assert a == stress.shard_seeds(5, (1, 2), 2)
    assert len(set(a + stress.shard_seeds(5, (2, 2), 2))) == 4


def test_settings_are_explicit_even_under_ci(tmp_path):
    env = {"CI": "true", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "harness", "stress", "--target", "robust",
                           "--examples", "3", "--database", str(tmp_path / "db"),
                           "--json", str(tmp_path / "s.json"), "--report-dir", str(tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "derandomize=False" in proc.stdout and "DirectoryBasedExampleDatabase" in proc.stdout
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["found"] is False and data["replay"] is None


def test_bad_shard_is_a_usage_error():
    proc = subprocess.run([sys.executable, "-m", "harness", "stress", "--shard", "3/2"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
