"""The schedule: each processor's seeded program, and the baton that interleaves them.

In-process runs execute every processor in a thread of its own, but only one
thread ever runs target code: the one holding the baton. The baton changes
hands only at points the harness sees:

- ``switch_point(p)``: before every intercepted file call of ``p`` (the shim
  calls it). With probability ``mid_call`` the baton moves to another
  processor in the middle of a queue call: this is how races are produced;
- ``idle_point(p)``: between two queue calls of ``p`` (the client calls it),
  with probability ``between_calls``;
- ``blocked(p)``: ``p`` waits for a lock another processor holds; the baton
  must move, and when no other processor can run the wait is a deadlock;
- ``wait_calls(p, n, of)``: a ``wait`` step of a shaped program (`harness.run.shapes`):
  ``p`` leaves the rotation, its queue still open, until the others (or the processors
  ``of``) have begun ``n`` more queue calls (``begin_call`` counts them). When nobody
  else can run, the sleeper nearest its mark goes on (a paced processor whose partners
  are done; the others waiting for an idle processor that went to sleep).

Every choice comes from one ``random.Random``, so the same seed gives the
same interleaving and the same history. A processor that must restart after a
crash asks for ``exclusive(p)``: the others run on until they reach the gap
between two calls and park there, so ``recover()`` runs with no other
processor in the middle of a call, as the target contract promises.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from harness.intercept.shimerrors import OpBudgetExceeded
from harness.run import shapes as _shapes
from harness.run._steps import Step, merge
from harness.run._steps import payload as _payload
from harness.run._waits import Waits

__all__ = ["Step", "programs", "merge", "workload_programs", "Baton", "OpBudgetExceeded"]


def programs(*, entries: int, processors: int, payload_min: int, payload_max: int,
             rng: random.Random, hold: int = 0, **shape: Any) -> list[list[Step]]:
    """Seeded programs: entries spread over processors, each enqueue paired with a claim
    and each claim with an ack, which comes up to ``hold`` steps later (0: at once).

    Keys are ``e1 .. eN``; claims are shuffled in among the enqueues (a claim may
    find the queue empty; the drain takes the rest). Holding claims across other
    steps is what lets a crash land while a processor owes an ack. ``shape`` (roles,
    weights, idle, idle_after, idle_for) makes the programs of `harness.run.shapes`; without
    one the draws are the same as they always were, so old seeds replay.
    """
    if _shapes.shaped(shape.get("roles", ()), shape.get("weights", ()), shape.get("idle", ())):
        return _shapes.shaped_programs(entries=entries, processors=processors,
                                       payload_min=payload_min, payload_max=payload_max,
                                       rng=rng, hold=hold, **shape)
    owners = [rng.randrange(processors) for _ in range(entries)]
    result: list[list[Step]] = [[] for _ in range(processors)]
    for n, owner in enumerate(owners, start=1):
        key = f"e{n}"
        result[owner].append(Step("enqueue", key, _payload(key, rng, payload_min, payload_max)))
    for steps in result:
        steps[:] = merge(list(steps), len(steps), hold, rng)
    return result


_SHAPE = ("roles", "weights", "idle", "idle_after", "idle_for")


def workload_programs(wl: Any, processors: int, rng: random.Random) -> list[list[Step]]:
    """`programs` for a `harness.run.scenarios.Workload` run on ``processors`` processors."""
    shape = {k: getattr(wl, k) for k in _SHAPE if hasattr(wl, k)}
    return programs(entries=wl.entries, processors=processors, payload_min=wl.payload_min,
                    payload_max=wl.payload_max, rng=rng, hold=getattr(wl, "hold", 0), **shape)


class Baton:
    """Deterministic, seeded turn-taking between processor threads."""

    def __init__(self, rng: random.Random, processors: list[int], *, mid_call: float = 0.0,
                 between_calls: float = 0.5, deadlock_after: int = 2000,
                 max_ops: int = 200_000) -> None:
        self._rng = rng
        self._cond = threading.Condition()
        self._live = list(processors)
        self._current: int | None = rng.choice(self._live) if self._live else None
        self._parked: set[int] = set()
        self._quiescing: int | None = None
        self._in_call: set[int] = set()
        self._blocked_streak = 0
        self._deadlock_after = deadlock_after
        self._lock_waiters: set[int] = set()  # blocked on a lock since their last file call
        self._tried: dict[int, int] = {}  # lock waiter -> the blocked round it last retried in
        self._sleeping = Waits()  # processors in a wait step, and the calls they wait for
        self.mid_call = mid_call
        self.between_calls = between_calls
        self.mid_call_switches = 0
        self.stopped = False
        self.ops = 0
        self.max_ops = max_ops
        # per processor, inside its current queue call: [file calls, time.sleep calls]
        self._inside: dict[int, list[int]] = {}

    # -- helpers (call with the condition held)

    def _candidates(self, exclude: int | None) -> list[int]:
        return [q for q in self._live if q != exclude and q not in self._parked
                and q != self._quiescing and q not in self._sleeping]

    def _hand_over(self, p: int, to: int) -> None:
        if p in self._in_call and to != p:
            self.mid_call_switches += 1
        self._current = to
        self._cond.notify_all()

    def _next_after_leaving(self, p: int) -> None:
        """``p`` stops running (parked, finished, waiting for quiet): choose who runs."""
        others = self._candidates(exclude=p)
        while not others and self._sleeping and self._quiescing is None:
            self._sleeping.nearest()  # nobody can run: the nearest sleepers go on
            if p in self._live and p not in self._sleeping:
                break  # p itself was nearest: it goes on
            others = self._candidates(exclude=p)
        if others:
            self._current = self._rng.choice(others)
        elif self._quiescing is not None and self._quiescing in self._live:
            self._current = self._quiescing
        elif p in self._live and p not in self._sleeping and p not in self._parked:
            self._current = p
        else:
            self._current = self._live[0] if self._live else None
        self._cond.notify_all()

    def _wait_turn(self, p: int) -> None:
        while not self.stopped and (self._current != p or p in self._parked
                                    or p in self._sleeping):
            self._cond.wait(timeout=1.0)

    # -- the protocol

    def enter(self, p: int) -> None:
        """A processor thread starts: wait for its first turn."""
        with self._cond:
            self._wait_turn(p)

    @property
    def current(self) -> int | None:
        """The processor whose turn it is (the one running, unless it waits for a lock)."""
        return self._current

    def begin_call(self, p: int) -> None:
        with self._cond:
            self._in_call.add(p)
            self._inside[p] = [0, 0]
            self._sleeping.called(p)
            self._sleeping.due()  # runnable again: chosen at a later switch

    def end_call(self, p: int) -> None:
        with self._cond:
            self._in_call.discard(p)

    def slept(self, p: int) -> None:
        """``time.sleep`` in ``p`` (the shim's): a switch point, counted as a sleep."""
        self.switch_point(p, sleep=True)

    def switch_point(self, p: int, *, sleep: bool = False) -> None:
        """Before an intercepted call of ``p``: maybe let another processor run."""
        with self._cond:
            if p not in self._live:
                return
            self.ops += 1
            inside = self._inside.get(p) if p in self._in_call else None
            if inside is not None:
                inside[sleep] += 1
            if self.ops > self.max_ops:
                raise OpBudgetExceeded(p, self.max_ops, calls=inside and inside[0],
                                       sleeps=inside and inside[1])
            self._lock_waiters.discard(p)
            if self._quiescing == p:
                return
            self._blocked_streak = 0
            others = self._candidates(exclude=p)
            if others and self.mid_call > 0 and self._rng.random() < self.mid_call:
                self._hand_over(p, self._rng.choice(others))
                self._wait_turn(p)

    def idle_point(self, p: int) -> None:
        """Between two queue calls of ``p``: park if someone restarts, else maybe switch."""
        with self._cond:
            if p not in self._live or self._quiescing == p:
                return
            if self._quiescing is not None:
                self._parked.add(p)
                self._next_after_leaving(p)
                self._wait_turn(p)
                return
            others = self._candidates(exclude=p)
            if others and self._rng.random() < self.between_calls:
                self._hand_over(p, self._rng.choice(others))
                self._wait_turn(p)

    def blocked(self, p: int) -> bool:
        """``p`` waits for a lock: run someone else. False when nobody else can run."""
        with self._cond:
            if p not in self._live:
                return False
            others = self._candidates(exclude=p)
            if not others and self._sleeping:
                # A target may hold a lock between two calls: the sleeper may be the holder.
                self._sleeping.everyone()
                others = self._candidates(exclude=p)
            if not others and (self._parked or self._quiescing not in (None, p)):
                # What p waits for is held by a processor parked for a restart: the quiet
                # the restart asked for cannot be had, so everyone runs again.
                self._parked.clear()
                self._quiescing = None
                others = [q for q in self._live if q != p]
            # Fairness: the turn goes to a processor that is not itself waiting for a lock
            # when there is one (the holder, somewhere among them, must get to run, however
            # the choices fall); only when every other one waits too do they take turns
            # retrying, and a long enough round of that with nobody moving is a deadlock.
            self._lock_waiters.add(p)
            runnable = [q for q in others if q not in self._lock_waiters]
            self._blocked_streak += 1
            self._tried[p] = self._blocked_streak
            if not others or (not runnable and self._blocked_streak > self._deadlock_after):
                return False
            # With every other one waiting too, the one that tried longest ago goes next:
            # its lock may be free by now, and a choice (one a replay, or hypothesis,
            # makes the same each time) could bounce the turn between two others for ever.
            to = (self._rng.choice(runnable) if runnable
                  else min(others, key=lambda q: self._tried.get(q, 0)))
            self._hand_over(p, to)
            self._wait_turn(p)
            return True

    def wait_calls(self, p: int, count: int, of: tuple[int, ...] = ()) -> None:
        """A wait step: ``p`` sits out, between two calls, until the others (or ``of``)
        have begun ``count`` more queue calls, or until nobody can make one."""
        with self._cond:
            if p not in self._live or count <= 0 or self._quiescing == p:
                return
            self._sleeping.sleep(p, count, of)
            self._next_after_leaving(p)
            self._wait_turn(p)
            self._sleeping.discard(p)  # stopped: the run is abandoned

    @contextmanager
    def exclusive(self, p: int) -> Iterator[None]:
        """Run the body with every other live processor parked between two calls."""
        with self._cond:
            while self._quiescing is not None and self._quiescing != p:
                self._parked.add(p)
                self._next_after_leaving(p)
                self._wait_turn(p)
            self._quiescing = p
            while self._candidates(exclude=p):
                self._current = self._rng.choice(self._candidates(exclude=p))
                self._cond.notify_all()
                while not self.stopped and self._current != p:
                    self._cond.wait(timeout=1.0)
        try:
            yield
        finally:
            with self._cond:
                self._quiescing = None
                self._parked.clear()
                self._current = p
                self._cond.notify_all()

    def finish(self, p: int) -> None:
        """``p``'s program is over (or it failed for good): it leaves the rotation."""
        with self._cond:
            if p in self._live:
                self._live.remove(p)
            self._parked.discard(p)
            self._sleeping.discard(p)
            self._in_call.discard(p)
            if self._current == p or self._current not in self._live:
                self._next_after_leaving(p)

    def stop(self) -> None:
        """Release every waiting thread (the run is being abandoned)."""
        with self._cond:
            self.stopped = True
            self._cond.notify_all()
