"""Tests of the fault library: validation, replaying reprs, triggers and plans."""

from __future__ import annotations

import errno
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

import harness.faults as faults_module
from harness.faults import (
    FAULT_KINDS,
    FAULTS,
    ConcurrentProcessors,
    DiskFull,
    FaultSpecError,
    FsyncFailure,
    KillMidWrite,
    MissingDirectory,
    PermissionDenied,
    Plan,
    PowerLoss,
    fault_from_spec,
)
from harness.faults.actions import (
    Call,
    Kill,
    PowerCut,
    Raise,
    RemoveDirectory,
    ShortWrite,
    SyncFailed,
)


def call(op, kind="write", path="q/queue.json", **kw):
    kw.setdefault("process", 0)
    if kind == "write":
        kw.setdefault("nbytes", 100)
    return Call(op=op, kind=kind, path=path, **kw)


def armed(*faults, seed=1):
    return Plan(faults=faults).arm(random.Random(seed))


# -- parameters and reprs

_op = st.integers(1, 10**6)
_heal = st.none() | st.integers(1, 1000)
_globs = st.sampled_from(["*", "q/*", "q/queue.json*", "*.tmp"])
_kinds = st.lists(st.sampled_from(faults_module.MATCH_KINDS), min_size=1, max_size=4).map(tuple)
_path_kinds = st.lists(st.sampled_from(("open_write", "open_read", "replace", "mkdir",
                                        "unlink", "listdir", "stat")),
                       min_size=1, max_size=4).map(tuple)
_chance = st.floats(0.001, 1.0)
_specs = {
    DiskFull: dict(after_bytes=st.integers(0, 10**9), at_op=_op, path=_globs,
                   heal_after_ops=_heal, errno=st.sampled_from([errno.ENOSPC, "EDQUOT"])),
    PermissionDenied: dict(calls=_path_kinds, path=_globs, at_op=_op, once=st.booleans(),
                           heal_after_ops=_heal, probability=_chance,
                           errno=st.sampled_from(["EACCES", errno.EPERM])),
    MissingDirectory: dict(path=st.sampled_from(["q", "q/pending", "data"]), at_op=_op,
                           before=st.none() | st.sampled_from(["replace", "open_write"]),
                           path_glob=_globs, times=st.integers(1, 5), probability=_chance),
    KillMidWrite: dict(at_op=_op, calls=_kinds, path=_globs,
                       process=st.none() | st.integers(0, 8),
                       keep=st.none() | st.integers(0, 10**6) | st.floats(0.0, 1.0),
                       times=st.integers(1, 5), probability=_chance),
    PowerLoss: dict(at_op=_op, calls=st.none() | _kinds, path=_globs,
                    torn=st.sampled_from([None, "prefix", "sectors", "holes"]),
                    times=st.integers(1, 5),
                    probability=_chance, names=st.sampled_from(["strict", "eager"])),
    ConcurrentProcessors: dict(processors=st.integers(2, 16), switch_probability=_chance),
    FsyncFailure: dict(calls=st.sampled_from([("fsync",), ("dirsync",), ("fsync", "dirsync")]),
                       path=_globs, at_op=_op, times=st.none() | st.integers(1, 5),
                       probability=_chance),
}


@st.composite
def any_fault(draw):
    cls = draw(st.sampled_from(list(_specs)))
    params = {k: draw(v) for k, v in _specs[cls].items() if draw(st.booleans())}
    return cls(**params)


@given(any_fault())
def test_repr_replays_every_fault(fault):
    assert eval(repr(fault), vars(faults_module)) == fault


@given(st.lists(any_fault(), max_size=4))
def test_repr_replays_a_plan(faults):
    faults = [f for f in faults if not isinstance(f, ConcurrentProcessors)]
    plan = Plan(faults=tuple(faults))
    assert eval(repr(plan), vars(faults_module)) == plan


