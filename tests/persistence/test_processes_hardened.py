"""Real processes against the hardened queue: idle handles, fork, removed files, full disk.

Every test here drives separate processes (``fork`` context) through a shared queue
directory and checks what a user relies on: nothing acknowledged is lost, nothing is
delivered twice, and no sabotage of the directory's side files makes a call hang.
Children report through a multiprocessing queue (``("error", traceback)`` on any
exception) and every wait has a timeout, so a hang fails the test instead of blocking
the suite; children still alive at teardown are killed.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import queue as stdlib_queue
import shutil
import signal
import subprocess
import time
import traceback
from collections import Counter

import pytest

from persistence import (
    DELIVERED,
    PENDING,
    PROCESSING,
    ClaimMismatchError,
    DiskFullError,
    ForkedHandleError,
    open_queue,
)

CTX = multiprocessing.get_context("fork")
WAIT = 30  # seconds: the most any single step may take before the test calls it a hang


# -- plumbing: children that report, waits that time out --------------------------------


def _guard(target, out, *args):
    """Run ``target(out, *args)`` in the child; any exception goes to the parent."""
    try:
        target(out, *args)
    except BaseException:
        out.put(("error", traceback.format_exc()))
        raise


@pytest.fixture
def spawn():
    """``spawn(target, *args) -> (process, out)``; strays are killed at teardown."""
    started = []

    def start(target, *args):
        out = CTX.Queue()
        proc = CTX.Process(target=_guard, args=(target, out, *args), daemon=True)
        proc.start()
        started.append(proc)
        return proc, out

    yield start
    for proc in started:
        if proc.is_alive():
            proc.kill()
        proc.join(10)


def _expect(out, tag, timeout=WAIT):
    """The child's next message, which must be ``tag``; fails on an error or a hang."""
    try:
        got, value = out.get(timeout=timeout)
    except stdlib_queue.Empty:
        pytest.fail(f"no {tag!r} from the child within {timeout} s: it hangs")
    if got == "error":
        pytest.fail(f"child failed while we waited for {tag!r}:\n{value}")
    assert got == tag
    return value


def _join(proc, timeout=WAIT):
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        proc.join(10)
        pytest.fail(f"child pid {proc.pid} still running after {timeout} s: it hangs")
    assert proc.exitcode == 0


def _wait(event):
    if not event.wait(WAIT):
        raise TimeoutError(f"parent did not signal within {WAIT} s")


def _drain(q, worker="drain"):
    """Claim and ack until nothing is PENDING; the (id, payload) pairs delivered."""
    delivered = []
    while got := q.claim_many(worker, 500):
        q.ack_many([entry_id for entry_id, _ in got])
        delivered.extend(got)
    return delivered


# -- 1. a handle that idled through checkpoints ---------------------------------------


def _idler(out, directory, go, claim_now):
    with open_queue(directory) as q:
        out.put(("opened", None))
        _wait(go)
        y = q.enqueue(b"y")  # the first call after two checkpoints by someone else
        out.put(("enqueued", (y, q.states())))
        _wait(claim_now)
        out.put(("claimed", q.claim("b")))


def _idle_claimer(out, directory, go):
    with open_queue(directory) as q:
        out.put(("opened", None))
        _wait(go)
        out.put(("claimed", q.claim("c")))  # the first call after two checkpoints


def _checkpointer(out, directory, go, again):
    with open_queue(directory) as q:
        _wait(go)
        x = q.enqueue(b"x")
        q.compact()
        got = q.claim("a")
        q.ack(got[0])
        q.compact()
        out.put(("two checkpoints", (x, got)))
        _wait(again)
        q.compact()
        out.put(("compacted", q.states()))


