"""Files hit from outside the target: damage at rest and removal, carried out and recorded.

`damage` carries out a `Damage` action (`Corruption`) and `remove` a `RemoveFiles`
action (`FileRemoved`). The shim calls them in thread mode, the parent in process mode,
each with its own unpatched os calls (``real``; the os module by default), so the
target's interception never sees them. Each returns the keyword arguments of the
`FaultEvent` to record: the effect in words, ``ranges`` (file, start, end) and
``entries``, the keys of the entries whose bytes may have lain there.

Where the entries lay. The harness does not know the target's format, so it looks, in
every file, before it changes anything, for what stands for each entry: its payload as
enqueued (they start with ``b"e17|"``), the payload in base64 (standard and URL-safe), in
hex and as a JSON string of its latin-1 text, and every queue id the target returned for
it. An entry *may lie in the damage* when one of those occurrences overlaps a damaged
range, or is the nearest occurrence on either side of it: the damaged bytes can be the
header, length or checksum of that entry's record, which a format-blind search cannot
tell from the gap between two records. An entry that is live (no ack of it returned ok)
but found in no file at all (a format the search does not know) may lie anywhere, so it
counts as in the damage of every non-empty file: doubt goes to the target, never to a
false alarm. A removed file holds the entries found in it (and those found nowhere).

How the checker reads the events (harness.check._verdicts): the removal of a file that held
entries is ``destroyed`` for those entries, as a removed directory is; damage at rest
destroys the entries that may lie in it only if the target *reported* it afterwards: a
call of the target raised (an ``info`` op with no crash and no injected error inside
it), or it set the damaged file aside (a ``replace``/``copy`` from it) or cut the damaged
bytes away (a ``truncate`` of it to at most the damage's start: how a log that cannot
tell a flipped bit in its last record from a torn write handles both). An entry outside
the damage that disappears stays ``lost``, and damaged bytes handed out are ``corrupt``.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import os
import random
import stat as _stat
from collections.abc import Iterable
from typing import Any

from harness.check.history import NEMESIS, Op, entry_key
from harness.check.words import count
from harness.faults.actions import Damage, RemoveFiles

__all__ = ["MIN_NEEDLE", "at_rest", "damage", "in_shim", "needles", "occurrences", "plan",
           "remove", "touched"]

MIN_NEEDLE = 3
"""Shorter strings stand for nothing: they would be found everywhere."""


def _encodings(payload: bytes) -> list[bytes]:
    text = json.dumps(payload.decode("latin-1"))[1:-1].encode("ascii")
    return [payload, base64.b64encode(payload), base64.urlsafe_b64encode(payload),
            payload.hex().encode("ascii"), text]


def needles(records: Iterable[Any]) -> tuple[dict[str, set[bytes]], set[str]]:
    """(key -> the byte strings that stand for the entry on disk, the live keys: enqueued
    ok, or claimed, and not acked ok so far)."""
    out: dict[str, set[bytes]] = {}
    acked: set[str] = set()
    promised: set[str] = set()
    for rec in records:
        if not isinstance(rec, Op):
            continue
        value = rec.value if isinstance(rec.value, dict) else {}
        payload = value.get("payload")
        if rec.f == "enqueue" and rec.type == "invoke" and isinstance(payload, bytes):
            key = rec.key or entry_key(payload)
            if key is not None:
                out.setdefault(key, set()).update(_encodings(payload))
        elif rec.type == "ok" and rec.key is not None and rec.key in out:
            if value.get("id") is not None and rec.f in ("enqueue", "claim"):
                out[rec.key].add(str(value["id"]).encode("utf-8", "replace"))
                promised.add(rec.key)
            if rec.f == "ack":
                acked.add(rec.key)
    for found in out.values():
        found.difference_update({n for n in found if len(n) < MIN_NEEDLE})
    return out, promised - acked


def occurrences(data: bytes, wanted: dict[str, set[bytes]]) -> list[tuple[int, int, str]]:
    """Every (start, end, key) at which something standing for an entry is found."""
    found = []
    for key, strings in wanted.items():
        for s in strings:
            at = data.find(s)
            while at >= 0:
                found.append((at, at + len(s), key))
                at = data.find(s, at + 1)
    return sorted(found)


def touched(found: list[tuple[int, int, str]], ranges: Iterable[tuple[int, int]]) -> set[str]:
    """Keys found overlapping a range, or nearest to it on either side (see module doc)."""
    keys: set[str] = set()
    for a, b in ranges:
        keys.update(k for s, e, k in found if s < b and e > a)
        before = [e for _s, e, _k in found if e <= a]
        if before:
            keys.update(k for _s, e, k in found if e == max(before))
        after = [s for s, _e, _k in found if s >= b]
        if after:
            keys.update(k for s, _e, k in found if s == min(after))
    return keys


class _Files:
    """Regular files under the sandbox, through unpatched calls."""

    def __init__(self, root: str, real: Any) -> None:
        self.root, self.real = root.rstrip("/"), real

    def path(self, rel: str) -> str:
        assert rel and ".." not in rel.split("/"), rel
        return f"{self.root}/{rel}"

    def sizes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        todo = [""]
        while todo:
            rel = todo.pop()
            try:
                names = sorted(self.real.listdir(f"{self.root}/{rel}" if rel else self.root))
            except OSError:
                continue
            for name in names:
                child = f"{rel}/{name}" if rel else name
                try:
                    st = self.real.lstat(self.path(child))
                except OSError:
                    continue
                if _stat.S_ISDIR(st.st_mode):
                    todo.append(child)
                elif _stat.S_ISREG(st.st_mode):
                    out[child] = st.st_size
        return dict(sorted(out.items()))

    def read(self, rel: str) -> bytes:
        fd = self.real.open(self.path(rel), os.O_RDONLY)
        try:
            chunks = []
            while chunk := self.real.read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            self.real.close(fd)

    def contents(self) -> dict[str, bytes]:
        out = {}
        for rel in self.sizes():
            try:
                out[rel] = self.read(rel)
            except OSError:
                continue  # unreadable to us: nothing to find in it
        return out


def _where(contents: dict[str, bytes], records: Iterable[Any]
           ) -> tuple[dict[str, list[tuple[int, int, str]]], set[str]]:
    """(file -> occurrences in it, live keys found in no file)."""
    wanted, live = needles(records)
    found = {rel: occurrences(data, wanted) for rel, data in contents.items()}
    seen = {k for occ in found.values() for _s, _e, k in occ}
    return found, live - seen


def _draw(data: bytes, action: Damage, rng: random.Random
          ) -> tuple[bytes | None, list[tuple[int, int]], str]:
    """(the new content, None when deleted; the damaged ranges; what was done, in words)."""
    n = len(data)
    if action.damage == "bitflip":
        new = bytearray(data)
        spots = []
        for _ in range(action.flips):
            at, bit = rng.randrange(n), rng.randrange(8)
            new[at] ^= 1 << bit
            spots.append((at, bit))
        words = ", ".join(f"bit {bit} of byte {at}" for at, bit in spots)
        return bytes(new), sorted({(at, at + 1) for at, _bit in spots}), f"flipped {words}"
    if action.damage == "sector":
        first = rng.randrange((n + action.sector - 1) // action.sector) * action.sector
        end = min(n, first + action.sector)
        return (data[:first] + bytes(end - first) + data[end:], [(first, end)],
                f"zeroed the {action.sector}-byte sector at bytes {first}-{end}")
    if action.damage == "truncate":
        cut = rng.randrange(n)
        return data[:cut], [(cut, n)], f"truncated it from {n} to {cut} bytes"
    return None, [(0, n)], f"deleted it ({count(n, 'byte')})"


def _write(files: _Files, rel: str, new: bytes | None, ranges: list[tuple[int, int]],
           model: Any) -> None:
    """Change the file in place (same inode), and make the change durable in the model."""
    path = files.path(rel)
    real = files.real
    if new is None:
        real.unlink(path)
        if model is not None:
            model.removed_by_fault(path)
        return
    fd = real.open(path, os.O_WRONLY)
    try:
        for a, b in ranges:
            if a >= len(new):
                real.ftruncate(fd, len(new))
                continue
            real.lseek(fd, a, os.SEEK_SET)
            view = memoryview(new)[a:b]
            while view:
                view = view[real.write(fd, view):]
        real.fsync(fd)  # damage at rest is on the medium: a power loss keeps it
        if model is not None:
            model.file_synced(fd)
    finally:
        real.close(fd)


def _pick(candidates: list[tuple[str, int]], rng: random.Random) -> str:
    """A file in proportion to its size: damage strikes bytes, not files."""
    point = rng.randrange(sum(size for _rel, size in candidates))
    for rel, size in candidates:
        if point < size:
            return rel
        point -= size
    raise AssertionError("unreachable: point < total size")


def plan(action: Damage, contents: dict[str, bytes], records: Iterable[Any]
         ) -> tuple[str | None, bytes | None, dict[str, Any]]:
    """What ``action`` does to the files ``contents`` (path -> bytes), without touching
    anything: (the file, its new content or None when deleted, the `FaultEvent` arguments);
    the file is None when nothing could be damaged."""
    rng = random.Random(action.seed)
    found, nowhere = _where(contents, records)
    candidates = [(rel, len(data)) for rel, data in contents.items()
                  if fnmatch.fnmatchcase(rel, action.path) and data]
    # Files that hold entries first: damage to a preallocated file of zeros tests nothing.
    candidates = [c for c in candidates if found[c[0]]] or candidates
    if not candidates:
        return None, None, {"effect": f"no file matching {action.path!r} held any bytes: "
                                      "nothing damaged"}
    rel = _pick(candidates, rng)
    new, ranges, words = _draw(contents[rel], action, rng)
    entries = sorted(touched(found[rel], ranges) | nowhere, key=_order)
    effect = (f"damage at rest to {rel}: {words}; entries that may have lain there: "
              f"{', '.join(entries) or 'none'}")
    return rel, new, {"effect": effect, "ranges": [(rel, a, b) for a, b in ranges],
                      "entries": entries}


def damage(action: Damage, *, root: str, records: Iterable[Any], real: Any = None,
           model: Any = None) -> dict[str, Any]:
    """Carry out damage at rest; the keyword arguments of its `FaultEvent`."""
    files = _Files(root, real or os)
    rel, new, event = plan(action, files.contents(), records)
    if rel is not None:
        try:
            _write(files, rel, new, [(a, b) for _f, a, b in event["ranges"]], model)
        except OSError as exc:
            return {"effect": f"could not damage {rel}: {exc}"}
    return event


def remove(action: RemoveFiles, *, root: str, records: Iterable[Any], real: Any = None,
           model: Any = None) -> dict[str, Any]:
    """Unlink every regular file matching the action's glob; its `FaultEvent` arguments."""
    files = _Files(root, real or os)
    contents = files.contents()
    chosen = [rel for rel in contents if fnmatch.fnmatchcase(rel, action.path)]
    found, nowhere = _where(contents, records)
    removed, entries = [], set()
    for rel in chosen:
        try:
            files.real.unlink(files.path(rel))
        except OSError:
            continue  # gone already, or not ours to remove
        removed.append(rel)
        entries.update(k for _s, _e, k in found[rel])
        if contents[rel]:
            entries.update(nowhere)
        if model is not None:
            model.removed_by_fault(files.path(rel))
    if not removed:
        return {"effect": f"no file matching {action.path!r} was present: nothing removed"}
    names = ", ".join(f"{rel} ({count(len(contents[rel]), 'byte')})" for rel in removed)
    held = ", ".join(sorted(entries, key=_order))
    return {"effect": f"another program removed {names}"
                      + (f"; entries that may have lain there: {held}" if held else ""),
            "destroyed": bool(entries), "entries": sorted(entries, key=_order),
            "ranges": [(rel, 0, len(contents[rel])) for rel in removed]}


def _order(key: str) -> tuple[int, str]:
    return (int(key[1:]), key) if key[1:].isdigit() else (1 << 62, key)


# -- in thread mode: the shim's side ------------------------------------------------------


def in_shim(shim: Any, p: int, action: Damage | RemoveFiles) -> None:
    """Carry out ``action`` for the shim (processor ``p``, or the nemesis) and record it."""
    with shim._quiet():
        done = (remove if isinstance(action, RemoveFiles) else damage)(
            action, root=shim.sandbox, records=shim.history.records, real=shim.real,
            model=shim.model)
    shim.history.fault(p, action.kind, action.fault, **done)


def at_rest(shim: Any, where: str) -> None:
    """Thread mode's quiet point ``where`` (``"restart"``, ``"drain"``): the damage due."""
    decide = getattr(shim.plan, "at_rest", None)  # a process-mode child's plan has none:
    if decide is None:  # its parent carries damage at rest out
        return
    for action in decide(where, shim.ops):
        shim._fired += 1
        in_shim(shim, NEMESIS, action)
