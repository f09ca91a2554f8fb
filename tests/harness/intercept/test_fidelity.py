"""Verdicts the real system could produce: errors the kernel returns, harness bugs kept apart.

Each test here is one false alarm or false pass found on third-party code (issue 11):
it failed before the fix and asserts what a user relies on now.
"""

from __future__ import annotations

import errno
import os
import random

import pytest

from harness import faults
from harness.check.history import History
from harness.faults import DiskFull, FaultSpecError, PermissionDenied
from harness.faults.errnos import INJECTED, natural_error, table_rows
from harness.intercept.shim import installed
from harness.run.runner import run_scenario
from harness.run.scenarios import Scenario, Workload


def scenario(*fs, entries=8, processors=1, seed=3):
    plan = faults.Plan(faults=tuple(fs))
    return Scenario(name="t", description="test", fault=fs[0].kind, plan=plan,
                    workload=Workload(entries=entries, processors=processors), seed=seed)


def armed(*fs):
    return faults.Plan(faults=tuple(fs)).arm(random.Random(1))


# -- 1. the shim's own exceptions are not the target's failures -------------------------


def test_os_write_on_a_file_opened_through_open_is_not_a_shim_error(tmp_path):
    h = History()
    with installed(sandbox=tmp_path, history=h) as shim, shim.processor(0), open(
            tmp_path / "x", "wb") as f:
        assert os.write(f.fileno(), b"hello") == 5
    assert (tmp_path / "x").read_bytes() == b"hello"
    assert [r.outcome for r in h.fs_ops() if r.call == "write"] == ["ok"]
    assert not shim.harness_errors


class _BrokenModel:
    """A durability model with a bug: the harness's, not the target's."""

    def file_synced(self, fd):
        raise TypeError("a bug in the durability model")

    dir_synced = file_synced


def test_an_exception_in_the_harness_is_a_harness_error_not_a_failed_call(tmp_path):
    h = History()
    with installed(sandbox=tmp_path, history=h, model=_BrokenModel()) as shim, \
            shim.processor(0):
        fd = os.open(tmp_path / "x", os.O_WRONLY | os.O_CREAT)
        try:
            # what a target's `except Exception` would do: it cannot take it for its own
            with pytest.raises(BaseException) as info:
                try:
                    os.fsync(fd)
                except Exception:  # noqa: BLE001
                    pytest.fail("the target's except Exception caught the harness's bug")
        finally:
            os.close(fd)
    assert type(info.value).__name__ == "HarnessError"
    assert "harness error" in str(info.value) and "durability model" in str(info.value)
    assert shim.harness_errors


class _SwallowingQueue:
    """Catches everything, as a careless target does; its enqueues all 'succeed'."""

    def __init__(self, directory):
        os.makedirs(directory, exist_ok=True)
        self.d, self.n, self.items = directory, 0, []

    def enqueue(self, payload):
        self.n += 1
        try:
            with open(os.path.join(self.d, f"{self.n}"), "wb") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:  # noqa: BLE001 - the point of this target
            pass
        self.items.append((str(self.n), payload))
        return str(self.n)

    def claim(self, worker):
        return self.items.pop(0) if self.items else None

    def ack(self, ident):
        pass

    def recover(self):
        pass

    def close(self):
        pass


def test_a_run_with_a_harness_error_ends_as_error_naming_the_harness(monkeypatch):
    from harness.faults import durability
    def broken(self, fd):
        raise TypeError("planted harness bug")

    monkeypatch.setattr(durability.DurabilityModel, "file_synced", broken)
    run = run_scenario("t:t", scenario(faults.PowerLoss(at_op=30)), factory=_SwallowingQueue)
    assert run.status == "error"
    assert run.error.startswith("harness error (a bug in the harness")
    assert "planted harness bug" in run.error


# -- 2. disk full: short counts, as write(2) -------------------------------------------


@pytest.mark.parametrize("mode", ["wb", "w"])
def test_disk_full_mid_write_lands_each_byte_once(tmp_path, mode):
    data = bytes(range(256)) * 40 if mode == "wb" else "x" * 10240
    h = History()
    plan = armed(DiskFull(after_bytes=5000))
    with installed(sandbox=tmp_path, history=h, plan=plan) as shim, shim.processor(0), \
            pytest.raises(OSError) as info, open(tmp_path / "f", mode) as f:
        f.write(data)
    assert info.value.errno == errno.ENOSPC
    # before: the short write raised, the buffer kept everything and wrote the prefix again
    raw = data if mode == "wb" else data.encode()
    assert (tmp_path / "f").read_bytes() == raw[:5000]
    writes = [(r.nbytes, r.outcome) for r in h.fs_ops() if r.call == "write"]
    assert writes[0] == (5000, "ok") and writes[1][1] == "ENOSPC"


