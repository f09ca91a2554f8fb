"""The base of every fault: its replaying repr, checks, trigger matching and per-run `State`.

`Fault` runs its parameter rules, prints itself as the Python that rebuilds it, matches
calls (``at_op``, ``calls``, ``path``, ``process``), draws ``probability``, and gives the
hooks the armed plan calls (``_decide``, ``_after``); `State` is what one fault remembers
during a run.

Apart from `harness.faults` (its public home) so that the modules defining faults
(`harness.faults._diskfaults`, `harness.faults._filefaults`) and the plans that use them
(`harness.faults._plan`) build on it without importing each other: this module imports no
fault and no plan.
"""

from __future__ import annotations

import errno as _errno
import random
from dataclasses import MISSING, dataclass, fields
from fnmatch import fnmatchcase
from typing import ClassVar

from harness.faults._validate import Rule as _Rule
from harness.faults.actions import Action, Call

__all__ = ["Fault", "State", "kind_matches", "path_matches"]


def path_matches(glob: str, call: Call) -> bool:
    paths = [p for p in (call.path, call.path2) if p is not None]
    if not paths:
        return glob == "*"
    return any(fnmatchcase(p, glob) for p in paths)


def kind_matches(kinds: tuple[str, ...] | None, call: Call) -> bool:
    if kinds is None:
        return True
    for k in kinds:
        if k == call.kind or (call.kind == "open" and k == ("open_write" if call.writes
                                                             else "open_read")):
            return True
    return False


@dataclass
class State:
    """What one fault remembers during a run."""

    fired: int = 0
    first: int | None = None  # op of the first firing: the heal clock starts there
    spent: int = 0  # DiskFull: bytes the sandbox took since at_op
    done: bool = False


_fault = dataclass(frozen=True, kw_only=True, repr=False)


class Fault:
    """Base of every fault: the replaying repr and the hooks `ArmedPlan` calls."""

    __module__ = "harness.faults"  # its public home, in tracebacks
    kind: ClassVar[str] = ""
    _rules: ClassVar[dict[str, _Rule]] = {}
    _never_fires: ClassVar[bool] = False  # True: ArmedPlan starts the fault used up
    __slots__ = ()

    def __post_init__(self) -> None:
        for name, check in self._rules.items():
            object.__setattr__(self, name, check(type(self).__name__, name, getattr(self, name)))

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            # the type check keeps keep=1 (one byte) apart from keep=1.0 (the whole write)
            if f.default is not MISSING and value == f.default and type(value) is type(
                    f.default):
                continue
            text = repr(_errno.errorcode[value]) if f.name == "errno" else repr(value)
            parts.append(f"{f.name}={text}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def _limit(self) -> int | None:
        """How many times the fault may fire (None: no limit)."""
        if getattr(self, "once", False):
            return 1
        return getattr(self, "times", None)

    def _matches(self, call: Call) -> bool:
        if call.op < getattr(self, "at_op", 1):
            return False
        process = getattr(self, "process", None)
        if process is not None and call.process != process:
            return False
        return kind_matches(getattr(self, "calls", None), call) and path_matches(
            getattr(self, "path", "*"), call)

    def _draw(self, rng: random.Random) -> bool:
        """True if a matching call fires: the ``probability`` draw, made only when p < 1
        so that p = 1 faults leave the rng (and every other fault's draws) as they were."""
        p = getattr(self, "probability", 1.0)
        return p >= 1.0 or rng.random() < p

    def _decide(self, st: State, call: Call, rng: random.Random) -> Action | None:
        raise NotImplementedError

    def _after(self, st: State, call: Call, action: Action | None) -> None:
        """Told the outcome of every call the fault was asked about."""
