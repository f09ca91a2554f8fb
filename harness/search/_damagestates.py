"""Explore's damage states: each kind of damage at rest to each file, at every quiet point.

From the recording run of the crash states (`harness.search._crashstates`): the disk just
before the first file call of each queue call is the disk between two calls of the
single processor, a quiet point. In each such state the processor stops (its memory is
gone, as after a crash), one file gets one kind of damage (`Corruption`'s four, drawn
with a generator seeded per op, file and kind), the drain runs on the damaged disk and
the prefix + damage + drain is checked, with the checker's rule for damage at rest
(harness.faults.damage). Every file holding an entry's bytes is damaged in turn (every file,
when none does).

The drain runs under a shim with no plan, so the file calls the rule reads (a cut of the
damaged file, how a log drops a damaged last record; a move or copy of it aside) are in
the state's history as in a run; the others are left out, as the crash states leave out
all of them.
"""

from __future__ import annotations

import glob
import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

from harness.check.history import DRAIN, NEMESIS, FaultEvent, FsOp, History, Op
from harness.faults import DAMAGES, Corruption
from harness.faults import damage as _damage
from harness.faults.actions import Damage
from harness.intercept.shim import installed
from harness.run.client import Client
from harness.run.runner import drain_queue
from harness.search._crashstates import STOP_REASON, Point, _shared
from harness.search._snapshot import Tree, write_tree

__all__ = ["DamageStates", "TEMPLATE"]

TEMPLATE = ("Corruption(damage=<each kind>, path=<each file holding entries>) between "
            "queue calls k-1 and k, the processor stopped, then the drain")


class DamageStates:
    """The damage states of one recording run; see the module docstring."""

    def __init__(self, *, recording: Any, points: list[Point], root: str, seed: int) -> None:
        self.rec, self.points, self.seed = recording, points, seed
        self.scratch = tempfile.mkdtemp(prefix="harness-damage-", dir=root)
        self._memo: dict[tuple, tuple[list[tuple], str | None]] = {}
        self.drains = 0

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)

    def quiet(self) -> list[int]:
        """Indexes of the points that come first in their queue call."""
        out, last = [], None
        for i, pt in enumerate(self.points):
            if pt.mark[1] != last:
                out.append(i)
                last = pt.mark[1]
        return out

    def states(self, i: int) -> Iterator[tuple[str, tuple, list, str | None]]:
        """(label, ledger mark, suffix records, drain problem) of every state at point i."""
        pt = self.points[i]
        start = pt.mark[1]
        mark = (start, start, pt.mark[2], pt.mark[3])
        prefix = self.rec.history.records[:start]
        contents = {rel: data for rel, data in pt.tree.items() if data}
        wanted = _damage.needles(prefix)[0]
        holding = [rel for rel in contents if _damage.occurrences(contents[rel], wanted)]
        for rel in holding or list(contents):
            for kind in DAMAGES:
                seed = random.Random(f"{self.seed}:corruption:{pt.call.op}:{rel}:{kind}")
                fault = repr(Corruption(damage=kind, path=glob.escape(rel)))
                action = Damage(fault, "corruption", kind, glob.escape(rel),
                                seed.getrandbits(32))
                _rel, new, event = _damage.plan(action, contents, prefix)
                tree = dict(pt.tree)
                if new is None:
                    del tree[rel]
                else:
                    tree[rel] = new
                suffix, problem = self._suffix(start, fault, event, tree)
                label = f"before op {pt.call.op} ({pt.call.kind} {pt.call.path}): {kind} {rel}"
                yield label, mark, suffix, problem

    def _suffix(self, cut: int, fault: str, event: dict, tree: Tree) -> tuple[list, str | None]:
        out: list[Any] = [FaultEvent(cut, NEMESIS, "corruption", fault, event["effect"], (),
                                     False, tuple(event["ranges"]), tuple(event["entries"]))]
        out.append(FaultEvent(cut + 1, NEMESIS, "kill", STOP_REASON,
                              f"every processor killed: {STOP_REASON}", ()))
        records, problem = self._drain(tree)
        for what, *rest in records:
            at = len(out) + cut
            out.append(Op(at, *rest[:1], DRAIN, *rest[1:]) if what == "op"
                       else FsOp(at, DRAIN, *rest))
        return out, problem

    def _drain(self, tree: Tree) -> tuple[list[tuple], str | None]:
        """The drain's client ops and the file calls the rule reads, on this disk, and its
        problem (memoised by content)."""
        key = tuple(sorted(tree.items()))
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        shutil.rmtree(self.scratch, ignore_errors=True)
        os.mkdir(self.scratch)
        write_tree(self.scratch, tree)
        history = History()
        with installed(sandbox=self.scratch, history=history) as shim:
            client = Client(process=DRAIN, factory=self.rec.factory, target=self.rec.target,
                            directory=os.path.join(self.scratch, "q"), history=history,
                            shim=shim, baton=None)
            with shim.processor(DRAIN):
                problem = drain_queue(client, history, bound=4 * len(self.rec.program) + 10)
        records: list[tuple] = []
        for r in history.records:
            if isinstance(r, Op):
                records.append(("op", r.type, r.f, r.key, _shared(r), r.error))
            elif r.outcome == "ok" and r.call in _READ_BY_RULE:
                records.append(("fs", r.call, r.path, r.path2, r.nbytes))
        self._memo[key] = (records, problem)
        self.drains += 1
        return records, problem


_READ_BY_RULE = ("truncate", "replace", "copy")
"""The file calls by which a target reports damage without raising (harness.faults.damage)."""
