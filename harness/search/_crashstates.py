"""Explore's crash states: a kill or a power loss at every op, from one recording run.

A crash ends the processor: nothing of its memory survives, only the disk. So the state
"crashed at op k" is fully described by the disk at op k (from the `Camera`) and the
history up to op k (from the `Ledger`); no run has to be repeated. For each op the disk
is laid out in a scratch directory, the final drain runs on it (open, recover, claim +
ack until empty, states; outside the shim, as nothing is injected any more), and the
history prefix + crash + drain is checked.

- ``killed_mid_write``: the processor dies at op k; a write in flight lands half of its
  bytes (torn), any other call does not happen.
- ``power_loss`` (torn None, "prefix" or "sectors"): the disk becomes the durability
  model's durable image at op k; a torn cut keeps some of the sectors not yet durable,
  with a generator seeded per op, as `DurabilityModel.power_loss` does.

Many ops leave the same disk behind (a stat, a read, a lock), and the drain of one disk
always does the same: drains are memoised by the disk's content, which makes a state
that repeats an earlier disk cost only its check.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

from harness.check.history import DRAIN, NEMESIS, FaultEvent, FsOp, History, Op
from harness.check.states import StatesValue
from harness.faults import KillMidWrite, PowerLoss
from harness.run.client import Client
from harness.run.runner import drain_queue
from harness.search._snapshot import Tree, tear_write, torn_tree, write_tree

__all__ = ["Point", "CrashStates", "STOP_REASON", "take_point"]

STOP_REASON = "every processor stops before the final drain"


@dataclass(frozen=True, slots=True)
class Point:
    """What the recording run looked like just before one intercepted call."""

    call: Any
    mark: tuple
    tree: Tree
    inodes: dict[str, int]
    durable: list
    durable_version: int


def take_point(recording: Any, call: Any) -> Point:
    """The point before ``call``: the ledger's mark and the camera's pictures."""
    cam = recording.camera
    return Point(call, recording.ledger.mark(), cam.tree, cam.inodes, cam.durable,
                 cam.durable_version)


def _fault(kind: str, call: Any, torn: str | None) -> Any:
    calls = (call.kind,)
    if kind == "killed_mid_write":
        return KillMidWrite(at_op=call.op, calls=calls, keep=0.5)
    return PowerLoss(at_op=call.op, calls=calls, torn=torn)


class CrashStates:
    """Checks every crash state of one recording run for one crash fault variant."""

    def __init__(self, *, recording: Any, points: list[Point], final: Tree, root: str,
                 seed: int) -> None:
        self.rec, self.points, self.final, self.seed = recording, points, final, seed
        self.scratch = tempfile.mkdtemp(prefix="harness-state-", dir=root)
        self._memo: dict[tuple, tuple[list[tuple], str | None]] = {}
        self.drains = 0

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)

    # -- the disk of one state

    def _after(self, i: int) -> Tree:
        return self.points[i + 1].tree if i + 1 < len(self.points) else self.final

    def _torn_write(self, i: int, keep_of: Any) -> tuple[Tree, int | None]:
        """The tree at point i with the write in flight landed in part (or as it is)."""
        pt = self.points[i]
        call = pt.call
        if call.kind != "write" or not call.nbytes or call.path not in pt.tree:
            return pt.tree, None
        keep = keep_of(call.nbytes)
        tree = dict(pt.tree)
        tree[call.path] = tear_write(pt.tree.get(call.path), self._after(i).get(call.path),
                                     call.nbytes, keep)
        return tree, keep

    def disk(self, i: int, kind: str, torn: str | None) -> tuple[Tree, int | None, str]:
        """(tree, bytes of the write in flight that landed, what happened in words)."""
        pt = self.points[i]
        call = pt.call
        if kind == "killed_mid_write":
            tree, landed = self._torn_write(i, lambda n: n // 2)
            what = (f"processor 0 killed during {call.kind} to {call.path} "
                    f"({landed} of {call.nbytes} bytes landed)" if landed is not None else
                    f"processor 0 killed before {call.kind} of {call.path}")
            return tree, landed, what
        rng = random.Random(f"{self.seed}:power_loss:{torn}:{call.op}")
        landed = None
        current: dict[int, bytes] = {}
        if torn:
            tree, landed = self._torn_write(i, lambda n: rng.randint(0, n))
            current = {pt.inodes[rel]: data for rel, data in tree.items()
                       if data is not None and rel in pt.inodes}
        lost = torn_tree(pt.durable, current, rng, torn)
        what = (f"power lost at op {call.op}; the sandbox went back to its durable state"
                + (f", torn ({torn})" if torn else ""))
        return lost, landed, what

    # -- one state

    def drain(self, tree: Tree) -> tuple[list[tuple], str | None]:
        """The drain's client ops on this disk (memoised by content) and its problem."""
        key = tuple(sorted(tree.items()))
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        shutil.rmtree(self.scratch, ignore_errors=True)
        os.mkdir(self.scratch)
        write_tree(self.scratch, tree)
        history = History()
        client = Client(process=DRAIN, factory=self.rec.factory, target=self.rec.target,
                        directory=os.path.join(self.scratch, "q"), history=history,
                        shim=None, baton=None)
        problem = drain_queue(client, history, bound=4 * len(self.rec.program) + 10)
        ops = [(o.type, o.f, o.key, _shared(o), o.error) for o in history.records
               if isinstance(o, Op)]
        self._memo[key] = (ops, problem)
        self.drains += 1
        return ops, problem

    def suffix(self, i: int, kind: str, torn: str | None) -> tuple[list, str | None, str]:
        """The records after the prefix: the crash, the call it ended, the drain."""
        pt = self.points[i]
        call = pt.call
        tree, landed, what = self.disk(i, kind, torn)
        fault = repr(_fault(kind, call, torn))
        cut, start = pt.mark[0], pt.mark[1]
        nbytes = landed if landed is not None else (call.nbytes or None)
        out: list[Any] = [FsOp(cut, 0, call.kind, call.path, call.path2, nbytes, "killed",
                               fault)]
        by = 0 if kind == "killed_mid_write" else NEMESIS
        out.append(FaultEvent(cut + 1, by, kind, fault, what, (0,)))
        if start < cut:
            inv = self.rec.history.records[start]
            out.append(Op(len(out) + cut, "info", 0, inv.f, inv.key, inv.value,
                          "processor killed"))
        out.append(FaultEvent(len(out) + cut, NEMESIS, "kill", STOP_REASON,
                              f"every processor killed: {STOP_REASON}", ()))
        ops, problem = self.drain(tree)
        for typ, f, key, value, error in ops:
            out.append(Op(len(out) + cut, typ, DRAIN, f, key, value, error))
        return out, problem, fault


def _shared(op: Op) -> Any:
    # A drain's result serves every state that left the same disk: its states() lists its
    # live entries once, here, rather than in every check.
    if op.f == "states" and op.type == "ok" and isinstance(op.value, dict):
        return StatesValue(op.value)
    return op.value