def test_os_write_returns_the_short_count_then_enospc(tmp_path):
    with installed(sandbox=tmp_path, history=History(),
                   plan=armed(DiskFull(after_bytes=3))) as shim, shim.processor(0):
        fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
        assert os.write(fd, b"0123456789") == 3
        with pytest.raises(OSError) as info:
            os.write(fd, b"3456789")
        os.close(fd)
    assert info.value.errno == errno.ENOSPC and (tmp_path / "f").read_bytes() == b"012"


# -- 3. errors in the kernel's order ------------------------------------------------------


def test_mkdir_of_an_existing_directory_answers_eexist_on_a_full_disk(tmp_path):
    (tmp_path / "q").mkdir()
    plan = armed(DiskFull(after_bytes=0))
    with installed(sandbox=tmp_path, history=(h := History()), plan=plan) as shim, \
            shim.processor(0):
        with pytest.raises(FileExistsError):
            os.mkdir(tmp_path / "q")
        os.makedirs(tmp_path / "q", exist_ok=True)  # the stdlib tolerates EEXIST: no error
        with pytest.raises(OSError) as info:
            os.mkdir(tmp_path / "new")
    assert info.value.errno == errno.ENOSPC
    assert [(r.call, r.outcome, bool(r.fault)) for r in h.fs_ops() if r.call == "mkdir"] == [
        ("mkdir", "EEXIST", False), ("mkdir", "EEXIST", False), ("mkdir", "ENOSPC", True)]
    assert plan.fired == 1


def test_permission_denied_on_a_missing_file_answers_enoent(tmp_path):
    plan = armed(PermissionDenied(calls=("unlink", "open_read")))
    with installed(sandbox=tmp_path, history=History(), plan=plan) as shim, shim.processor(0):
        with pytest.raises(FileNotFoundError):
            os.unlink(tmp_path / "absent")
        with pytest.raises(FileNotFoundError):
            open(tmp_path / "absent", "rb")  # noqa: SIM115
        (tmp_path / "here").write_bytes(b"")
        with pytest.raises(PermissionError):
            os.unlink(tmp_path / "here")
    assert plan.fired == 1


@pytest.mark.parametrize("kind, fault", [("write", "permission_denied"),
                                         ("fsync", "permission_denied"),
                                         ("read", "permission_denied")])
def test_a_fault_cannot_name_a_call_the_kernel_never_fails_that_way(kind, fault):
    with pytest.raises(FaultSpecError, match=f"calls=.*{kind}.*kernel"):
        PermissionDenied(calls=(kind,))


def test_the_errno_table_names_real_errnos_and_real_call_kinds():
    from harness.faults.actions import CALL_KINDS

    for fault, call, errs in table_rows():
        assert fault in INJECTED
        assert call in CALL_KINDS or call in ("open_read", "open_write", "link", "symlink",
                                              "setattr")
        for e in errs.split(", "):
            assert isinstance(getattr(errno, e), int)


@pytest.mark.parametrize("kind, flags, exists, want", [
    ("mkdir", 0, True, "EEXIST"), ("mkdir", 0, False, None),
    ("open", 0, False, "ENOENT"), ("open", os.O_CREAT, False, None),
    ("open", os.O_CREAT | os.O_EXCL, True, "EEXIST"), ("open", os.O_CREAT, True, None),
    ("unlink", 0, False, "ENOENT"), ("unlink", 0, True, None),
    ("replace", 0, False, "ENOENT"), ("listdir", 0, False, "ENOENT"),
])
def test_natural_error(tmp_path, kind, flags, exists, want):
    path = tmp_path / "p"
    if exists:
        path.mkdir() if kind in ("mkdir", "listdir") else path.write_bytes(b"")
    got = natural_error(kind, str(path), str(tmp_path / "dst") if kind == "replace" else None,
                        flags=flags, lstat=os.lstat, dirname=os.path.dirname)
    assert got == want


# -- 4-6. the checker: retried calls, corrupt by id, overlapping claims -------------------

