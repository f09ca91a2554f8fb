"""Workload shapes: processors with roles, uneven rates, and a processor that idles for long.

A plain workload gives every processor the same role and pace, and none of them ever
stands still for long, so a handle that goes stale while it idles is never seen (the
robust queue as of commit 5c37264 lost acknowledged writes exactly so: a handle idle
across two of the others' checkpoints republished a superseded generation). A shape says:

- ``roles``: per processor ``"producer"`` (only enqueues), ``"consumer"`` (only claims
  and acks) or ``"both"``; processors past the list (a plan may start more) are "both";
- ``weights``: per processor a positive integer: its share of its role's work, and its
  pace: after each of its queue calls a processor of weight ``w`` lets the others make
  ``round(max_weight / w) - 1`` calls (a ``wait`` step), so weights [1, 4] run about one
  call of processor 0 to four of processor 1, in thread mode and in process mode alike;
- ``idle``: processors that open the queue first and make their first ``idle_after``
  calls while the others wait (a wait step counting the idle ones' calls: open, then
  ``idle_after``), then wait until the others have made ``idle_for`` (a fraction) of all
  their calls, with the queue still open, and then go on with the rest of their program.
  Waits are counted in queue calls, not in time, so a seed replays them in thread mode
  and the parent enforces the same counts in process mode.

A ``Step("wait", count=n, of=ps)`` is the one new kind of step: "do nothing until the
other processors (those in ``ps``, if given) have begun ``n`` more queue calls", or
until no processor is left that could make one.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from harness.run._steps import Step, merge
from harness.run._steps import payload as _payload

__all__ = ["ROLES", "shaped", "shaped_programs", "real_steps"]

ROLES = ("producer", "consumer", "both")
"""What a processor does: enqueue only, claim and ack only, or all three."""


def shaped(roles: Sequence[str] = (), weights: Sequence[int] = (),
           idle: Sequence[int] = ()) -> bool:
    """Does a workload ask for a shape (else the plain programs, drawn as ever)?"""
    return bool(roles or weights or idle)


def real_steps(program: Sequence[Step]) -> int:
    """Steps that make a queue call (a ``wait`` makes none)."""
    return sum(1 for s in program if s.action != "wait")


def _paced(steps: list[Step], pause: int) -> list[Step]:
    if pause <= 0:
        return steps
    out: list[Step] = []
    for step in steps:
        out += [step, Step("wait", count=pause)]
    return out[:-1]  # nothing to wait for after the last call


def _with_idle(steps: list[Step], after: int, count: int) -> list[Step]:
    """The program with one long wait after its first ``after`` queue calls."""
    made = 0
    for at, step in enumerate(steps):
        if made == after:
            return [*steps[:at], Step("wait", count=count), *steps[at:]]
        made += step.action != "wait"
    return steps  # fewer calls than ``after``: it never gets to idle


def shaped_programs(*, entries: int, processors: int, payload_min: int, payload_max: int,
                    rng: random.Random, hold: int = 0, roles: Sequence[str] = (),
                    weights: Sequence[int] = (), idle: Sequence[int] = (),
                    idle_after: int = 1, idle_for: float = 0.9) -> list[list[Step]]:
    """Seeded programs of a shaped workload (see the module docstring).

    Keys are ``e1 .. eN``, each enqueued once by a producer drawn by weight; as many
    claims as entries are dealt to the consumers by weight (a claim may find the queue
    empty: the drain takes the rest; with no consumer the drain takes everything).
    """
    role = [roles[p] if p < len(roles) else "both" for p in range(processors)]
    weight = [weights[p] if p < len(weights) else 1 for p in range(processors)]
    producers = [p for p in range(processors) if role[p] != "consumer"]
    consumers = [p for p in range(processors) if role[p] != "producer"]
    if not producers:
        raise ValueError(f"roles={list(roles)!r}: no processor enqueues; make one a "
                         "'producer' or 'both'")
    enqueues: list[list[Step]] = [[] for _ in range(processors)]
    for n in range(1, entries + 1):
        owner = rng.choices(producers, [weight[p] for p in producers])[0]
        key = f"e{n}"
        enqueues[owner].append(Step("enqueue", key, _payload(key, rng, payload_min,
                                                             payload_max)))
    claims = [0] * processors
    for _ in range(entries if consumers else 0):
        claims[rng.choices(consumers, [weight[p] for p in consumers])[0]] += 1
    top = max(weight)
    result = [_paced(merge(enqueues[p], claims[p], hold, rng), round(top / weight[p]) - 1)
              for p in range(processors)]
    calls = [real_steps(prog) for prog in result]
    idlers = tuple(p for p in sorted(set(idle)) if p < processors)
    for p in range(processors):
        if p in idlers:
            others = sum(calls) - calls[p]
            result[p] = _with_idle(result[p], idle_after,
                                   max(1, math.ceil(idle_for * others)))
        elif idlers:  # the idle ones open and make their first calls before anyone else
            result[p].insert(0, Step("wait", count=len(idlers) * (1 + idle_after), of=idlers))
    return result