def test_repr_omits_defaults():
    assert repr(DiskFull(after_bytes=4096, heal_after_ops=20)) == (
        "DiskFull(after_bytes=4096, heal_after_ops=20)")
    assert repr(PermissionDenied()) == "PermissionDenied()"
    assert repr(DiskFull(errno=errno.EDQUOT)) == "DiskFull(errno='EDQUOT')"
    assert repr(KillMidWrite(keep=1.0)) != repr(KillMidWrite(keep=1))
    # the new parameters are omitted at their defaults, so old scenario files replay the same
    assert repr(PowerLoss(probability=1, names="strict")) == "PowerLoss()"
    assert repr(PowerLoss(at_op=30, probability=0.03, times=5)) == (
        "PowerLoss(at_op=30, times=5, probability=0.03)")
    assert repr(PowerLoss(names="eager")) == "PowerLoss(names='eager')"
    assert repr(KillMidWrite(probability=0.5)) == "KillMidWrite(probability=0.5)"
    assert repr(MissingDirectory(probability=0.25)) == "MissingDirectory(probability=0.25)"


def test_kinds_and_registry():
    assert FAULT_KINDS == ("disk_full", "permission_denied", "missing_directory",
                           "killed_mid_write", "power_loss", "concurrent_processors",
                           "fsync_failure", "corruption", "file_removed")
    assert all(FAULTS[k].kind == k for k in FAULT_KINDS)


@pytest.mark.parametrize("cls, params, message", [
    (DiskFull, dict(after_bytes=-1), "DiskFull: after_bytes=-1; expected an int >= 0"),
    (DiskFull, dict(after_bytes=True), "after_bytes=True"),
    (DiskFull, dict(at_op=0), "at_op=0; expected an int >= 1"),
    (DiskFull, dict(path=""), "path=''; expected a non-empty fnmatch glob"),
    (DiskFull, dict(heal_after_ops=0), "heal_after_ops=0; expected an int >= 1 or None"),
    (DiskFull, dict(errno=errno.EACCES), "errno=13; expected one of ENOSPC, EDQUOT"),
    (PermissionDenied, dict(calls=("chmod",)), "calls=('chmod',); expected a non-empty tuple"),
    (PermissionDenied, dict(calls="open"), "calls='open'"),
    (PermissionDenied, dict(calls=()), "calls=()"),
    (PermissionDenied, dict(once=1), "once=1; expected True or False"),
    (PermissionDenied, dict(probability=0), "probability=0; expected a number p with 0 < p"),
    (PermissionDenied, dict(probability=1.5), "probability=1.5"),
    (PermissionDenied, dict(errno="ENOSPC"), "errno='ENOSPC'; expected one of EACCES, EPERM"),
    (MissingDirectory, dict(path="/q"), "path='/q'; expected a sandbox-relative directory"),
    (MissingDirectory, dict(path="q/../x"), "path='q/../x'"),
    (MissingDirectory, dict(before="rename"), "before='rename'; expected one of None"),
    (MissingDirectory, dict(times=0), "times=0; expected an int >= 1"),
    (KillMidWrite, dict(keep=1.5), "keep=1.5; expected None (a random prefix)"),
    (KillMidWrite, dict(keep=-1), "keep=-1"),
    (KillMidWrite, dict(process=-1), "process=-1; expected an int >= 0 or None"),
    (PowerLoss, dict(torn="all"), "torn='all'; expected one of None, 'prefix', 'sectors', "
                                  "'holes'"),
    (FsyncFailure, dict(calls=("write",)), "FsyncFailure: calls=('write',); expected calls "
                                           "the kernel can fail that way, from ('fsync', "
                                           "'dirsync') (write: the kernel never returns"),
    (FsyncFailure, dict(times=0), "times=0; expected an int >= 1 or None"),
    (FsyncFailure, dict(probability=2), "FsyncFailure: probability=2"),
    (PowerLoss, dict(names="lazy"), "names='lazy'; expected one of 'strict', 'eager'"),
    (PowerLoss, dict(probability=0), "PowerLoss: probability=0; expected a number p with 0 < p"),
    (KillMidWrite, dict(probability=1.01), "KillMidWrite: probability=1.01"),
    (KillMidWrite, dict(probability=True), "probability=True"),
    (MissingDirectory, dict(probability=-0.5), "MissingDirectory: probability=-0.5"),
    (PowerLoss, dict(calls=[]), "calls=[]"),
    (ConcurrentProcessors, dict(processors=1), "processors=1; expected an int >= 2"),
    (ConcurrentProcessors, dict(switch_probability=0.0), "switch_probability=0.0"),
])
def test_validation(cls, params, message):
    with pytest.raises(FaultSpecError, match=None) as info:
        cls(**params)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_parameters_are_keyword_only():
    with pytest.raises(TypeError):
        DiskFull(4096)


