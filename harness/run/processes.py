"""Process mode: a scenario run on real OS processes, with real kills and real kernel faults.

``harness run --mode process`` (or ``mode = "process"`` in a scenario) runs every
processor as a forked process with the shim installed inside it; the parent
(`harness.run._parent.Conductor`) keeps the one history, the armed plan and the durability
model, so the history has the shape of a thread-mode run and `harness.check.checker` judges
it unchanged. What differs from thread mode:

- a `KillMidWrite` ends in a real SIGKILL after the torn prefix landed; a fresh process
  then opens the queue and runs ``recover()`` while the others wait between two calls;
- a `PowerLoss` SIGKILLs every worker, then the sandbox is rolled back to what was
  durable (the shim's record of fsyncs), then every processor restarts;
- a `FsyncFailure` is raised by the worker's shim (EIO, the real fsync not done); the
  parent's durability model drops the file's unsynced bytes and tells the other
  workers with the file open, once each, at their next fsync (Linux's errseq_t);
- `ConcurrentProcessors` runs at least `MIN_CONCURRENCY` live processes on one
  directory, racing for real: the interleaving is the kernel's, so a process-mode run is
  not deterministic in its order (the seed replays the workload and the plan); "faults
  fired" counts the calls that started while another processor was inside one;
- `DiskFull` and `PermissionDenied` come from the kernel where the machine allows it
  (a tmpfs cut down to size, chmod against unprivileged workers), `MissingDirectory`
  from the parent deleting the real directory, `FileRemoved` from the parent unlinking the
  real files; see `harness.faults.realfaults`. A variant the machine does not allow is reported
  as skipped, with the reason, in the observations;
- `Corruption` (damage at rest) is done by the parent to the real files at the quiet
  points: before a restart's fresh process starts, and before the final drain.

Nothing is left behind: children reaped, tmpfs unmounted, sandbox removed, also on
SIGINT/SIGTERM (`harness.run.reaper`).
"""

from __future__ import annotations

import fcntl
import fnmatch
import os
import time
from collections.abc import Callable
from typing import Any

import multiprocess

from harness.check import checker
from harness.check.history import DRAIN
from harness.check.outcome import never_ran, refused_open
from harness.check.words import count
from harness.faults import mounts as _mounts
from harness.faults.durability import DurabilityModel, real_os
from harness.faults.realfaults import RealFaults
from harness.faults.windows import LABEL as _WINDOWS
from harness.run import _fusemount
from harness.run._observe import log_summary, observe_fs, retention, with_blocked
from harness.run._parent import Conductor, Hung, ParentError
from harness.run._scenariorun import (
    JOIN_TIMEOUT_S,
    QUEUE_DIR,
    ScenarioRun,
    platform_of,
    scenario_arg,
    stream,
)
from harness.run._worker import Spec
from harness.run.client import DrainProblem
from harness.run.reaper import deferred, interruptible, make_sandbox, remove_sandbox
from harness.run.schedule import workload_programs
from harness.run.targets import TargetError, resolve

__all__ = ["MIN_CONCURRENCY", "ProcessRun", "run_scenario", "replay_command"]

MIN_CONCURRENCY = 8
"""Live processes a `ConcurrentProcessors` scenario gets at least, in process mode."""

_LOCK_FILES = ("*.lock", "*.lck", "lock")


def replay_command(target: str, scenario: str, seed: int) -> str:
    return f"harness run --mode process --target {target} --scenario {scenario} --seed {seed}"