def test_handle_idle_across_two_checkpoints_loses_nothing_and_resurrects_nothing(qdir, spawn):
    open_queue(qdir).close()
    go_a, go_b, go_c, again, claim_now = (CTX.Event() for _ in range(5))
    proc_b, out_b = spawn(_idler, qdir, go_b, claim_now)
    proc_c, out_c = spawn(_idle_claimer, qdir, go_c)
    _expect(out_b, "opened")
    _expect(out_c, "opened")
    proc_a, out_a = spawn(_checkpointer, qdir, go_a, again)
    go_a.set()
    x, got = _expect(out_a, "two checkpoints")
    assert got == (x, b"x")

    go_c.set()  # C has idled through both checkpoints: x is acked, nothing to claim
    assert _expect(out_c, "claimed") is None
    _join(proc_c)
    go_b.set()  # so has B
    y, seen_by_b = _expect(out_b, "enqueued")
    assert seen_by_b[y] == PENDING
    assert seen_by_b.get(x, DELIVERED) == DELIVERED  # not back to PENDING
    again.set()
    seen_by_a = _expect(out_a, "compacted")
    assert seen_by_a[y] == PENDING
    _join(proc_a)

    with open_queue(qdir) as q:
        states = q.states()
        assert states[y] == PENDING
        assert states.get(x, DELIVERED) == DELIVERED
        assert _drain(q) == [(y, b"y")]
    claim_now.set()
    assert _expect(out_b, "claimed") is None  # x was acked: nobody may get it again
    _join(proc_b)


# -- 2. a producer idling between busy ones: the "done when" test -----------------------

SOAK_SECONDS = 30
SLOW_EVERY = 2.0


def _producer(out, directory, start, stop, name, every):
    """Enqueue until ``stop``; ``every`` > 0: idle that long after each enqueue."""
    made = {}
    with open_queue(directory) as q:
        out.put(("ready", None))
        _wait(start)
        n = 0
        while not stop.is_set():
            payload = b"%s:%d" % (name, n)
            made[q.enqueue(payload)] = payload  # recorded only once enqueue returned
            n += 1
            if every and stop.wait(every):  # idle while the others checkpoint many times
                break
    out.put(("done", made))


def _busy_consumer(out, directory, start, stop):
    delivered = []
    with open_queue(directory) as q:
        out.put(("ready", None))
        _wait(start)
        while not stop.is_set():
            # in small batches, to keep up: a short backlog means a small checkpoint,
            # so a checkpoint every few dozen commits while the slow producer idles
            got = q.claim_many("consumer", 8)
            if not got:
                time.sleep(0.001)
                continue
            q.ack_many([entry_id for entry_id, _ in got])
            delivered.extend(got)  # recorded only once the ack returned
    out.put(("done", delivered))


@pytest.mark.slow
def test_idle_producer_among_busy_processes_every_enqueue_delivered_exactly_once(qdir, spawn):
    open_queue(qdir).close()
    start, stop = CTX.Event(), CTX.Event()
    children = [spawn(_producer, qdir, start, stop, b"busy", 0),
                spawn(_producer, qdir, start, stop, b"slow", SLOW_EVERY),
                spawn(_busy_consumer, qdir, start, stop)]
    for _, out in children:
        _expect(out, "ready")
    start.set()
    try:
        time.sleep(SOAK_SECONDS)
    finally:
        stop.set()
    busy, slow, consumed = (_expect(out, "done", timeout=120) for _, out in children)
    for proc, _ in children:
        _join(proc)

    with open_queue(qdir) as q:
        q.recover()
        drained = _drain(q)
        left = {i: s for i, s in q.states().items() if s != DELIVERED}
        generation = q.stats()["generation"]
    print(f"enqueued: busy={len(busy)} slow={len(slow)}; delivered: consumer="
          f"{len(consumed)} drain={len(drained)}; generation at the end={generation}")

    enqueued = {**busy, **slow}
    assert len(enqueued) == len(busy) + len(slow)  # ids are unique across processes
    assert len(slow) >= 5  # the idle producer really came back many times
    delivered = consumed + drained
    ids = [entry_id for entry_id, _ in delivered]
    twice = [i for i, n in Counter(ids).items() if n > 1]
    assert not twice, f"{len(twice)} entries delivered twice"
    missing = set(enqueued) - set(ids)
    assert not missing, (f"{len(missing)} acknowledged enqueues never delivered "
                         f"({len(missing & set(slow))} of them from the slow producer)")
    assert set(ids) <= set(enqueued), "delivered entries that were never enqueued"
    assert all(enqueued[i] == payload for i, payload in delivered)
    assert left == {}