def test_fault_from_spec():
    assert fault_from_spec({"kind": "disk_full", "after_bytes": 10}) == DiskFull(after_bytes=10)
    f = fault_from_spec({"kind": "permission_denied", "calls": ["replace"], "errno": "EPERM"})
    assert f == PermissionDenied(calls=("replace",), errno=errno.EPERM)


@pytest.mark.parametrize("spec, message", [
    ({"kind": "flood"}, "kind='flood'; expected one of disk_full, permission_denied"),
    ({"after_bytes": 1}, "kind=None; expected one of"),
    ({"kind": "disk_full", "bytes": 1}, "DiskFull: bytes=1 is not a parameter; expected one "
                                        "of kind, after_bytes, at_op, path"),
    ({"kind": "power_loss", "torn": "half"}, "PowerLoss: torn='half'"),
    (["disk_full"], "expected a mapping"),
])
def test_fault_from_spec_errors(spec, message):
    with pytest.raises(FaultSpecError) as info:
        fault_from_spec(spec)
    assert message in str(info.value)


def test_plan_validation_and_properties():
    with pytest.raises(FaultSpecError, match="faults="):
        Plan(faults=("disk_full",))
    with pytest.raises(FaultSpecError, match="at most one ConcurrentProcessors"):
        Plan(faults=(ConcurrentProcessors(), ConcurrentProcessors()))
    c = ConcurrentProcessors(processors=3)
    plan = Plan(faults=[DiskFull(), c])
    assert plan.faults == (DiskFull(), c) and plan.kinds == ("disk_full", "concurrent_processors")
    assert plan.concurrency is c and plan.processors == 3
    assert Plan().concurrency is None and Plan().processors == 1
    assert Plan.from_specs([{"kind": "power_loss"}]) == Plan(faults=(PowerLoss(),))


# -- triggers


def test_at_op_fires_at_first_matching_call_at_or_after():
    a = armed(PowerLoss(at_op=5, calls=("fsync",)))
    assert a.decide(call(4, "fsync")) is None
    assert a.decide(call(5, "write")) is None
    action = a.decide(call(6, "fsync"))
    assert action == PowerCut("PowerLoss(at_op=5, calls=('fsync',))", "power_loss")
    assert a.decide(call(7, "fsync")) is None and a.exhausted


def test_calls_and_open_pseudo_kinds():
    a = armed(PermissionDenied(calls=("open_write",)))
    assert a.decide(call(1, "open", writes=False)) is None
    assert a.decide(call(2, "open", writes=True)) == Raise(
        "PermissionDenied(calls=('open_write',))", "permission_denied", errno.EACCES)
    b = armed(PermissionDenied(calls=("open_read",)))
    assert b.decide(call(1, "open", writes=True)) is None
    assert isinstance(b.decide(call(2, "open")), Raise)
    c = armed(PermissionDenied(calls=("open",)))
    assert isinstance(c.decide(call(1, "open", writes=True)), Raise)


def test_path_glob_matches_either_path_of_a_replace():
    a = armed(PermissionDenied(calls=("replace",), path="q/queue.json"))
    assert a.decide(call(1, "replace", "q/other.tmp", path2="q/other")) is None
    assert isinstance(a.decide(call(2, "replace", "q/queue.json.tmp", path2="q/queue.json")),
                      Raise)
    b = armed(PermissionDenied(calls=("listdir",), path="q/*"))
    assert b.decide(call(1, "listdir", None)) is None  # no path: only '*' matches
    assert isinstance(armed(PermissionDenied(calls=("listdir",))).decide(
        call(1, "listdir", None)), Raise)


def test_probability_is_seeded():
    def run(seed):
        a = armed(PermissionDenied(calls=("open_write",), probability=0.3), seed=seed)
        return [a.decide(call(op, "open", writes=True)) is not None for op in range(1, 200)]
    assert run(3) == run(3)
    assert run(3) != run(4)
    assert 20 < sum(run(3)) < 100


