"""The durability model's record of the writes a failed fsync dropped (crash-model rule 7).

When fsync fails with EIO, Linux marks the dirty pages it could not write clean: they
stay readable in the page cache but never reach the disk unless the program writes
them again, and a later fsync that succeeds does not bring them back (`FsyncFailure`).
`DroppedWrites`, mixed into `harness.faults.durability.DurabilityModel`, keeps per inode the
pages so dropped and not written since; every fsync after that makes the file's
current content durable except those pages, which keep their old durable bytes
(zeros past the old durable length: space allocated, never written).

The grain is the kernel's: 4096-byte pages (x86's page size, ext4's default block). A
dropped page is one whose content differed from the durable content at the failure (a
byte in it that had not changed reverts to the value it already has). A write of any
byte of a dropped page, or a truncation inside or before it, dirties the whole page
again, dropped bytes included (they are still in the cache), so the next fsync makes
all of it durable; the shim reports writes and truncations while anything is dropped.
Finer, the model would invent holes a real page cache never leaves: a reader sees the
dropped bytes, and the page that holds them goes to the disk whole.
"""

from __future__ import annotations

import stat as _stat

from harness.check.words import count

__all__ = ["PAGE", "DroppedWrites", "differing", "minus", "revert", "union"]

PAGE = 4096
"""Bytes per page: what a failed fsync drops, and what a write dirties again, at once."""

Ranges = list[tuple[int, int]]


def differing(old: bytes, new: bytes) -> Ranges:
    """Ranges of whole pages where ``new`` differs from ``old``, clipped to ``new``."""
    out: Ranges = []
    for i in range((max(len(old), len(new)) + PAGE - 1) // PAGE):
        lo, hi = i * PAGE, min((i + 1) * PAGE, len(new))
        if lo >= hi or old[lo:lo + PAGE] == new[lo:lo + PAGE]:
            continue
        if out and out[-1][1] == lo:
            out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def union(a: Ranges, b: Ranges) -> Ranges:
    out: Ranges = []
    for lo, hi in sorted(a + b):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return out


def minus(ranges: Ranges, lo: int, hi: int | None) -> Ranges:
    """``ranges`` without ``[lo, hi)`` (``hi`` None: everything from ``lo`` on)."""
    out: Ranges = []
    for a, b in ranges:
        if hi is not None and a < lo < hi < b:
            out += [(a, lo), (hi, b)]
        elif b <= lo or (hi is not None and a >= hi):
            out.append((a, b))
        elif a < lo:
            out.append((a, lo))
        elif hi is not None and b > hi:
            out.append((hi, b))
    return out


def revert(current: bytes, durable: bytes, ranges: Ranges) -> bytes:
    """``current`` with the ``ranges`` holding ``durable``'s bytes again (zeros past it)."""
    out = bytearray(current)
    for lo, hi in ranges:
        hi = min(hi, len(out))
        if lo < hi:
            out[lo:hi] = durable[lo:hi].ljust(hi - lo, b"\0")
    return bytes(out)


class DroppedWrites:
    """Mixin for `DurabilityModel`: ``_dropped`` maps an inode to its dropped ranges.

    Uses the model's ``_lock``, ``_real``, ``_nodes``, ``_file_node`` and
    ``_read_current``; dropping an inode's record (``_drop``, also at a power loss, whose
    rebuilt files are new inodes) forgets its ranges.
    """

    _dropped: dict[int, Ranges]

    @property
    def dropping(self) -> bool:
        """Is any write dropped? Only then does the shim report writes (`file_written`)."""
        return bool(self._dropped)

    def file_sync_failed(self, fd: int) -> None:
        """fsync of ``fd`` failed with EIO: what it was to write is dropped (rule 7)."""
        with self._lock:
            st = self._real.fstat(fd)
            if _stat.S_ISDIR(st.st_mode):
                return  # the directory keeps its entries as of its last successful fsync
            node = self._file_node(st)
            current = None if node is None else self._read_current(node)
            if current is None:
                return
            ranges = union(self._dropped.get(st.st_ino, []), differing(node.content, current))
            if ranges:
                self._dropped[st.st_ino] = ranges

    def file_written(self, fd: int, lo: int, hi: int | None) -> None:
        """Bytes ``[lo, hi)`` of ``fd``'s file were written (``hi`` None: it was truncated
        to ``lo``): their pages are dirty again, the next fsync makes them durable."""
        if not self._dropped or (hi is not None and hi <= lo):
            return
        lo = lo // PAGE * PAGE
        hi = None if hi is None else -(-hi // PAGE) * PAGE
        with self._lock:
            ino = self._real.fstat(fd).st_ino
            ranges = self._dropped.get(ino)
            if ranges is None:
                return
            left = minus(ranges, lo, hi)
            if left:
                self._dropped[ino] = left
            else:
                del self._dropped[ino]

    def _said_dropped(self, rel: str, ino: int) -> list[str]:
        """The sentence a power loss says of a file some of whose bytes a failed fsync dropped."""
        ranges = self._dropped.get(ino)
        if not ranges:
            return []
        n = sum(hi - lo for lo, hi in ranges)
        return [f"{rel}: {count(n, 'byte')} in pages a failed fsync dropped were not written again "
                "since, so no later fsync made them durable"]

    def _syncable(self, ino: int, current: bytes, durable: bytes) -> bytes:
        """What an fsync of inode ``ino`` now makes durable: ``current`` less what was dropped."""
        ranges = self._dropped.get(ino)
        return current if not ranges else revert(current, durable, ranges)

    def _carry_dropped(self, before: dict[int, tuple[bytes, Ranges]]) -> None:
        """After a re-snapshot (sync(2)): ``before`` held the durable bytes and dropped
        ranges of inodes; a sync writes dirty pages only, so those ranges keep them."""
        self._dropped = {}
        for ino, (durable, ranges) in before.items():
            node = self._nodes.get(ino)
            if node is not None and not node.is_dir:
                node.content = revert(node.content, durable, ranges)
                self._dropped[ino] = ranges