# -- 3. a handle inherited through fork --------------------------------------------------


def _use_inherited(out, q, entry_id):
    outcome = {}
    calls = {"claim": lambda: q.claim("child"), "enqueue": lambda: q.enqueue(b"child"),
             "ack": lambda: q.ack(entry_id), "states": q.states}
    for name, call in calls.items():
        try:
            call()
            outcome[name] = "returned"
        except Exception as exc:
            outcome[name] = type(exc).__name__
    out.put(("tried", outcome))


def test_forked_children_cannot_use_the_parents_handle(qdir, spawn):
    with open_queue(qdir) as q:
        ids = q.enqueue_many([b"%d" % i for i in range(5)])
        children = [spawn(_use_inherited, q, ids[0]) for _ in range(3)]
        for proc, out in children:
            outcome = _expect(out, "tried")
            assert outcome == dict.fromkeys(["claim", "enqueue", "ack", "states"],
                                            ForkedHandleError.__name__)
            _join(proc)
        # the parent's handle is untouched and still works
        assert q.states() == dict.fromkeys(ids, PENDING)
        assert q.claim("parent") == (ids[0], b"0")
        q.ack(ids[0])
        assert q.states()[ids[0]] == DELIVERED
    with open_queue(qdir) as fresh:
        assert fresh.states() == {ids[0]: DELIVERED, **dict.fromkeys(ids[1:], PENDING)}


def _close_inherited(out, q):
    q.close()
    out.put(("closed", None))


def test_child_closing_an_inherited_handle_does_not_break_the_parent(qdir, spawn):
    owners = os.path.join(qdir, "owners")
    with open_queue(qdir) as q:
        a, b = q.enqueue_many([b"a", b"b"])
        assert q.claim("parent") == (a, b"a")  # held across the fork
        mine = os.listdir(owners)
        proc, out = spawn(_close_inherited, q)
        _expect(out, "closed")
        _join(proc)
        assert os.listdir(owners) == mine  # the parent's owner file is still there
        with open_queue(qdir) as other:
            # the parent is alive and must look alive: its claim is not requeued
            assert other.recover().requeued == ()
            assert other.states()[a] == PROCESSING
        q.ack(a)
        c = q.enqueue(b"c")
        assert q.claim_many("parent", 5) == [(b, b"b"), (c, b"c")]
        q.ack_many([b, c])
        assert q.states() == dict.fromkeys([a, b, c], DELIVERED)


# -- 4. removing the side files never hangs ----------------------------------------------


def _remove(directory, names):
    """Unlink what exists of ``names`` (relative to the queue directory); those removed."""
    removed = []
    for name in names:
        try:
            os.unlink(os.path.join(directory, name))
            removed.append(name)
        except FileNotFoundError:
            pass
    return removed


def _churn(out, directory, name, phases, seconds):
    made, delivered = [], []
    with open_queue(directory) as q:
        q.enqueue(b"warm-up: %s" % name.encode())  # so that the reserve exists
        _drain(q, name)
        out.put(("idle", None))  # open, and no claim held: files may be removed now
        n = 0
        for go in phases:
            _wait(go)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                made.extend(q.enqueue_many([b"%s:%d" % (name.encode(), n + k)
                                            for k in range(3)]))
                n += 3
                q.recover()  # must never take the other (live) process for dead
                for entry_id, payload in q.claim_many(name, 2):
                    q.ack(entry_id)
                    delivered.append((entry_id, payload))
            out.put(("idle", None))
    out.put(("done", (made, delivered)))


