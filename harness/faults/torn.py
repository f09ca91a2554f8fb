"""The durability model's pure helpers: torn sectors, and the sentences a power loss says.

`harness.faults.durability` decides what a power loss keeps; this module turns two versions
of a file into a torn one (crash-model rule 5) and says in words what was undone. It
holds no state and touches no disk, so the model's own module stays about the model.
"""

from __future__ import annotations

import random
from typing import Any

__all__ = ["SECTOR", "dropped", "explain", "rolled_back", "tear"]

SECTOR = 512
"""Bytes per sector for torn writes."""


def rolled_back(rel: str, node: Any, data: bytes, now: bytes, note: str | None) -> str:
    """The sentence for a file whose current bytes ``now`` came back as ``data``."""
    if note:
        return f"tore {rel}: {note} ({len(data)} of {len(now)} bytes)"
    to = {"fsync": "to its last fsync", "snapshot": "to its content when the run "
          "started"}.get(node.since, "to empty (its data was never fsynced)")
    return f"rolled back {rel} {to} ({len(data)} of {len(now)} bytes)"


def explain(rel: str, ino: int, node: Any, data: bytes | None, now: bytes | None,
            note: str | None, current: dict[str, tuple[int, bool, int]],
            plan: dict[str, tuple[int, Any, bytes | None]]) -> list[str]:
    """What the strict rebuild did to durable path ``rel`` (inode ``ino``), if anything."""
    parent = rel.rpartition("/")[0]
    if parent and (parent not in current or current[parent][0] != plan[parent][0]):
        return []  # said of the directory already
    where = f"{parent or '.'}/"
    if rel not in current:
        return [f"restored {rel} (its removal was never made durable by an fsync "
                f"of {where})"]
    if current[rel][0] != ino:
        return [f"restored {rel} (the rename onto it was never made durable by an "
                f"fsync of {where})"]
    if node.is_dir or now is None or data is None or now == data:
        return []
    return [rolled_back(rel, node, data, now, note)]


def dropped(current: dict[str, tuple[int, bool, int]],
            plan: dict[str, tuple[int, Any, bytes | None]]) -> list[str]:
    """Sentences for what exists now but not in the strict rebuild ``plan``."""
    said = []
    for rel, (_ino, is_dir, _mode) in current.items():
        parent = rel.rpartition("/")[0]
        same_parent = parent == "" or (
            parent in plan and parent in current and plan[parent][0] == current[parent][0])
        if rel not in plan and same_parent:  # a dropped directory's contents go unsaid
            said.append(f"dropped {rel}{'/' if is_dir else ''} (never made durable "
                        f"by an fsync of {parent or '.'}/)")
    return said


def tear(old: bytes, new: bytes, rng: random.Random, torn: str) -> tuple[bytes, str]:
    """The durable bytes with some of the sectors that differ in ``new`` written over them
    (``torn="holes"``: or, past the end of ``old``, zeros; crash-model rule 5)."""
    count = (max(len(old), len(new)) + SECTOR - 1) // SECTOR
    differ = [i for i in range(count)
              if old[i * SECTOR:(i + 1) * SECTOR] != new[i * SECTOR:(i + 1) * SECTOR]]
    zeroed: list[int] = []
    if torn == "prefix":
        kept = differ[:rng.randint(0, len(differ))]
    elif torn == "holes":
        # new, old or (only where no durable byte lies: fresh space) zeros, each alike
        fates = [(i, rng.randrange(3 if i * SECTOR >= len(old) else 2)) for i in differ]
        kept = [i for i, fate in fates if fate == 0]
        zeroed = [i for i, fate in fates if fate == 2]
    else:
        kept = [i for i in differ if rng.random() < 0.5]
    note = f"kept {len(kept)} of {len(differ)} sectors that were not yet durable"
    if zeroed:
        note += f", {len(zeroed)} read as zeros"
    if len(kept) == len(differ):
        return new, note
    length = len(old)
    if kept or zeroed:
        length = max(length, min(len(new), (max(kept + zeroed) + 1) * SECTOR))
    out = bytearray(old[:length].ljust(length, b"\0"))  # zeroed sectors lie in the padding
    for i in kept:
        chunk = new[i * SECTOR:(i + 1) * SECTOR]
        out[i * SECTOR:i * SECTOR + len(chunk)] = chunk
    return bytes(out), note