class ProcessRun(ScenarioRun):
    """A `ScenarioRun` made by real processes: its replay command says so."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.kills = 0
        self.restarts = 0
        self.layer = "shim"

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d.update(mode="process", kills=self.kills, restarts=self.restarts, layer=self.layer,
                 replay=replay_command(self.target, scenario_arg(self.scenario), self.seed)
                 + self.platform_flag() + (" --layer fuse" if self.layer == "fuse" else ""))
        return d


def run_scenario(target: str, scenario: Any, *, seed: int | None = None,
                 factory: Callable[[str], Any] | None = None,
                 platform: str | None = None, timeout: float | None = None,
                 layer: str | None = None) -> ProcessRun:
    """Run one scenario on real processes; never raises for target misbehaviour.
    ``timeout``: seconds the workload, and again the drain, may take (`harness.run.hung`).
    ``layer``: ``"shim"`` (each worker's Python shim) or ``"fuse"`` (a FUSE mount below
    every process, `harness.run._fusemount`); default: the scenario's."""
    seed = scenario.seed if seed is None else seed
    timeout = timeout or getattr(scenario, "timeout", None) or JOIN_TIMEOUT_S
    run = ProcessRun(target=target, scenario=scenario, seed=seed)
    run.platform = platform_of(scenario, platform)
    run.layer = layer or getattr(scenario, "layer", None) or "shim"
    if run.layer == "fuse":
        why = _fusemount.refusal() or (
            f"--platform {run.platform} is not available under --layer fuse (its file "
            "semantics are the Python shim's)" if run.platform != "linux" else None)
        if why is not None:
            run.error = f"--layer fuse cannot run here: {why}"
            return run
    factory = factory or resolve(target)
    wl, plan = scenario.workload, scenario.plan
    concurrency = plan.concurrency
    nproc = max(wl.processors, plan.processors)
    if concurrency is not None:
        nproc = max(nproc, MIN_CONCURRENCY)
    run.processors = nproc
    if not run.adopt_promises(factory):
        return run
    # the same named streams as thread mode: the same seed gives the same workload and plan
    progs = workload_programs(wl, nproc, stream(seed, "workload"))
    armed = plan.arm(stream(seed, "faults"))
    started = time.perf_counter()
    notes = [f"process mode: {nproc} real processes (fork); the kernel interleaves them, so "
             "the order is not replayed by the seed (the workload and the fault plan are)"]
    with interruptible():
        sandbox = make_sandbox()
        queue_dir = os.path.join(sandbox, QUEUE_DIR)
        conductor = tmpfs = model = fuse = None
        ctx = multiprocess.get_context("fork")
        try:
            durable = bool({"power_loss", "fsync_failure"} & set(plan.kinds))
            if run.layer == "fuse":
                fuse = _fusemount.FuseMount(sandbox, ctx=ctx, plan=armed, model=durable,
                                            rng=stream(seed, "disk"), max_ops=wl.max_ops)
                queue_dir, unprivileged = os.path.join(fuse.mount, QUEUE_DIR), False
                real = RealFaults(sandbox=fuse.backing, queue_dir=queue_dir,
                                  history=run.history, model=None, faults=(), tmpfs=None,
                                  chmod=False)
                notes.append("layer fuse: every file call of every process went through a "
                             "FUSE mount, whose server numbered it, asked the fault plan and "
                             "recorded it")
            else:
                tmpfs, unprivileged, chmod = _prepare(sandbox, plan.kinds, notes)
                if durable:
                    model = DurabilityModel(sandbox, real_os())
                    model.snapshot_all()
                real = RealFaults(sandbox=sandbox, queue_dir=queue_dir, history=run.history,
                                  model=model, faults=plan.faults, tmpfs=tmpfs, chmod=chmod)
            base = Spec(process=0, target=target, directory=queue_dir,
                        sandbox=fuse.mount if fuse else sandbox,
                        unprivileged=unprivileged, platform=run.platform,
                        drain_ops=wl.max_ops, layer=run.layer)
            conductor = Conductor(
                ctx=ctx, history=run.history, armed=armed,
                model=model, real=real, disk_rng=stream(seed, "disk"), base=base,
                factory=factory, programs=progs, max_ops=wl.max_ops,
                deadline=time.monotonic() + timeout, timeout=timeout, fuse=fuse)
            if "stale_locks" in scenario.checks:
                conductor.on_kill = lambda p: notes.append(
                    f"lock files right after processor {p} was SIGKILLed: "
                    f"{_lock_files(queue_dir)}")
            try:
                conductor.run_workers()
            except Hung as exc:  # a processor still inside a call: what it was doing
                conductor.blocked += exc.blocked
                conductor.errors += exc.errors
                conductor.reap()
            run.ops = conductor.ops
            conductor.at_rest("drain")  # Corruption(before="drain"): every worker is done
            armed.heal()
            if fuse is not None:
                fuse.ask("heal")
            real.heal_all()
            if "stale_locks" in scenario.checks:
                notes.append("lock files present while no processor runs: "
                             + _lock_files(queue_dir))
            conductor.deadline = time.monotonic() + timeout
            try:
                conductor.run_drain(DRAIN, bound=4 * wl.entries + 10)
            except Hung as exc:
                conductor.reap()
                conductor.errors += exc.errors
                if exc.blocked:
                    conductor.drain_problem = DrainProblem(exc.blocked[0][1], kind="stuck")
            if conductor.drain_problem:
                # Every fault is healed: a queue that cannot be drained now never recovers.
                conductor.blocked.append(("queue", conductor.drain_problem))
            if fuse is not None:  # the server kept the plan and counted the calls
                conductor._drain_fuse()
                armed, conductor.ops, _fired, errors = fuse.ask("final")
                conductor.errors += [f"FUSE layer: {e}" for e in errors
                                     if f"FUSE layer: {e}" not in conductor.errors]
                run.ops = conductor.ops
            fired = armed.fired + (conductor.overlaps if concurrency else 0)
            run.faults_fired, run.kills, run.restarts = fired, conductor.kills, conductor.restarts
            run.count_firings(armed, conductor.overlaps)
            blocked = [(f"processor {p}" if isinstance(p, int) else p, why)
                       for p, why in conductor.blocked]
            run.result = with_blocked(checker.check(run.history), blocked,
                                      tuple(repr(f) for f in plan.faults))
            notes[1:1] = real.notes
            notes.append(f"{count(conductor.kills, 'process')} SIGKILLed, "
                         f"{conductor.restarts} restarted, {count(conductor.overlaps, 'call')} "
                         "overlapped another processor's call")
            run.platform_refusals = sum(1 for r in run.history.fs_ops()
                                        if (r.fault or "").startswith(_WINDOWS))
            if run.platform != "linux":
                notes.append(f"platform {run.platform}: the workers' shims applied its file "
                             f"semantics; it refused {count(run.platform_refusals, 'call')}")
            run.observations = observe_fs(run.history) + notes + log_summary(conductor.logs)
            if "retention" in scenario.checks:
                run.observations.append(retention(run.history))
            if conductor.errors:
                run.error = "; ".join(conductor.errors)
            # not a verdict about the target: nothing was exercised
            run.error = run.error or refused_open(run.history) or never_ran(
                run.history, run.result.valid)
            if run.unfired:
                run.observations.append("never fired: " + ", ".join(run.unfired))
        except (TargetError, Hung, ParentError, _fusemount.FuseError) as exc:
            run.error = str(exc)
        finally:
            with deferred():  # an interrupt now waits for the cleanup
                if conductor is not None:
                    conductor.reap()
                if fuse is not None:
                    fuse.unmount()
                if model is not None:
                    model.close()
                if tmpfs is not None:
                    tmpfs.unmount()
                remove_sandbox(sandbox)
                run.duration_s = time.perf_counter() - started
    return run


