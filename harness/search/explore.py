"""Exhaustive exploration: one fault at every op of a workload, until a run injects nothing.

``harness explore --target T --fault F [--ops N]`` tries fault F at each op of one
single-processor workload of N queue calls (default 200), as SQLite's malloc tests fail
the 1st, 2nd, 3rd... call until a run injects nothing, and reports the states explored
and the violations found (the run JSON of ``harness run``, plus ``states`` per scenario):

- ``killed_mid_write``: the processor dies at every intercepted call (a write lands half
  its bytes); ``power_loss``: power is cut at every call, clean and in the three torn
  variants (prefix, sectors, holes). A crash leaves only the disk, so both come from
  ONE recording run with a snapshot of the sandbox (and of the durability model's
  durable image) at each call;
  each state restores that snapshot, drains and checks (`harness.search._crashstates`).
- ``disk_full`` and ``permission_denied``: fail the Nth matching call, once and
  persistent; ``missing_directory``: remove the queue directory before every call. The
  target goes on after an error, so the recording run forks at each such call; the
  child takes the fault, stops at the end of that step, drains and checks
  (`harness.search._forkpoint`). ``fsync_failure``: every fsync and directory fsync fails with
  EIO in turn (the same forks); the child goes on to the end of that step, or of the
  next one, then the power goes (what the failure dropped is lost), then it drains.
- ``concurrent_processors``: two processors with 4 entries; every single switch point of
  the baton (preemption bound 1, as CHESS): processor 0 runs until the chosen point,
  processor 1 runs to its end, then processor 0 finishes. Deeper interleavings are what
  ``harness stress`` searches.
- ``corruption``: at every quiet point (between two queue calls) of the crash states'
  recording run, each kind of damage at rest to each file holding entries, then the
  drain (`harness.search._damagestates`); ``file_removed``: the file a call names is removed by
  another program just before that call, at every call, through a fork as for the errors.

Cost grows linearly with the workload: no state re-runs the prefix, and each state is
checked on a reduced history (`harness.check.ledger`), with the same verdicts as the full one.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import report
from harness.check.checker import check
from harness.check.words import count
from harness.faults import (
    FAULT_KINDS,
    ConcurrentProcessors,
    DiskFull,
    FileRemoved,
    FsyncFailure,
    MissingDirectory,
    PermissionDenied,
    Plan,
)
from harness.run.argtypes import at_least
from harness.run.runner import run_scenario
from harness.run.scenarios import Scenario, Workload
from harness.run.targets import resolve
from harness.search._crashstates import CrashStates, take_point
from harness.search._damagestates import TEMPLATE as _DAMAGE_TEMPLATE
from harness.search._damagestates import DamageStates
from harness.search._forkpoint import ForkStates
from harness.search._recording import Recording, quiet_logs, scratch_root, workload
from harness.search._tally import DETAIL_LIMIT, Tally, entry_count, full_violations, violations_of

__all__ = ["explore", "add_arguments", "main", "VARIANTS", "DETAIL_LIMIT"]

VARIANTS: dict[str, tuple[str | None, ...]] = {
    "killed_mid_write": (None,),
    "power_loss": (None, "prefix", "sectors", "holes"),
    "disk_full": ("once", "persistent"),
    "permission_denied": ("once", "persistent"),
    "missing_directory": (None,),
    "concurrent_processors": (None,),
    "corruption": (None,),
    "file_removed": (None,),
    "fsync_failure": ("power-loss-after-step", "power-loss-after-next-step"),
}
"""The scenarios one ``--fault`` explores (a torn variant, once/persistent, when the power
goes after an fsync failure)."""

_POWER_AFTER = {"power-loss-after-step": 0, "power-loss-after-next-step": 1}
"""fsync_failure: further steps the child runs before the power goes."""

_ERRNO_PLANS: dict[tuple[str, str | None], Callable[[int], Plan]] = {
    ("disk_full", "once"): lambda op: Plan((DiskFull(at_op=op, heal_after_ops=1),)),
    ("disk_full", "persistent"): lambda op: Plan((DiskFull(at_op=op),)),
    ("permission_denied", "once"): lambda op: Plan((PermissionDenied(at_op=op, once=True),)),
    ("permission_denied", "persistent"): lambda op: Plan((PermissionDenied(at_op=op),)),
    ("missing_directory", None): lambda op: Plan((MissingDirectory(path="q", at_op=op),)),
    ("fsync_failure", "power-loss-after-step"): lambda op: Plan((FsyncFailure(at_op=op),)),
    ("fsync_failure", "power-loss-after-next-step"): lambda op: Plan((
        FsyncFailure(at_op=op),)),
}

_TEMPLATES = {
    ("killed_mid_write", None): "KillMidWrite(at_op=k, calls=(<kind of op k>,), keep=0.5)",
    ("power_loss", None): "PowerLoss(at_op=k, calls=(<kind of op k>,))",
    ("power_loss", "prefix"): "PowerLoss(at_op=k, calls=(<kind of op k>,), torn='prefix')",
    ("power_loss", "sectors"): "PowerLoss(at_op=k, calls=(<kind of op k>,), torn='sectors')",
    ("power_loss", "holes"): "PowerLoss(at_op=k, calls=(<kind of op k>,), torn='holes')",
    ("fsync_failure", "power-loss-after-step"): "FsyncFailure(at_op=k), then PowerLoss() "
                                                "at the end of that step",
    ("fsync_failure", "power-loss-after-next-step"): "FsyncFailure(at_op=k), then "
                                                     "PowerLoss() at the end of the next step",
    ("concurrent_processors", None): "ConcurrentProcessors(processors=2) with one switch "
                                      "at the k-th scheduling point",
}


def _explore_crash(target, factory, program, root, seed, fault, at, replay) -> list[dict]:
    points = []
    started = time.perf_counter()
    rec = Recording(target=target, factory=factory, program=program, root=root, camera=True,
                    hook=lambda r, call: points.append(take_point(r, call)))
    with quiet_logs():
        rec.run()
        baseline = check(rec.history)
        crash = CrashStates(recording=rec, points=points, final=rec.camera.tree, root=root,
                            seed=seed)
        out = []
        try:
            for torn in VARIANTS[fault]:
                t0 = time.perf_counter()
                drains0 = crash.drains
                name = f"explore-{fault}" + (f"-torn-{torn}" if torn else "")
                tally = Tally(name, fault, _TEMPLATES[(fault, torn)], replay)
                for i, pt in enumerate(points):
                    if at is not None and pt.call.op != at:
                        continue
                    suffix, problem, _f = crash.suffix(i, fault, torn)
                    result = rec.ledger.check(pt.mark, suffix)
                    tally.add(f"op {pt.call.op} {pt.call.kind} {pt.call.path}", pt.call.op,
                              result.valid, result.counts, True,
                              full_violations(rec.ledger, pt.mark, suffix), problem)
                tally.add("no fault (the run that injects nothing)", None, baseline.valid,
                          baseline.counts, False, violations_of(baseline), rec.drain_problem)
                # the recording run is charged to the first variant
                spent = time.perf_counter() - (t0 if out else started)
                out.append(tally.to_dict(ops=rec.ops, entries=entry_count(program), seed=seed,
                                         duration=spent,
                                         extra={"disks_drained": crash.drains - drains0}))
        finally:
            crash.close()
    return out


def _explore_damage(target, factory, program, root, seed, at, replay) -> list[dict]:
    points: list = []
    started = time.perf_counter()
    rec = Recording(target=target, factory=factory, program=program, root=root, camera=True,
                    hook=lambda r, call: points.append(take_point(r, call)))
    with quiet_logs():
        rec.run()
        baseline = check(rec.history)
        states = DamageStates(recording=rec, points=points, root=root, seed=seed)
        tally = Tally("explore-corruption", "corruption", _DAMAGE_TEMPLATE, replay)
        try:
            for i in states.quiet():
                op = points[i].call.op
                if at is not None and op != at:
                    continue
                for label, mark, suffix, problem in states.states(i):
                    result = rec.ledger.check(mark, suffix)
                    tally.add(label, op, result.valid, result.counts, True,
                              full_violations(rec.ledger, mark, suffix), problem)
        finally:
            states.close()
        tally.add("no fault (the run that injects nothing)", None, baseline.valid,
                  baseline.counts, False, violations_of(baseline), rec.drain_problem)
    return [tally.to_dict(ops=rec.ops, entries=entry_count(program), seed=seed,
                          duration=time.perf_counter() - started,
                          extra={"disks_drained": states.drains})]


class _CallsFile:
    """``make_plan`` of the file_removed states: the file the call at op k names (the
    hook tells it the call before the fork decides)."""

    def __init__(self) -> None:
        self.call: Any = None
        self.present = False  # the call names a regular file that exists

    def see(self, rec: Any, call: Any) -> None:
        self.call, self.present = call, False
        if call.path is not None:
            try:  # the unpatched stat: this runs inside the shim's call
                mode = rec.shim.real.stat(os.path.join(rec.sandbox, *call.path.split("/")))
                self.present = stat.S_ISREG(mode.st_mode)
            except OSError:
                pass

    def __call__(self, op: int) -> Plan:
        if not self.present or self.call.op != op:
            return Plan()  # a call on no regular file: nothing another program could remove
        path = self.call.path
        return Plan((FileRemoved(path=glob.escape(path), at_op=op),))


def _explore_fork(target, factory, program, root, seed, fault, at, replay) -> list[dict]:
    out = []
    for variant in VARIANTS[fault]:
        t0 = time.perf_counter()
        make = _ERRNO_PLANS.get((fault, variant)) or _CallsFile()
        forks = ForkStates(make if at is None else (
            lambda op, make=make: make(op) if op == at else Plan()), seed,
            power_after=_POWER_AFTER.get(variant))
        hook = forks.hook
        if isinstance(make, _CallsFile):
            def hook(r, call, make=make, forks=forks):
                make.see(r, call)
                return forks.hook(r, call)
        rec = Recording(target=target, factory=factory, program=program, root=root,
                        hook=hook, model=variant in _POWER_AFTER)
        with quiet_logs():
            try:
                rec.run()
            finally:
                if forks.in_child():
                    forks.child_exit({"error": "the child raised before its verdict"})
        name = f"explore-{fault}" + (f"-{variant}" if variant else "")
        template = ("FileRemoved(path=<the file the call at op k names>, at_op=k)"
                    if isinstance(make, _CallsFile) else _TEMPLATES.get((fault, variant))
                    or repr(make(999_999).faults[0]).replace("999999", "k"))
        tally = Tally(name, fault, template, replay)
        for call, res in forks.results:
            label = f"op {call.op} {call.kind} {call.path}"
            if "error" in res:
                tally.errors.append(f"{label}: {res['error']}")
                continue
            tally.add(label, call.op, res["valid"], res["counts"], res["fired"] > 0,
                      lambda res=res: res.get("violations", []), res.get("problem"))
        baseline = check(rec.history)
        tally.add("no fault (the run that injects nothing)", None, baseline.valid,
                  baseline.counts, False, violations_of(baseline), rec.drain_problem)
        out.append(tally.to_dict(ops=rec.ops, entries=entry_count(program), seed=seed,
                                 duration=time.perf_counter() - t0, extra={}))
    return out


class _OneSwitch(random.Random):
    """The baton's generator for preemption bound 1: say "switch" at draw ``at`` only."""

    def __init__(self, at: int) -> None:
        super().__init__(0)
        self.at, self.draws = at, 0

    def random(self) -> float:
        self.draws += 1
        return 0.0 if self.draws == self.at else 0.999

    def choice(self, seq):  # noqa: ANN001 - random.Random's signature
        return seq[0]


