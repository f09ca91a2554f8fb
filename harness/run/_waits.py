"""Who sits out a wait step, and when it may go on: one ledger for both modes.

A wait step (`harness.run.shapes`) says "no call until the other processors (or those in
``of``) have begun ``count`` more queue calls". The baton (`harness.run.schedule`, thread
mode) and the parent (`harness.run._parent`, process mode) count the calls each processor
begins and ask this ledger who is due; when nobody else can make a call, they wake the
sleepers fewest calls short of their marks (a paced processor whose partners are done,
or the others waiting for an idle processor that went to sleep itself), so a wait never
outlives the calls that could end it.
"""

from __future__ import annotations

import collections

__all__ = ["Waits"]


class Waits:
    """Calls begun per processor, and the sleepers with the mark each waits for."""

    def __init__(self) -> None:
        self.calls: collections.Counter[int] = collections.Counter()
        self._marks: dict[int, tuple[tuple[int, ...], int]] = {}  # p -> (of, mark)

    def __contains__(self, p: int) -> bool:
        return p in self._marks

    def __bool__(self) -> bool:
        return bool(self._marks)

    def _counted(self, of: tuple[int, ...]) -> int:
        return sum(self.calls[q] for q in of) if of else self.calls.total()

    def called(self, p: int) -> None:
        """Processor ``p`` begins a queue call."""
        self.calls[p] += 1

    def sleep(self, p: int, count: int, of: tuple[int, ...] = ()) -> None:
        """``p`` waits until ``of`` (every other processor when empty) began ``count``
        more calls."""
        self._marks[p] = (tuple(of), self._counted(tuple(of)) + count)

    def discard(self, p: int) -> None:
        self._marks.pop(p, None)

    def _take(self, ps: list[int]) -> list[int]:
        for p in ps:
            del self._marks[p]
        return ps

    def due(self) -> list[int]:
        """The sleepers whose marks are reached, taken off the ledger."""
        return self._take([p for p, (of, mark) in self._marks.items()
                           if self._counted(of) >= mark])

    def nearest(self) -> list[int]:
        """Nobody else can make a call: the sleepers fewest calls short of their marks."""
        short = {p: mark - self._counted(of) for p, (of, mark) in self._marks.items()}
        least = min(short.values(), default=0)
        return self._take([p for p, n in short.items() if n == least])

    def everyone(self) -> list[int]:
        """Every sleeper (one of them may hold what a blocked processor waits for)."""
        return self._take(list(self._marks))
