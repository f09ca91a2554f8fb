"""Program steps: `Step` and `merge`, what the plain and the shaped programs are built of.

A processor's program is a list of `Step`s. `harness.run.schedule.programs` draws the plain
ones and `harness.run.shapes` the shaped ones (roles, weights, an idle processor); both
interleave one processor's enqueues with its claims and acks through `merge`, and draw
payloads through `payload`. Kept below both so that neither imports the other back.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Step", "merge", "payload"]


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a processor's program: enqueue entry ``key``, claim, ack a held claim,
    or wait (no call) until the other processors (those in ``of``, if any) have begun
    ``count`` more queue calls."""

    action: str  # "enqueue" | "claim" | "ack" (the oldest claim still held) | "wait"
    key: str | None = None
    payload: bytes | None = None
    count: int = 0  # of a "wait": the queue calls it lets pass
    of: tuple[int, ...] = ()  # of a "wait": whose calls count (): every other processor's


# public as harness.run.schedule.Step, as before the split: reprs and pickles name it there
Step.__module__ = "harness.run.schedule"


def payload(key: str, rng: random.Random, low: int, high: int) -> bytes:
    """Entry ``key``'s payload: the key, a bar, then low..high seeded random bytes (the
    key first: `harness.check.history.entry_key` reads it back)."""
    return key.encode("ascii") + b"|" + rng.randbytes(rng.randint(low, high))


def merge(enqueues: list[Step], claims: int, hold: int, rng: random.Random) -> list[Step]:
    """One processor's enqueues and claims interleaved, each ack up to ``hold`` steps after
    its claim (0: at once); consumes ``enqueues``."""
    steps: list[Step] = []
    acks_due: list[int] = []  # step positions at which an ack is owed
    while enqueues or claims or acks_due:
        if acks_due and acks_due[0] <= len(steps):
            acks_due.pop(0)
            steps.append(Step("ack"))
        # Enqueue a little more often than claim so the queue is rarely empty.
        elif enqueues and (not claims or rng.random() < 0.6):
            steps.append(enqueues.pop(0))
        elif claims:
            steps.append(Step("claim"))
            claims -= 1
            due = len(steps) + (rng.randint(0, hold) if hold else 0)
            acks_due.append(max(due, acks_due[-1] if acks_due else 0))
        else:
            acks_due[0] = len(steps)
    return steps