def _explore_interleavings(target, factory, seed, at, replay) -> list[dict]:
    t0 = time.perf_counter()
    scenario = Scenario(
        name="explore-concurrent_processors", fault="concurrent_processors",
        description="two processors, one switch at every scheduling point in turn",
        plan=Plan((ConcurrentProcessors(processors=2, switch_probability=0.5),)),
        workload=Workload(entries=4, processors=2, payload_max=32), seed=seed)
    tally = Tally(scenario.name, "concurrent_processors",
                   _TEMPLATES[("concurrent_processors", None)], replay)
    ops = 0
    switch = at or 1
    with quiet_logs():
        while True:
            rng = _OneSwitch(switch)
            run = run_scenario(target, scenario, seed=seed, factory=factory, schedule_rng=rng)
            ops = max(ops, run.ops)
            injected = rng.draws >= switch
            label = f"switch at scheduling point {switch}" if injected else "no switch"
            if run.error:
                tally.errors.append(f"{label}: {run.error}")
            else:
                tally.add(label, switch if injected else None, run.result.valid,
                          run.result.counts, injected, violations_of(run.result))
            if not injected or at is not None:
                break
            switch += 1
    return [tally.to_dict(ops=ops, entries=4, seed=seed, duration=time.perf_counter() - t0,
                          extra={"preemption_bound": 1})]


