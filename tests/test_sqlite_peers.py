"""The SQLite peers' adapters (litequeue, huey's SqliteStorage) honour the target contract.

Issue 14 grades persist-queue's SQLiteAckQueue, litequeue and huey's SqliteStorage under
a FUSE layer; these tests pin that the two newer adapters work before any fault does:
a fault-free harness run (one process and four, threads and real processes) delivers
every entry with no violation, the harness's concurrency scenario passes, and the
contract's lifecycle (enqueue, claim, ack, recover, states) behaves as each adapter's
docstring says, in one process and across two real processes on one directory.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.faults import Plan
from harness.run import scenarios
from harness.run.runner import run_suite
from harness.run.targets import resolve

pytest.importorskip("litequeue", reason="litequeue is in the test extra")
pytest.importorskip("huey", reason="huey is in the test extra")

REPO = Path(__file__).resolve().parents[1]
LITEQUEUE = "examples.litequeue_sqlite:open_queue"
HUEY = "examples.huey_sqlite:open_queue"


def _scenario(name: str):
    return scenarios.select([name], scenarios.default_dir())[0]


@pytest.mark.parametrize("mode", ["thread", "process"])
@pytest.mark.parametrize("target", [LITEQUEUE, HUEY])
def test_a_fault_free_run_delivers_every_entry(target, mode):
    # concurrent-processors' workload (4 processors, 40 entries) with an empty fault plan
    free = dataclasses.replace(_scenario("concurrent-processors"), name="fault-free",
                               plan=Plan())
    s = run_suite(target, [free], mode=mode)["scenarios"][0]
    assert s["status"] == "no_fault_fired", s  # a run without faults is never a "pass"
    assert s["violations"] == []
    assert s["counts"]["delivered"] == s["entries"] == s["counts"]["acked"]


@pytest.mark.parametrize("mode", ["thread", "process"])
@pytest.mark.parametrize("target", [LITEQUEUE, HUEY])
def test_the_concurrency_scenario_passes(target, mode):
    s = run_suite(target, [_scenario("concurrent-processors")], mode=mode)["scenarios"][0]
    assert s["status"] == "pass", s["violations"]
    assert s["counts"]["duplicate"] == 0 and s["counts"]["lost"] == 0


def test_litequeue_lifecycle_in_one_process(tmp_path):
    q = resolve(LITEQUEUE)(str(tmp_path / "q"))
    ids = [q.enqueue(bytes([n, 0, 255]) + b"|payload") for n in range(3)]
    first, second = q.claim("w"), q.claim("w")
    assert [first[1], second[1]] == [bytes([n, 0, 255]) + b"|payload" for n in range(2)]
    q.ack(first[0])
    assert q.states() == {ids[0]: "DELIVERED", ids[1]: "PROCESSING", ids[2]: "PENDING"}
    with pytest.raises(KeyError):
        q.ack("no-such-id")
    q.close()
    again = resolve(LITEQUEUE)(str(tmp_path / "q"))
    again.recover()  # the claim of ids[1] died with its queue object: it comes back
    assert again.states()[ids[1]] == "PENDING"
    got = [again.claim("w"), again.claim("w"), again.claim("w")]
    assert [g[0] for g in got[:2]] == [ids[1], ids[2]] and got[2] is None
    again.close()


def test_huey_lifecycle_in_one_process(tmp_path):
    q = resolve(HUEY)(str(tmp_path / "q"))
    ids = [q.enqueue(f"e{n}|payload".encode()) for n in range(3)]
    first, second = q.claim("w"), q.claim("w")
    assert [first[1], second[1]] == [b"e0|payload", b"e1|payload"]
    assert [first[0], second[0]] == ids[:2]
    q.ack(first[0])
    with pytest.raises(ValueError, match="not handed out"):  # as huey's FileStorage adapter
        q.ack(first[0])  # acked already
    assert q.states() == {ids[2]: "PENDING"}  # the storage keeps only what is queued
    q.close()
    again = resolve(HUEY)(str(tmp_path / "q"))
    again.recover()  # at-most-once: the unacked claim of ids[1] is gone for good
    assert again.claim("w")[0] == ids[2] and again.claim("w") is None
    again.close()


_CHILD = """
import json, sys
from harness.run.targets import resolve
q = resolve(sys.argv[1])(sys.argv[2])
taken = []
while (got := q.claim("child")) is not None:
    taken.append(got[0])
    if len(taken) % 2:
        q.ack(got[0])  # every other claim stays unacknowledged
q.close()
print(json.dumps(taken))
"""


def _drain_in_processes(target: str, directory: str, n: int) -> list[list[str]]:
    """n real processes claim from one directory at once; what each one took."""
    children = [subprocess.Popen([sys.executable, "-c", _CHILD, target, directory],
                                 cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for _ in range(n)]
    taken = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        taken.append(json.loads(out))
    return taken


@pytest.mark.parametrize("target", [LITEQUEUE, HUEY])
def test_two_processes_share_one_directory(target, tmp_path):
    directory = str(tmp_path / "q")
    q = resolve(target)(directory)
    ids = [q.enqueue(f"e{n}|payload".encode()) for n in range(200)]
    taken = _drain_in_processes(target, directory, 2)
    # exclusive claims: no entry went to both processes, and every entry went to one
    assert not set(taken[0]) & set(taken[1])
    assert sorted(taken[0] + taken[1]) == sorted(ids)
    unacked = {i for t in taken for i in t[1::2]}
    q.recover()
    states = q.states()
    if target == LITEQUEUE:  # the unacked claims come back after recover
        assert {i for i, s in states.items() if s == "PENDING"} == unacked
        assert {i for i, s in states.items() if s == "DELIVERED"} == set(ids) - unacked
    else:  # huey: dequeued means gone, acked or not
        assert states == {}
    q.close()