def _prepare(sandbox: str, kinds: tuple[str, ...], notes: list[str]
             ) -> tuple[_mounts.Tmpfs | None, bool, bool]:
    """Mount a tmpfs for disk_full; make workers obey permission bits for permission_denied."""
    tmpfs, unprivileged, chmod = None, False, False
    if "disk_full" in kinds:
        why = _mounts.tmpfs_refusal()
        if why is None:
            try:
                tmpfs = _mounts.Tmpfs(sandbox)
            except (OSError, ValueError) as exc:  # no mount rights after all (a container)
                why = str(exc)
        if why is not None:
            notes.append(f"disk_full: the real full file system (tmpfs) variant was skipped: "
                         f"{why}; the shim's byte budget gave ENOSPC instead")
    if "permission_denied" in kinds:
        why = _mounts.unprivileged_refusal()
        if why is None:
            unprivileged = chmod = True
            notes.append("permission_denied: workers run without CAP_DAC_OVERRIDE, "
                         "CAP_DAC_READ_SEARCH and CAP_FOWNER, so permission bits bind them")
        else:
            notes.append(f"permission_denied: the real EACCES variant was skipped: {why}; "
                         "the shim raised EACCES instead")
    return tmpfs, unprivileged, chmod


def _lock_files(queue_dir: str) -> str:
    """The lock files in the queue directory, and whether anyone holds a flock on them."""
    found = []
    for dirpath, _dirs, files in os.walk(queue_dir):
        for name in sorted(files):
            if any(fnmatch.fnmatch(name, p) for p in _LOCK_FILES):
                path = os.path.join(dirpath, name)
                found.append(f"{os.path.relpath(path, queue_dir)} ({_lock_state(path)})")
    return ", ".join(found) or "none"


def _lock_state(path: str) -> str:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return "unreadable"
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return "its flock is held"
    else:
        return "no flock held on it"
    finally:
        os.close(fd)