def explore(target: str, fault: str, *, ops: int = 200, seed: int = 1,
            at: int | None = None) -> dict[str, Any]:
    """Every state of ``fault`` on a workload of ``ops`` queue calls -> the run JSON dict."""
    if fault not in FAULT_KINDS:
        raise ValueError(f"fault={fault!r}; expected one of {', '.join(FAULT_KINDS)}")
    factory = resolve(target)
    root, where = scratch_root()
    replay = f"harness explore --target {target} --fault {fault} --ops {ops} --seed {seed}"
    program = workload(ops, random.Random(f"{seed}:explore-workload"))
    if fault in ("killed_mid_write", "power_loss"):
        scenarios = _explore_crash(target, factory, program, root, seed, fault, at, replay)
    elif fault == "corruption":
        scenarios = _explore_damage(target, factory, program, root, seed, at, replay)
    elif fault == "concurrent_processors":
        scenarios = _explore_interleavings(target, factory, seed, at, replay)
    else:
        scenarios = _explore_fork(target, factory, program, root, seed, fault, at, replay)
    statuses = {s["status"] for s in scenarios}
    return {"target": target, "seed": seed, "fault": fault, "workload_ops": ops,
            "sandbox": where, "states_total": sum(s["states"] for s in scenarios),
            "violations_total": sum(s["violating_states"] for s in scenarios),
            "status": "pass" if statuses <= {"pass"} else "fail", "scenarios": scenarios}