def test_once_and_persistent():
    once = armed(PermissionDenied(calls=("open_write",), once=True))
    fired = [once.decide(call(op, "open", writes=True)) is not None for op in range(1, 5)]
    assert fired == [True, False, False, False]
    always = armed(PermissionDenied(calls=("open_write",)))
    assert all(always.decide(call(op, "open", writes=True)) is not None for op in range(1, 5))
    assert not always.exhausted


def test_times():
    a = armed(KillMidWrite(times=2, keep=10))
    got = [a.decide(call(op)) for op in range(1, 5)]
    assert got[:2] == [Kill("KillMidWrite(keep=10, times=2)", "killed_mid_write", keep=10)] * 2
    assert got[2:] == [None, None] and a.exhausted and a.fired == 2


def test_heal_after_ops():
    a = armed(PermissionDenied(calls=("open_write",), at_op=3, heal_after_ops=4))
    fired = [op for op in range(1, 12) if a.decide(call(op, "open", writes=True)) is not None]
    assert fired == [3, 4, 5, 6]
    assert a.exhausted


def test_disk_full_short_write_then_raise_then_heal():
    f = DiskFull(after_bytes=150, heal_after_ops=3)
    a = armed(f)
    assert a.decide(call(1, nbytes=100)) is None
    assert a.decide(call(2, nbytes=100)) == ShortWrite(repr(f), "disk_full", 50, errno.ENOSPC)
    assert a.decide(call(3, "open", "q/x", writes=True, creates=True)) == Raise(
        repr(f), "disk_full", errno.ENOSPC)
    # an existing file opened for writing (O_CREAT, O_TRUNC or append) takes no new space
    assert a.decide(call(3, "open", "q/x", writes=True)) is None
    assert a.decide(call(4, "mkdir", "q/d")) is not None
    assert a.decide(call(4, "open", "q/x")) is None  # reads do not allocate
    assert a.decide(call(4, "write", nbytes=0)) is None
    assert a.decide(call(5, nbytes=1)) is None  # healed 3 ops after the first ENOSPC
    assert a.fired == 3 and a.fired_by_kind == {"disk_full": 3} and a.exhausted


def test_disk_full_refuses_only_calls_that_need_space():
    a = armed(DiskFull())  # full from the start
    refused = [call(1, "open", "q/new", writes=True, creates=True), call(2, "mkdir", "q/d",
               writes=True, creates=True), call(3, "copy", "q/a", path2="q/b", writes=True),
               call(4, "write", nbytes=1)]
    allowed = [call(5, "open", "q/old", writes=True), call(6, "truncate", nbytes=0, writes=True),
               call(7, "replace", "q/a.tmp", path2="q/a", writes=True),
               call(8, "unlink", writes=True), call(9, "open", "q/old"), call(10, "fsync")]
    assert all(isinstance(a.decide(c), Raise) for c in refused)
    assert all(a.decide(c) is None for c in allowed)


def test_disk_full_counts_from_at_op_and_only_matching_paths():
    a = armed(DiskFull(after_bytes=10, at_op=3, path="q/*", errno="EDQUOT"))
    assert a.decide(call(1, nbytes=1000)) is None
    assert a.decide(call(3, path="other/file", nbytes=1000)) is None
    action = a.decide(call(4, nbytes=25))
    assert isinstance(action, ShortWrite) and action.keep == 10
    assert action.errno == errno.EDQUOT
    assert a.decide(call(5, nbytes=1)) == Raise(repr(a.plan.faults[0]), "disk_full",
                                                errno.EDQUOT)


def test_disk_full_counts_only_what_landed():
    # a write another fault refused takes no space
    a = armed(KillMidWrite(keep=0), DiskFull(after_bytes=100))
    assert isinstance(a.decide(call(1, nbytes=100)), Kill)
    assert a.decide(call(2, nbytes=100)) is None
    assert isinstance(a.decide(call(3, nbytes=1)), Raise)


