"""BUG (snapshot in generations): a handle that idled across two generation moves writes its
cached, stale state back as the next generation, as the robust queue at commit 5c37264
did with a checkpoint it found missing. Expected: caught by idle-processor (lost and
duplicate: the others' later enqueues vanish, their acked entries come back), and by
no scenario whose processors all keep busy.

`GenerationQueue` is the correct design (the test suite checks it passes idle-processor
in both modes): the snapshot queue's state moves to a new file every ``EVERY`` saves.
A move writes ``state.<g+1>.json``, then turns ``state.<g>.json`` into a marker
``{"moved_to": g+1}`` (the commit point), then deletes ``state.<g-1>.json``; every step
is a synced temp file renamed into place, or a synced directory. Each handle remembers
its generation and follows markers, so a handle one move behind reads the marker it
needs; one that idled across two moves finds its file gone and must look for the
current generation: the lowest file, followed marker by marker. The bug, in `Q`, is
the one method that handles that case.
"""
from __future__ import annotations

import contextlib
import json
import os
import re

from tests.quality.queues._util import discarded_on_error, fsync_dir, write_synced
from tests.quality.queues.correct_snapshot import STATE, SnapshotQueue

_GEN = re.compile(r"state\.(\d+)\.json")


class GenerationQueue(SnapshotQueue):
    EVERY = 16  # saves per generation

    def __init__(self, directory: str) -> None:
        super().__init__(directory)
        self.gen: int | None = None  # the generation this handle reads and writes
        self.cache: dict | None = None  # the state as this handle last saw it

    def _path(self, gen: int) -> str:
        return os.path.join(self.dir, STATE if gen == 0 else f"state.{gen}.json")

    def _read(self, gen: int) -> dict:
        with open(self._path(gen), "rb") as f:  # any error but "missing" propagates
            return json.loads(f.read().decode("utf-8"))

    def _current(self) -> int:
        """The generation without a marker, reached from the lowest file there is."""
        names = os.listdir(self.dir)
        gen = min([int(m.group(1)) for m in map(_GEN.fullmatch, names) if m] +
                  ([0] if STATE in names else []))
        while "moved_to" in (state := self._read(gen)):
            gen = state["moved_to"]
        return gen

    def _lost_generation(self) -> None:
        """Our generation's file is gone: the queue moved on at least twice since."""
        self.gen = self._current()

    def _load(self) -> dict:
        if self.gen is None:
            self.gen = self._current()
        while True:
            try:
                state = self._read(self.gen)
            except FileNotFoundError:
                self._lost_generation()
                continue
            if "moved_to" not in state:
                self.cache = state
                return state
            self.gen = state["moved_to"]

    def _write(self, gen: int, state: dict) -> None:
        tmp = self._temp_path()
        with discarded_on_error(tmp):
            write_synced(tmp, self._dump(state))
            os.replace(tmp, self._path(gen))
        fsync_dir(self.dir)

    def _save(self, state: dict) -> None:
        state["saves"] = state.get("saves", 0) + 1
        self._write(self.gen, state)
        if state["saves"] % self.EVERY == 0:
            self._write(self.gen + 1, state)
            self._write(self.gen, {"moved_to": self.gen + 1})
            if self.gen >= 1:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._path(self.gen - 1))
                fsync_dir(self.dir)
            self.gen += 1
        self.cache = state


class Q(GenerationQueue):
    def _lost_generation(self) -> None:
        # BUG: "the mover must have died before writing the next generation": finish the
        # move from our own cached state, which is as old as our last call.
        self.gen += 1
        self._write(self.gen, self.cache)


def open_queue(directory: str) -> Q:
    return Q(directory)


def open_correct_queue(directory: str) -> GenerationQueue:
    return GenerationQueue(directory)
