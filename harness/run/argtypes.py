"""Argument types shared by the commands: a number with a lower bound (`at_least`).

The CLI (`harness.cli`) and the commands it dispatches to (`harness.search.explore`,
`harness.run.soak`, `harness.search.stress`) parse their options with these. Kept apart from
`harness.cli`, which imports those commands, so that none of them imports the CLI back.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

__all__ = ["at_least"]


def at_least(low: float, kind: type = int, *, strict: bool = False) -> Callable[[str], Any]:
    """An argparse type: a ``kind`` >= ``low`` (> ``low`` when ``strict``), else a message
    naming the value and what was expected (argparse then exits 2)."""
    noun = "an integer" if kind is int else "a number"
    expected = f"{noun} {'>' if strict else '>='} {low:g}"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"{text!r}: expected {expected}")
        return value
    return parse