def test_missing_directory_at_op_and_before():
    a = armed(MissingDirectory(at_op=4))
    assert a.decide(call(3)) is None
    assert a.decide(call(4, "stat")) == RemoveDirectory("MissingDirectory(at_op=4)",
                                                        "missing_directory", "q")
    b = armed(MissingDirectory(before="replace", path_glob="q/queue.json*", times=2))
    assert b.decide(call(1, "write", "q/queue.json.tmp")) is None
    assert b.decide(call(2, "replace", "q/x.tmp", path2="q/x")) is None
    assert isinstance(b.decide(call(3, "replace", "q/queue.json.tmp", path2="q/queue.json")),
                      RemoveDirectory)
    assert not b.exhausted
    assert isinstance(b.decide(call(9, "replace", "q/queue.json.tmp")), RemoveDirectory)
    assert b.exhausted


def test_kill_mid_write_keep_and_process():
    assert armed(KillMidWrite(keep=0.5)).decide(call(1, nbytes=101)).keep == 50
    assert armed(KillMidWrite(keep=1000)).decide(call(1, nbytes=10)).keep == 10
    random_keep = [armed(KillMidWrite(), seed=s).decide(call(1, nbytes=1000)).keep
                   for s in range(5)]
    assert all(0 <= k <= 1000 for k in random_keep) and len(set(random_keep)) > 1
    a = armed(KillMidWrite(process=2, calls=("write", "replace")))
    assert a.decide(call(1, process=1)) is None
    assert a.decide(call(2, "replace", process=2)).keep is None  # nothing in flight


def test_kill_mid_write_on_other_calls_has_nothing_in_flight():
    kinds = ("replace", "unlink", "dirsync", "fsync", "mkdir", "open_write", "truncate", "flush")
    f = KillMidWrite(calls=kinds, keep=10, times=len(kinds))
    a = armed(f)
    for op, kind in enumerate(kinds, 1):
        c = call(op, "open" if kind == "open_write" else kind, writes=kind == "open_write",
                 nbytes=64)
        assert a.decide(c) == Kill(repr(f), "killed_mid_write", keep=None), kind
    assert a.exhausted


def _fired_ops(fault, seed, ops=1000, kind="write"):
    a = armed(fault, seed=seed)
    return [op for op in range(1, ops + 1) if a.decide(call(op, kind)) is not None]


def test_probability_spreads_crashes_over_the_run():
    fault = PowerLoss(at_op=30, probability=0.03, times=5)
    runs = {seed: _fired_ops(fault, seed) for seed in range(20)}
    assert runs[7] == _fired_ops(fault, 7)  # the seed fixes the points
    assert len({tuple(r) for r in runs.values()}) == len(runs)  # another seed, other points
    gaps = []
    for fired in runs.values():
        assert len(fired) == 5 and fired[0] >= 30  # `times` firings, none before at_op
        gaps += [b - a for a, b in zip([29, *fired], fired, strict=False)]
    assert 20 < sum(gaps) / len(gaps) < 50  # about one in 33 calls, not five in a row
    assert _fired_ops(PowerLoss(at_op=30, times=5), 1) == [30, 31, 32, 33, 34]


@pytest.mark.parametrize("fault, kind", [
    (KillMidWrite(at_op=10, probability=0.1, times=3), "write"),
    (MissingDirectory(at_op=10, probability=0.1, times=3), "stat"),
    (PowerLoss(at_op=10, probability=0.1, times=3, calls=("fsync",)), "fsync"),
])
def test_probability_of_each_crash_fault_is_seeded(fault, kind):
    runs = [_fired_ops(fault, seed, 300, kind) for seed in range(8)]
    assert runs == [_fired_ops(fault, seed, 300, kind) for seed in range(8)]
    assert all(len(r) == 3 and r[0] >= 10 for r in runs) and len({tuple(r) for r in runs}) > 4


def test_probability_one_draws_nothing():
    # p = 1 leaves the rng alone, so adding the parameter changed no existing run
    a = armed(KillMidWrite(calls=("fsync",)), PermissionDenied(calls=("open_write",),
                                                               probability=0.5), seed=3)
    b = armed(PermissionDenied(calls=("open_write",), probability=0.5), seed=3)
    assert [a.decide(call(op, "open", writes=True)) is None for op in range(50)] == [
        b.decide(call(op, "open", writes=True)) is None for op in range(50)]