from harness.check.checker import check  # noqa: E402
from harness.check.history import DRAIN  # noqa: E402


def _enq(h, p, key, ident, *, fs=()):
    h.op("invoke", p, "enqueue", key=key, value={"payload": f"{key}|x".encode()})
    for call, outcome, fault in fs:
        h.fs(p, call, path="q/j", outcome=outcome, fault=fault)
    h.op("ok", p, "enqueue", key=key, value={"id": ident})


def _drain_empty(h):
    for f in ("open", "recover"):
        h.op("invoke", DRAIN, f)
        h.op("ok", DRAIN, f)
    h.op("invoke", DRAIN, "claim")
    h.op("ok", DRAIN, "claim")


def test_a_failed_write_retried_inside_the_call_is_not_a_swallowed_error():
    h = History()
    _enq(h, 0, "e1", "1", fs=[("write", "ENOSPC", "DiskFull()"), ("write", "ok", None)])
    _drain_empty(h)
    (v,) = check(h).violations
    assert v.kind == "lost"  # lost, but not "the error was swallowed": it was retried


def test_a_failed_write_not_retried_is_still_a_swallowed_error():
    h = History()
    _enq(h, 0, "e1", "1", fs=[("write", "ENOSPC", "DiskFull()"), ("fsync", "ok", None)])
    _drain_empty(h)
    (v,) = check(h).violations
    assert v.kind == "silent_error" and "swallowed" in v.detail


@pytest.mark.parametrize("payload", [b"", b"garbage", b"\x00" * 8])
def test_a_known_queue_id_with_wrong_bytes_is_corrupt_not_lost_and_phantom(payload):
    h = History()
    _enq(h, 0, "e1", "7")
    h.op("invoke", DRAIN, "claim")
    h.op("ok", DRAIN, "claim", value={"id": "7", "payload": payload})
    h.op("invoke", DRAIN, "ack", value={"id": "7"})
    h.op("ok", DRAIN, "ack", value={"id": "7"})
    result = check(h)
    assert result.entries == {"e1": "corrupt"}
    assert [v.kind for v in result.violations] == ["corrupt"]


def _overlap(release: bool) -> History:
    h = History()
    _enq(h, 0, "e1", "1")
    h.op("invoke", 1, "claim")
    h.op("ok", 1, "claim", key="e1", value={"id": "1", "payload": b"e1|x"})
    if release:  # p2 restarts: the contract lets recover() hand every claim out again
        h.op("invoke", 2, "recover")
        h.op("ok", 2, "recover")
    h.op("invoke", 2, "claim")  # p2's claim is under way ...
    h.op("invoke", 1, "ack", key="e1", value={"id": "1"})
    h.op("ok", 1, "ack", key="e1", value={"id": "1"})  # ... when p1's ack returns
    h.op("ok", 2, "claim", key="e1", value={"id": "1", "payload": b"e1|x"})
    _drain_empty(h)
    return h


def test_a_claim_overlapping_an_ack_may_be_ordered_before_it():
    # recover released p1's claim; p2's claim may have taken e1 before p1's ack consumed
    # it: a valid history (before: "duplicate", by completion order)
    result = check(_overlap(release=True))
    assert result.valid, result.violations
    assert result.entries == {"e1": "delivered"}


def test_a_claim_overlapping_an_ack_of_an_entry_still_held_is_a_duplicate():
    result = check(_overlap(release=False))
    assert [v.kind for v in result.violations] == ["duplicate"]
    assert "still held it" in result.violations[0].detail


# -- 7, 8, 10. runs that exercised nothing, queues that never recover, broken targets ----


