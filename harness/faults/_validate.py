"""Parameter rules for the faults: each checks one parameter and returns it normalised.

A fault class lists its rules in ``_rules`` and ``Fault.__post_init__`` runs them, so a
bad value fails when the fault is built (and names the class, parameter and what was
expected), never later in the middle of a run. `harness.faults` re-exports
`FaultSpecError` and `MATCH_KINDS`, their public home.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Callable, Hashable
from typing import Any

from harness.faults.actions import CALL_KINDS

__all__ = [
    "MATCH_KINDS", "FaultSpecError", "Rule", "chance", "errnos", "fail", "flag", "glob", "keep",
    "kinds", "nat", "one_of", "sandbox_dir",
]

MATCH_KINDS = (*CALL_KINDS, "open_write", "open_read")
"""What a ``calls`` parameter may name: the `Call` kinds plus the two open pseudo-kinds."""


class FaultSpecError(ValueError):
    """A fault, plan or spec was given a parameter it cannot take."""

    # public as harness.faults.FaultSpecError: tracebacks name it there, as before the split
    __module__ = "harness.faults"


Rule = Callable[[str, str, Any], Any]
"""A rule: ``(owner, name, value) -> normalised value``; raises `FaultSpecError` if bad."""


def fail(owner: str, name: str, value: Any, expected: str) -> Any:
    raise FaultSpecError(f"{owner}: {name}={value!r}; expected {expected}")


def nat(low: int, *, none: bool = False) -> Rule:
    def check(owner: str, name: str, value: Any) -> Any:
        if value is None and none:
            return None
        # bool is an int to Python, but True as a byte count is always a mistake
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            fail(owner, name, value, f"an int >= {low}" + (" or None" if none else ""))
        return value
    return check


def chance(owner: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        fail(owner, name, value, "a number p with 0 < p <= 1")
    return float(value)


def flag(owner: str, name: str, value: Any) -> bool:
    return value if isinstance(value, bool) else fail(owner, name, value, "True or False")


def glob(owner: str, name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        fail(owner, name, value, "a non-empty fnmatch glob such as 'q/*'")
    return value


def kinds(*, none: bool = False, only: tuple[str, ...] | None = None) -> Rule:
    """Call kinds; ``only`` limits them to the calls the kernel can fail that way
    (`harness.faults.errnos.INJECTED`)."""
    def check(owner: str, name: str, value: Any) -> Any:
        if value is None and none:
            return None
        if (isinstance(value, str) or not isinstance(value, tuple | list) or not value
                or any(k not in MATCH_KINDS for k in value)):
            fail(owner, name, value, f"a non-empty tuple of call kinds from "
                 f"{only or MATCH_KINDS}" + (" or None (any call)" if none else ""))
        if only is not None and any(k not in only for k in value):
            bad = [k for k in value if k not in only]
            fail(owner, name, value, f"calls the kernel can fail that way, from {only} "
                 f"({', '.join(bad)}: the kernel never returns this error there)")
        return tuple(value)
    return check


def one_of(*allowed: Any) -> Rule:
    def check(owner: str, name: str, value: Any) -> Any:
        if isinstance(value, Hashable) and value in allowed:
            return value
        return fail(owner, name, value, f"one of {', '.join(map(repr, allowed))}")
    return check


def errnos(*allowed: str) -> Rule:
    numbers = {getattr(_errno, a): a for a in allowed}

    def check(owner: str, name: str, value: Any) -> int:
        # names are accepted so that scenario files can say errno = "EDQUOT"
        if isinstance(value, str) and value in allowed:
            return getattr(_errno, value)
        if isinstance(value, int) and not isinstance(value, bool) and value in numbers:
            return value
        return fail(owner, name, value, f"one of {', '.join(allowed)} (name or number)")
    return check


def sandbox_dir(owner: str, name: str, value: Any) -> str:
    parts = value.split("/") if isinstance(value, str) else []
    if not parts or any(p in ("", ".", "..") for p in parts) or "\\" in value:
        fail(owner, name, value, "a sandbox-relative directory such as 'q' or 'q/pending'")
    return value


def keep(owner: str, name: str, value: Any) -> Any:
    if value is None or (isinstance(value, float) and 0.0 <= value <= 1.0):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return fail(owner, name, value, "None (a random prefix), an int >= 0 (bytes) "
                 "or a float in [0, 1] (a fraction of the write)")