def test_removing_owner_reserve_and_lock_files_never_hangs_or_duplicates(qdir, spawn):
    open_queue(qdir).close()
    phases = [CTX.Event(), CTX.Event()]
    children = [spawn(_churn, qdir, name, phases, 0.5) for name in ("p1", "p2")]
    for _, out in children:
        _expect(out, "idle")
    # first what a tmp cleaner or an operator "fixing a stale lock" removes...
    _remove(qdir, ["reserve", "lock"])
    phases[0].set()
    for _, out in children:
        _expect(out, "idle")
    # ...then the owner files too, while both handles stay open
    owners = [os.path.join("owners", name) for name in os.listdir(os.path.join(qdir, "owners"))]
    assert len(_remove(qdir, [*owners, "reserve", "lock"])) >= 2  # both handles' owner files
    phases[1].set()
    for _, out in children:
        _expect(out, "idle")
    results = [_expect(out, "done") for _, out in children]
    for proc, _ in children:
        _join(proc)

    made = [i for m, _ in results for i in m]
    delivered = [d for _, ds in results for d in ds]
    with open_queue(qdir) as q:
        q.recover()
        delivered += _drain(q)
        assert set(q.states().values()) <= {DELIVERED}
    ids = [i for i, _ in delivered]
    warm_ups = {i for i, p in delivered if p.startswith(b"warm-up")}
    assert len(ids) == len(set(ids)), "an entry was delivered twice"
    assert set(ids) - warm_ups == set(made)


def _lock_file_games(out, directory, rounds):
    lock = os.path.join(directory, "lock")
    delivered = []
    with open_queue(directory) as h1, open_queue(directory) as h2:
        made = []
        for n in range(rounds):
            with open(lock, "wb") as f:
                f.write(b"not a lock")
            made.append(h1.enqueue(b"%d" % n))
            os.unlink(lock)
            got = h2.claim("h2")
            with open(lock, "wb"):
                pass
            h2.ack(got[0])
            delivered.append(got[0])
            os.unlink(lock)
        out.put(("done", (made, delivered, h1.states())))


def test_a_file_named_lock_created_and_deleted_repeatedly_changes_nothing(qdir, spawn):
    proc, out = spawn(_lock_file_games, qdir, 40)
    made, delivered, states = _expect(out, "done")
    _join(proc)
    assert delivered == made  # FIFO, each once
    assert set(states.values()) <= {DELIVERED}


# -- 5. only the claimer may ack ---------------------------------------------------------


def _claim_and_wait(out, directory):
    with open_queue(directory) as q:
        out.put(("claimed", q.claim("victim")))
        time.sleep(120)  # SIGKILLed long before


def _claim_then_ack(out, directory, ack_now):
    with open_queue(directory) as q:
        got = q.claim("rescuer")
        out.put(("claimed", got))
        _wait(ack_now)
        q.ack(got[0])
        out.put(("acked", q.states()))


def test_only_the_handle_that_claimed_an_entry_may_ack_or_fail_it(qdir, spawn):
    with open_queue(qdir) as q:
        x = q.enqueue(b"x")
        victim, out = spawn(_claim_and_wait, qdir)
        assert _expect(out, "claimed") == (x, b"x")
        os.kill(victim.pid, signal.SIGKILL)
        victim.join(WAIT)
        assert q.recover().requeued == (x,)

        ack_now = CTX.Event()
        rescuer, out = spawn(_claim_then_ack, qdir, ack_now)
        assert _expect(out, "claimed") == (x, b"x")
        with pytest.raises(ClaimMismatchError):
            q.ack(x)  # a live handle that never claimed x
        with pytest.raises(ClaimMismatchError):
            q.ack_many([x])
        with pytest.raises(ClaimMismatchError):
            q.fail(x, "not mine to fail")
        assert q.states()[x] == PROCESSING  # still the rescuer's
        ack_now.set()
        assert _expect(out, "acked")[x] == DELIVERED  # the claimer still can
        _join(rescuer)
        assert q.states()[x] == DELIVERED


# -- 6. a real full disk ------------------------------------------------------------------


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1 MiB tmpfs mounted under tmp_path; skips unless we are root and can mount."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    if shutil.which("mount") is None:
        pytest.skip("no mount(8) on this machine")
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mount -t tmpfs failed here: {done.stderr.strip()}")
    try:
        yield str(mnt)
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


PAYLOAD = b"p" * 200


def _fill_then_drain(directory):
    """Enqueue until DiskFullError, drain everything, enqueue again; returns
    ((id, payload) enqueued ok, (id, payload) delivered, id enqueued after draining)."""
    made = []
    with open_queue(directory) as q:
        for n in range(50_000):
            payload = PAYLOAD + b"%d" % n
            try:
                made.append((q.enqueue(payload), payload))
            except DiskFullError as exc:
                assert exc.errno in (errno.ENOSPC, errno.EDQUOT)
                break
        else:
            raise AssertionError("a 1 MiB tmpfs never filled")
        delivered = []
        while (got := q.claim("drain")) is not None:
            q.ack(got[0])  # no DiskFullError: draining a full queue must work
            delivered.append(got)
        again = q.enqueue(b"after the drain")
    return made, delivered, again


def _check_filled_and_drained(made, delivered, again):
    print(f"enqueued before the disk was full: {len(made)}")
    assert len(made) > 100
    assert delivered == made  # each exactly once, in order, payload intact
    assert again not in {i for i, _ in made}


def test_full_tmpfs_queue_drains_completely_then_accepts_again(small_tmpfs):
    qdir = os.path.join(small_tmpfs, "q")
    made, delivered, again = _fill_then_drain(qdir)
    _check_filled_and_drained(made, delivered, again)
    with open_queue(qdir) as q:
        assert q.claim("w") == (again, b"after the drain")


def _fill_then_drain_child(out, directory):
    out.put(("done", _fill_then_drain(directory)))


def test_full_tmpfs_filled_and_drained_by_another_process_while_one_stays_open(
        small_tmpfs, spawn):
    qdir = os.path.join(small_tmpfs, "q")
    with open_queue(qdir) as held:
        first = held.enqueue(b"first")  # this handle holds its files open throughout
        proc, out = spawn(_fill_then_drain_child, qdir)
        made, delivered, again = _expect(out, "done", timeout=120)
        _join(proc)
        _check_filled_and_drained([(first, b"first"), *made], delivered, again)
        states = held.states()
        assert states[again] == PENDING
        assert all(states.get(i, DELIVERED) == DELIVERED for i, _ in made)
        assert held.claim("held") == (again, b"after the drain")
        held.ack(again)
        held.enqueue(b"and the idle handle can enqueue too")


def test_a_drained_full_queue_stays_usable_for_good(small_tmpfs):
    """Filling the disk, draining, then steady use through the same handle: the space
    the drained entries held (their reserve, the old generation) comes back, so every
    later call works. (Before, the third enqueue into the empty queue and every compact
    raised DiskFullError for good: the reserve waited for a checkpoint to shrink, and the
    checkpoint for space the reserve held.)"""
    with open_queue(os.path.join(small_tmpfs, "q")) as q:
        made = 0
        with pytest.raises(DiskFullError):
            for n in range(50_000):
                q.enqueue(PAYLOAD + b"%d" % n)
                made += 1
        drained = 0
        while (got := q.claim("drain")) is not None:
            q.ack(got[0])
            drained += 1
        assert drained == made > 100
        for n in range(2000):  # many checkpoints' worth of steady traffic
            entry_id = q.enqueue(b"steady %d" % n)
            assert q.claim("w") == (entry_id, b"steady %d" % n)
            q.ack(entry_id)
        q.compact()


# -- a forked child that never touches the queue -------------------------------------------


def _owner_with_idle_child(out, directory, stuck_in_commit):
    q = open_queue(directory)
    helper = os.fork()  # after the open: it inherits the handle's descriptors
    if helper == 0:  # a worker pool's idle process, say: it never uses the queue
        time.sleep(60)
        os._exit(0)
    out.put(("helper", helper))
    got = q.claim("owner")
    if stuck_in_commit:
        import persistence._os as pos

        pos.fsync = lambda fd, path: time.sleep(60)  # SIGKILLed inside ack's commit
        out.put(("ready", None))
        q.ack(got[0])
    out.put(("ready", None))
    time.sleep(60)


def _open_and_report(out, directory):
    with open_queue(directory) as q:
        out.put(("states", q.states()))