class _DirStore:
    """Each entry a file under ``<dir>/entries``, which it creates only on the very first
    open (when ``<dir>`` is new): once that subdirectory is gone it never comes back."""

    def __init__(self, directory):
        self.entries = os.path.join(directory, "entries")
        if not os.path.isdir(directory):
            os.makedirs(self.entries)
        names = os.listdir(self.entries) if os.path.isdir(self.entries) else []
        self.n = max((int(n[:6]) for n in names if n[:6].isdigit()), default=0)

    def enqueue(self, payload):
        self.n += 1
        name = f"{self.n:06d}"
        tmp = os.path.join(self.entries, f"{name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(self.entries, name))
        return name

    def claim(self, worker):
        names = sorted(n for n in os.listdir(self.entries) if len(n) == 6)
        if not names:
            return None
        os.rename(os.path.join(self.entries, names[0]),
                  os.path.join(self.entries, names[0] + ".taken"))
        with open(os.path.join(self.entries, names[0] + ".taken"), "rb") as f:
            return names[0], f.read()

    def ack(self, ident):
        os.unlink(os.path.join(self.entries, ident + ".taken"))

    def recover(self):
        for n in os.listdir(self.entries):
            if n.endswith(".taken"):
                os.rename(os.path.join(self.entries, n), os.path.join(self.entries, n[:-6]))

    def close(self):
        pass


def test_a_queue_that_never_recreates_its_directory_is_unavailable():
    # before: entries deleted with the directory were "destroyed", later enqueues raised
    # ("failed"), and the scenario passed; now the healed queue must take a new entry
    sc = scenario(faults.MissingDirectory(path="q/entries", at_op=60), entries=10)
    run = run_scenario("t:t", sc, factory=_DirStore)
    assert run.status == "fail", run.to_dict()
    kinds = [v.kind for v in run.result.violations]
    assert "unavailable" in kinds
    (v,) = [v for v in run.result.violations if v.kind == "unavailable"]
    assert "could not take a new entry" in v.detail


def test_the_same_store_passes_when_its_directory_stays():
    run = run_scenario("t:t", scenario(faults.KillMidWrite(at_op=20), entries=10),
                       factory=_DirStore)
    assert run.status == "pass", run.to_dict()


class _RaisingConstructor:
    def __init__(self, directory):
        raise RuntimeError("cannot open: no config file")


def test_a_constructor_that_raises_is_an_error_not_stuck_entries():
    run = run_scenario("t:t", scenario(faults.KillMidWrite(at_op=20)),
                       factory=_RaisingConstructor)
    assert run.status == "error"
    assert "could not be opened" in run.error and "no config file" in run.error


class _NeverEnqueues(_DirStore):
    def enqueue(self, payload):
        raise OSError(errno.EROFS, "read-only file system")


def test_a_target_whose_first_enqueue_raises_before_any_fault_is_an_error():
    run = run_scenario("t:t", scenario(faults.KillMidWrite(at_op=2000)),
                       factory=_NeverEnqueues)
    assert run.status == "error"
    assert "first enqueue raised before any fault" in run.error and "read-only" in run.error


class _FullFromTheStart(_DirStore):
    """Correct: it refuses what it cannot store, and works again once space is back."""


def test_a_workload_in_which_no_enqueue_returned_ok_is_an_error():
    # the disk is full from the first op: every enqueue fails, correctly; nothing was
    # tested (before: PASS)
    run = run_scenario("t:t", scenario(faults.DiskFull(after_bytes=0)),
                       factory=_FullFromTheStart)
    assert run.status == "error", run.to_dict()
    assert run.error.startswith("the workload never ran")


def test_the_scenarios_own_fault_must_fire():
    # switches happened, the power loss (op 10**6) never came: that tested something else
    sc = scenario(faults.ConcurrentProcessors(processors=2), faults.PowerLoss(at_op=10**6),
                  entries=10, processors=2)
    sc = Scenario(name="t", description="t", fault="power_loss", plan=sc.plan,
                  workload=sc.workload, seed=3)
    run = run_scenario("robust", sc)
    assert run.faults_fired > 0  # the switches
    assert run.status == "no_fault_fired"
    assert run.unfired == ["PowerLoss(at_op=1000000)"]
    assert any("never fired: PowerLoss(at_op=1000000)" in o for o in run.observations)


# -- names bound at import, and a drain that never ends ------------------------------------

from os import fsync as _fsync_bound_at_import  # noqa: E402 - as femtoqueue does


def test_os_functions_bound_by_from_import_are_intercepted_too(tmp_path):
    # before: the shim patched os.fsync only; this fsync escaped it, and the durability
    # model rolled back data the kernel had made durable (a false alarm on power loss)
    h = History()
    with installed(sandbox=tmp_path, history=h) as shim, shim.processor(0):
        fd = os.open(tmp_path / "x", os.O_WRONLY | os.O_CREAT)
        _fsync_bound_at_import(fd)
        os.close(fd)
    assert [r.call for r in h.fs_ops()] == ["open", "fsync", "close"]
    assert _fsync_bound_at_import is os.fsync  # put back on uninstall


class _SpinsWhenDraining(_DirStore):
    """Its claim waits for a marker file that nobody ever writes, once it sees one entry
    it cannot parse: in the drain that is for ever (one stat per turn)."""

    def claim(self, worker):
        while worker == "drain" and not os.path.exists(os.path.join(self.entries, "go")):
            pass
        return super().claim(worker)


def test_a_target_spinning_in_the_final_drain_ends_as_stuck_not_a_hang():
    sc = Scenario(name="t", description="t", fault="killed_mid_write",
                  plan=faults.Plan((faults.KillMidWrite(at_op=20),)),
                  workload=Workload(entries=6, max_ops=3000), seed=3)
    run = run_scenario("t:t", sc, factory=_SpinsWhenDraining)
    assert run.status == "fail"
    (v,) = [v for v in run.result.violations if v.entry == "queue"]
    assert v.kind == "stuck" and "the final drain never returned from claim()" in v.detail
    assert "budget of 3000 file calls" in v.detail, v.detail


# -- 11. every stdlib entry point that can touch the disk ----------------------------------


def test_link_symlink_utime_chmod_truncate_and_positional_io_are_intercepted(tmp_path):
    # before: os.link and os.utime (and the rest) passed straight through: no fault could
    # reach a target that used them, and the history did not show them
    (tmp_path / "a").write_bytes(b"0123456789")
    h = History()
    with installed(sandbox=tmp_path, history=h) as shim, shim.processor(0):
        os.link(tmp_path / "a", tmp_path / "b")
        os.symlink("a", tmp_path / "c")
        os.utime(tmp_path / "a", (1, 1))
        os.chmod(tmp_path / "a", 0o600)
        os.truncate(tmp_path / "a", 8)
        fd = os.open(tmp_path / "a", os.O_RDWR)
        assert os.pwrite(fd, b"xy", 2) == 2
        assert os.pread(fd, 4, 0) == b"01xy"
        assert os.writev(fd, [b"p", b"q"]) == 2
        os.close(fd)
        assert os.access(tmp_path / "a", os.R_OK)
    calls = [(r.call, r.path, r.path2) for r in h.fs_ops()]
    assert calls[:5] == [("link", "a", "b"), ("symlink", "c", None), ("setattr", "a", None),
                         ("setattr", "a", None), ("truncate", "a", None)]
    assert [c for c, _p, _q in calls[5:]] == ["open", "write", "read", "write", "close",
                                              "stat"]


def test_a_permission_fault_reaches_os_link(tmp_path):
    plan = armed(PermissionDenied(calls=("link",)))
    (tmp_path / "a").write_bytes(b"")
    with installed(sandbox=tmp_path, history=History(), plan=plan) as shim, \
            shim.processor(0), pytest.raises(PermissionError):
        os.link(tmp_path / "a", tmp_path / "b")
    assert plan.fired == 1 and not (tmp_path / "b").exists()


@pytest.mark.parametrize("call, outcome", [("link", "EEXIST"), ("replace", "ENOENT")])
def test_a_claim_that_lost_a_race_for_one_entry_and_took_the_next_swallowed_nothing(call,
                                                                                    outcome):
    # found on dirq and femtoqueue: a claim meets another processor's lock on e1 (or finds
    # e1 already taken), moves on and returns e2; e2 is lost later. That loss is not "the
    # error was swallowed" (before: silent_error, citing the lost race)
    h = History()
    _enq(h, 0, "e1", "1")
    _enq(h, 0, "e2", "2")
    h.op("invoke", 1, "claim")
    h.fs(1, call, path="q/e1", path2="q/e1.lock", outcome=outcome)
    h.op("ok", 1, "claim", key="e2", value={"id": "2", "payload": b"e2|x"})
    h.op("invoke", 1, "ack", key="e2", value={"id": "2"})
    h.op("ok", 1, "ack", key="e2", value={"id": "2"})
    h.op("invoke", 2, "claim")
    h.op("ok", 2, "claim", key="e1", value={"id": "1", "payload": b"e1|x"})
    h.op("invoke", 2, "ack", key="e1", value={"id": "1"})
    h.op("ok", 2, "ack", key="e1", value={"id": "1"})
    h.op("invoke", 0, "claim")  # a claim that comes out again: a duplicate of e2
    h.op("ok", 0, "claim", key="e2", value={"id": "2", "payload": b"e2|x"})
    _drain_empty(h)
    (v,) = check(h).violations
    assert v.kind == "duplicate", v
