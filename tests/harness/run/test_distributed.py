"""Past one process: -j workers, shards sharing an example database (directory and Redis),
xdist gateways over execnet, and pytest-split; each run as CI would, in subprocesses."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.search import stress

REPO = Path(__file__).resolve().parents[3]
PY = sys.executable
RACE = ["--target", "legacy", "--faults", "concurrent_processors"]


def _stress(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / f"s{len(list(tmp_path.glob('s*.json')))}.json"
    proc = subprocess.run([PY, "-m", "harness", "stress", *args, "--json", str(out),
                           "--report-dir", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return json.loads(out.read_text())


def _two_shards_share(tmp_path: Path, database: str) -> None:
    first = _stress(tmp_path, *RACE, "--seed", "7", "--shard", "1/2", "--examples", "200",
                    "--database", database)
    assert first["found"] and first["shard"] == "1/2"
    # Shard 2 has other seeds and one example of its own: it finds the race only
    # because shard 1 left it in the shared database, which is replayed first.
    second = _stress(tmp_path, *RACE, "--seed", "7", "--shard", "2/2", "--examples", "1",
                     "--database", database)
    assert second["found"] and second["worker_seeds"] != first["worker_seeds"]
    assert second["counterexample"]["processors"] == 2


def test_two_shards_share_one_directory_database(tmp_path):
    db = tmp_path / "db"
    _two_shards_share(tmp_path, str(db))
    assert any(db.rglob("*")), "shard 1 saved nothing to the directory database"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("redis-server") is None,
                    reason="redis-server is not on PATH (make redis installs it)")
def test_two_shards_share_one_redis_database(tmp_path):
    port = _free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        _two_shards_share(tmp_path, f"redis://127.0.0.1:{port}")
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_jobs_run_workers_with_their_own_seeds(tmp_path):
    out = stress.stress("robust", examples=6, seed=2, jobs=2, database=str(tmp_path / "db"),
                        report_dir=str(tmp_path))
    assert out["jobs"] == 2 and len(set(out["worker_seeds"])) == 2
    assert out["examples"] >= 6 and not out["found"]


_SMALL = """
import os

def test_a():
    assert os.environ.get("PYTEST_XDIST_WORKER", "").startswith("gw")

def test_b():
    assert 1 + 1 == 2

def test_c():
    assert "x" * 2 == "xx"

def test_d():
    assert sorted([2, 1]) == [1, 2]
"""


def test_xdist_two_popen_gateways(tmp_path):
    (tmp_path / "test_small.py").write_text(_SMALL)
    gw = f"popen//python={PY}"
    proc = subprocess.run([PY, "-m", "pytest", "-d", "--tx", gw, "--tx", gw, "-v",
                           "-p", "no:cacheprovider", "test_small.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 passed" in proc.stdout and "[gw0]" in proc.stdout and "[gw1]" in proc.stdout


def test_pytest_split_runs_one_group_of_two(tmp_path):
    (tmp_path / "test_small.py").write_text(_SMALL.replace(
        'os.environ.get("PYTEST_XDIST_WORKER", "").startswith("gw")', "True"))
    proc = subprocess.run([PY, "-m", "pytest", "--splits", "2", "--group", "1", "-q",
                           "-p", "no:cacheprovider", "test_small.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout
