"""Queue ids and entry states as the target reports them, read the same way everywhere.

A target's ``states()`` may key entries by int or str and name states as ``"pending"``,
``"PENDING"`` or an enum member; the checker, the ledger and explore compare them here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["StatesValue", "live_states", "qid", "state_name"]


def qid(value: Any) -> str | None:
    """A queue id as text: a JSON round trip turns the integer keys of ``states()`` into strings."""
    return None if value is None else str(value)


def state_name(value: Any) -> str:
    """``"PENDING"`` from ``"pending"``, ``State.PENDING`` or an enum member."""
    if type(value) is str and value.isupper() and "." not in value:
        return value  # already the name: explore asks this of every entry of every drain
    name = getattr(value, "name", value)
    return str(name).rsplit(".", 1)[-1].upper()


_LIVE = ("PENDING", "PROCESSING")


class StatesValue(dict):
    """A ``states()`` result that lists its live entries once, at construction.

    Explore reuses one drain's result for every crash state that left the same disk, and
    most of a drained queue is DELIVERED: the checker then walks the few live entries
    instead of every entry, once per state.
    """

    __slots__ = ("live",)

    def __init__(self, value: dict) -> None:
        super().__init__(value)
        self.live = _live(self)


def _live(value: dict) -> list[tuple[Any, str]]:
    return [(ident, name) for ident, state in value.items()
            if (name := state_name(state)) in _LIVE]


def live_states(value: dict) -> list[tuple[Any, str]]:
    """(id, "PENDING" | "PROCESSING") of every live entry of a ``states()`` result."""
    live = getattr(value, "live", None)
    return _live(value) if live is None else live
