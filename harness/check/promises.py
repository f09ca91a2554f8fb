"""What a target promises, and which of the harness's findings fall outside those promises.

The default promise is the whole target contract: any number of processes on one
directory, every acknowledged entry survives a crash and a power loss, and every entry
enqueued ok comes out until an ack of it returns ok (at-least-once, never after an ack).
Many real queues promise less, and say so in their documentation: one process only, no
durability across a power loss (no fsync), at-most-once delivery (a claimed entry whose
consumer dies is gone). Grading such a queue on the whole contract would fail its gate
for what it never claimed; ignoring the findings would hide them. So a target declares
its promises and the harness grades it on those, listing what it found outside them
under their own heading (``outside_promises`` in the run JSON, "Outside its promises"
in the reports), without failing the gate.

A target declares them as an attribute of its factory::

    def open_queue(directory): ...
    open_queue.promises = {"processes": 1, "power_loss": False}

or as a `Promises` object. Keys:

- ``processes``: the most processes (processors) it supports on one directory at once
  (None: any number). A scenario running more is outside: all its findings move.
- ``power_loss``: False if it does not promise durability across a power loss: a
  finding the checker explains with a `PowerLoss` is outside.
- ``delivery``: ``"at-least-once"`` (the contract) or ``"at-most-once"``: an entry lost
  after its processor claimed it and crashed is outside (it was delivered once).
- ``damage``: False if it does not promise to detect damage at rest (no checksums): a
  finding the checker explains with a `Corruption` is outside.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from harness.check.words import count

__all__ = ["DELIVERY", "Promises", "PromiseError", "promises_of", "outside"]

DELIVERY = ("at-least-once", "at-most-once")


class PromiseError(ValueError):
    """A target declared promises the harness cannot read; the message says which."""


@dataclass(frozen=True, kw_only=True)
class Promises:
    """A target's promises; the defaults are the whole contract."""

    processes: int | None = None
    power_loss: bool = True
    delivery: str = "at-least-once"
    damage: bool = True

    def __post_init__(self) -> None:
        p = self.processes
        if p is not None and (not isinstance(p, int) or isinstance(p, bool) or p < 1):
            raise PromiseError(f"promises: processes={p!r}; expected None or an int >= 1")
        for name in ("power_loss", "damage"):
            if not isinstance(getattr(self, name), bool):
                raise PromiseError(f"promises: {name}={getattr(self, name)!r}; expected "
                                   "True or False")
        if self.delivery not in DELIVERY:
            raise PromiseError(f"promises: delivery={self.delivery!r}; expected one of "
                               f"{', '.join(DELIVERY)}")

    @property
    def whole_contract(self) -> bool:
        return self == Promises()

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def promises_of(factory: Any) -> Promises:
    """The promises a target's factory declares (its ``promises`` attribute), or the
    whole contract."""
    declared = getattr(factory, "promises", None)
    if declared is None or isinstance(declared, Promises):
        return declared or Promises()
    if not isinstance(declared, Mapping):
        raise PromiseError(f"promises={declared!r}; expected a dict such as "
                           "{'processes': 1, 'power_loss': False} or a Promises object")
    known = {f.name for f in fields(Promises)}
    unknown = sorted(set(declared) - known)
    if unknown:
        raise PromiseError(f"promises: unknown key {', '.join(map(repr, unknown))}; expected "
                           f"some of {', '.join(sorted(known))}")
    return Promises(**declared)


def outside(promises: Promises, processors: int, violation: Mapping[str, Any]) -> str | None:
    """Why ``violation`` lies outside ``promises`` (a sentence), or None if it is within.

    ``processors``: how many processors the scenario ran."""
    if promises.processes is not None and processors > promises.processes:
        return (f"the target promises at most {count(promises.processes, 'process')} on one "
                f"directory; this scenario ran {processors}")
    faults = violation.get("faults") or ()
    if not promises.power_loss and any(str(f).startswith("PowerLoss(") for f in faults):
        return "the target does not promise durability across a power loss"
    if not promises.damage and any(str(f).startswith("Corruption(") for f in faults):
        return "the target does not promise to detect damage at rest (no checksums)"
    tags = violation.get("tags") or ()
    if (promises.delivery == "at-most-once" and violation.get("kind") == "lost"
            and ("released" in tags or "claim_died" in tags)):
        return ("the target promises at-most-once delivery: an entry whose processor "
                "claimed it (or died inside a claim that may have taken it) may be gone")
    return None