# -- the command ----------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", default="robust",
                   help="robust, legacy, legacy-seedfix, MODULE:CALLABLE or "
                        "exec:COMMAND (default: robust)")
    p.add_argument("--fault", required=True, choices=FAULT_KINDS, help="the fault to explore")
    p.add_argument("--ops", type=at_least(1), default=200,
                   help="queue calls in the workload (default: 200)")
    p.add_argument("--seed", type=at_least(0), default=1, help="workload seed (default: 1)")
    p.add_argument("--at", type=at_least(1), metavar="K",
                   help="only the states at op K (the replay of one state)")
    p.add_argument("--json", metavar="PATH", help="write the JSON report here")


def main(args: argparse.Namespace) -> int:
    """``harness explore``: 0 no violation in any state, 1 violations (or errors)."""
    resolve(args.target)
    run = explore(args.target, args.fault, ops=args.ops, seed=args.seed, at=args.at)
    print(f"explore {args.fault} on {args.target}: {args.ops} queue calls, seed {args.seed}; "
          f"sandboxes on {run['sandbox']}")
    for s in run["scenarios"]:
        word = report.STATUS_WORDS.get(s["status"], s["status"].upper())
        print(f"{word}  {s['name']}: {count(s['states'], 'state')}, {s['violating_states']} "
              f"with violations, {count(s['ops'], 'op')} recorded, {s['duration_s']:.2f}s")
        for v in s["violations"][:5]:
            detail, prefix = str(v["detail"]), f"entry {v['entry']}: "
            print(f"    {v['kind']} {v['entry']}: {detail.removeprefix(prefix)}")
        for o in s["observations"][:3]:
            print(f"    observed: {o}")
        if s["status"] != "pass":
            print(f"replay: {s['replay']}")
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(run, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"reports: {path}")
    print(f"verdict: {'PASS' if run['status'] == 'pass' else 'FAIL'} "
          f"{count(run['states_total'], 'state')}, {run['violations_total']} with violations")
    return 0 if run["status"] == "pass" else 1
