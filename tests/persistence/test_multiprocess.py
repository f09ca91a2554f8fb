"""Real processes (fork): exclusive claims, SIGKILL mid-run, a dead lock holder."""

import fcntl
import multiprocessing
import os
import signal
import time

import pytest

from persistence import open_queue

CTX = multiprocessing.get_context("fork")


def _worker(directory, index, per_process, out, options=None):
    delivered = []
    with open_queue(directory, **(options or {})) as q:
        made = 0
        idle = 0
        while idle < 30:
            if made < per_process:
                batch = [f"{index}:{n}".encode() for n in range(made, min(made + 7, per_process))]
                q.enqueue_many(batch)
                made += len(batch)
            got = q.claim_many(f"w{index}", 3)
            if not got:
                idle += 1
                time.sleep(0.005)
                continue
            idle = 0
            for entry_id, payload in got:
                q.ack(entry_id)
                delivered.append((entry_id, payload))
    out.put(delivered)


def test_four_processes_enqueue_and_drain_each_entry_exactly_once(qdir):
    open_queue(qdir).close()
    out = CTX.Queue()
    procs = [CTX.Process(target=_worker, args=(qdir, i, 150, out)) for i in range(4)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    delivered = [d for r in results for d in r]
    ids = [i for i, _ in delivered]
    assert len(ids) == len(set(ids)) == 600  # no entry handed to two processors
    assert {p for _, p in delivered} == {f"{i}:{n}".encode() for i in range(4) for n in range(150)}
    with open_queue(qdir) as q:
        assert set(q.states().values()) <= {"DELIVERED"}


def _victim(directory, ready):
    q = open_queue(directory)
    q.ack(q.claim("victim")[0])
    q.claim_many("victim", 3)
    ready.set()
    time.sleep(60)


def test_sigkilled_processor_claims_are_requeued_and_acks_kept(qdir):
    with open_queue(qdir) as q:
        ids = q.enqueue_many([b"%d" % i for i in range(10)])
    ready = CTX.Event()
    child = CTX.Process(target=_victim, args=(qdir, ready))
    child.start()
    assert ready.wait(60)
    with open_queue(qdir) as q:
        assert q.recover().requeued == ()  # alive: its claims are left alone
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        report = q.recover()
        assert sorted(report.requeued) == sorted(ids[1:4])
        assert q.states()[ids[0]] == "DELIVERED"  # acknowledged before the kill: kept
        got = q.claim_many("rescuer", 20)
        assert sorted(i for i, _ in got) == sorted(ids[1:])
    # the dead owner's file was cleaned up, as the incident's stale locks never were
    assert len(os.listdir(os.path.join(qdir, "owners"))) == 0


TORN = b"\xb2\x00\x00\x00\x40half a commit"


def _hold_lock_forever(directory, ready):
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)  # the commit lock is the directory's
    fcntl.flock(fd, fcntl.LOCK_EX)
    with open(os.path.join(directory, "journal.0"), "ab") as f:
        f.write(TORN)  # dies mid-append
    ready.set()
    time.sleep(60)


def test_killed_lock_holder_never_blocks_the_rest(qdir):
    with open_queue(qdir) as q:
        a = q.enqueue(b"a")
    ready = CTX.Event()
    child = CTX.Process(target=_hold_lock_forever, args=(qdir, ready))
    child.start()
    assert ready.wait(60)
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    with open_queue(qdir) as q:  # would hang forever if the lock outlived its holder
        assert q.last_recovery.torn_bytes_cut == len(TORN)
        b = q.enqueue(b"b")
        assert q.states() == {a: "PENDING", b: "PENDING"}


@pytest.mark.slow
def test_sigkill_mid_run_loses_nothing(qdir):
    keep = {"retain_delivered": 1000}  # compaction must not hide what was delivered
    with open_queue(qdir, **keep) as q:
        q.enqueue_many([b"%d" % i for i in range(400)])
    out = CTX.Queue()
    procs = [CTX.Process(target=_worker, args=(qdir, i, 0, out, keep)) for i in range(3)]
    for p in procs:
        p.start()
    time.sleep(0.2)
    os.kill(procs[0].pid, signal.SIGKILL)
    procs[0].join()
    results = [out.get(timeout=120) for _ in procs[1:]]
    for p in procs[1:]:
        p.join(timeout=30)
    with open_queue(qdir, **keep) as q:
        q.recover()
        rest = q.claim_many("final", 1000)
        q.ack_many([i for i, _ in rest])
        states = q.states()
    survivors = [i for r in results for i, _ in r] + [i for i, _ in rest]
    assert len(survivors) == len(set(survivors))
    assert set(states.values()) == {"DELIVERED"} and len(states) == 400