@pytest.mark.parametrize("stuck_in_commit", [False, True])
def test_an_idle_forked_child_does_not_keep_a_dead_parents_locks(qdir, spawn, stuck_in_commit):
    with open_queue(qdir) as q:
        x = q.enqueue(b"x")
    proc, out = spawn(_owner_with_idle_child, qdir, stuck_in_commit)
    helper = _expect(out, "helper")
    try:
        _expect(out, "ready")
        time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()  # no timeout: waitpid, not the sentinel pipe the helper inherited
        # The helper lives on. Opening must not hang on the dead parent's commit lock,
        # and the dead parent's claim must be seen as dead.
        other, other_out = spawn(_open_and_report, qdir)
        states = _expect(other_out, "states")
        _join(other)
        assert states[x] in (PENDING, DELIVERED)  # requeued, or its ack had landed
    finally:
        os.kill(helper, signal.SIGKILL)


# -- 7. owner files removed by another program ---------------------------------------------
# A tmp cleaner, or an operator deleting what looks like a stale lock file, removes
# owners/<token> of a live handle. Its claims must stay its own (no one else may be handed
# them, its ack must work); the claims of a handle that really ended must still come back.


def _live_claimer(out, directory, ack_now):
    with open_queue(directory) as q:
        ids = [i for i, _ in q.claim_many("live", 2)]
        out.put(("claimed", ids))
        _wait(ack_now)
        q.ack_many(ids)  # raised ClaimMismatchError once recover() elsewhere took them
        out.put(("acked", ids))


def _ending_claimer(out, directory, end, close_now):
    q = open_queue(directory)
    out.put(("claimed", [i for i, _ in q.claim_many("ending", 2)]))
    if end == "closed":
        _wait(close_now)
        q.close()  # a clean close: this process lives on
        out.put(("closed", None))
    time.sleep(120)  # SIGKILLed (or, once closed, killed at teardown)


def _rescuer(out, directory):
    with open_queue(directory) as q:
        requeued = list(q.last_recovery.requeued) + list(q.recover().requeued)
        out.put(("rescued", (requeued, [i for i, _ in _drain(q, "rescuer")])))


@pytest.mark.parametrize("end", ["killed", "closed", "power_loss"])
def test_a_live_handle_keeps_its_claims_when_its_owner_file_is_removed(qdir, spawn, end):
    """A stays open and keeps its claims without its owner file; C ends (SIGKILLed after
    its owner file was removed, closed cleanly while its process lives on, or SIGKILLed
    and then every owner file gone, as a power loss takes names never fsynced): another
    process's recover() hands out C's claims and everything else, never A's, and A's
    late acks land. Every entry is delivered exactly once."""
    with open_queue(qdir) as q:
        made = q.enqueue_many([b"%d" % n for n in range(6)])
    ack_now, close_now = CTX.Event(), CTX.Event()
    live, live_out = spawn(_live_claimer, qdir, ack_now)
    mine = _expect(live_out, "claimed")
    ending, ending_out = spawn(_ending_claimer, qdir, end, close_now)
    theirs = _expect(ending_out, "claimed")
    owners = os.path.join(qdir, "owners")
    if end == "power_loss":
        os.kill(ending.pid, signal.SIGKILL)
        ending.join(WAIT)
    # A's and C's (a SIGKILL leaves C's file; a power loss takes it, never fsynced)
    assert len(_remove(qdir, [os.path.join("owners", n) for n in os.listdir(owners)])) == 2
    if end == "killed":
        os.kill(ending.pid, signal.SIGKILL)
        ending.join(WAIT)
    elif end == "closed":
        close_now.set()
        _expect(ending_out, "closed")
        assert ending.is_alive()

    rescuer, out = spawn(_rescuer, qdir)
    requeued, rescued = _expect(out, "rescued")
    _join(rescuer)
    assert sorted(requeued) == sorted(theirs)  # the ended handle's claims, never A's
    ack_now.set()
    assert sorted(_expect(live_out, "acked")) == sorted(mine)  # A's acks were not refused
    _join(live)
    delivered = rescued + mine
    assert len(delivered) == len(set(delivered)), "an entry was delivered twice"
    assert sorted(delivered) == sorted(made)
    with open_queue(qdir) as q:
        assert set(q.states().values()) == {DELIVERED}