def test_repeated_takes_a_repeat_back_out_of_the_counts():
    a = armed(DiskFull(), PermissionDenied(calls=("stat",)))
    first = a.decide(call(1, nbytes=5))
    a.decide(call(2, "stat"))
    again = a.decide(call(3, nbytes=5))
    assert a.fired == 3
    a.repeated(again)
    assert again == first and a.fired == 2
    assert a.fired_by_kind == {"disk_full": 1, "permission_denied": 1}
    a.repeated(first)
    assert a.fired_by_kind == {"permission_denied": 1}


def test_power_loss_torn_keep():
    assert armed(PowerLoss()).decide(call(1)).keep is None
    action = armed(PowerLoss(torn="sectors")).decide(call(1, nbytes=4096))
    assert action.torn == "sectors" and 0 <= action.keep <= 4096
    assert action.names == "strict"
    assert armed(PowerLoss(names="eager")).decide(call(1)).names == "eager"


def test_concurrent_processors_never_decides():
    a = armed(ConcurrentProcessors())
    assert a.decide(call(1)) is None and a.exhausted and a.fired == 0


def test_first_fault_in_plan_order_wins():
    a = armed(PermissionDenied(calls=("open_write",)), KillMidWrite(calls=("open_write",)))
    assert isinstance(a.decide(call(1, "open", writes=True)), Raise)
    b = armed(KillMidWrite(calls=("open_write",)), PermissionDenied(calls=("open_write",)))
    assert isinstance(b.decide(call(1, "open", writes=True)), Kill)
    assert isinstance(b.decide(call(2, "open", writes=True)), Raise)
    assert b.fired_by_kind == {"killed_mid_write": 1, "permission_denied": 1}


def test_heal_stops_everything():
    a = armed(DiskFull(), PermissionDenied(calls=("open_write",)))
    assert a.decide(call(1)) is not None
    a.heal()
    assert a.decide(call(2)) is None and a.exhausted


def test_arm_is_deterministic():
    plan = Plan(faults=(PermissionDenied(calls=("open_write",), probability=0.2),
                        KillMidWrite(at_op=50, times=3, probability=0.5),
                        PowerLoss(at_op=80, torn="prefix", probability=0.4),
                        DiskFull(after_bytes=5000, at_op=20, heal_after_ops=7)))

    def run(seed):
        a = plan.arm(random.Random(seed))
        calls = [call(op, ("write", "fsync", "open")[op % 3], nbytes=op * 7, writes=op % 3 == 2)
                 for op in range(1, 150)]
        return [a.decide(c) for c in calls], a.fired, dict(a.fired_by_kind)

    assert run(11) == run(11)
    assert run(11) != run(12)


def test_fsync_failure_fails_fsync_and_dirsync_with_eio_once():
    f = FsyncFailure(at_op=3)
    a = armed(f)
    assert a.decide(call(2, "fsync")) is None  # before at_op
    assert a.decide(call(3, "write")) is None  # not a sync
    action = a.decide(call(4, "dirsync", "q"))
    assert action == SyncFailed("FsyncFailure(at_op=3)", "fsync_failure", errno.EIO)
    assert isinstance(action, Raise)  # carried out like any error, before the call
    assert a.decide(call(5, "fsync")) is None and a.exhausted  # told once


def test_fsync_failure_calls_path_times_and_sync2():
    a = armed(FsyncFailure(calls=("fsync",), path="q/log", times=None))
    assert a.decide(call(1, "dirsync", "q")) is None
    assert a.decide(call(2, "fsync", "q/other")) is None
    assert all(isinstance(a.decide(call(op, "fsync", "q/log")), SyncFailed)
               for op in range(3, 9))
    assert not a.exhausted
    # sync(2) (a call without a path) cannot fail: it is never matched
    assert armed(FsyncFailure()).decide(call(1, "fsync", None)) is None


def test_fsync_failure_from_spec_and_repr():
    f = fault_from_spec({"kind": "fsync_failure", "calls": ["dirsync"], "times": 2})
    assert f == FsyncFailure(calls=("dirsync",), times=2)
    assert repr(f) == "FsyncFailure(calls=('dirsync',), times=2)"
    assert repr(FsyncFailure()) == "FsyncFailure()"
