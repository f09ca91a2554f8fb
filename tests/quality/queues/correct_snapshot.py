"""CORRECT: the whole queue state in one JSON file, rewritten atomically under an flock.

Save recipe: unique temp name in the same directory, write, flush, fsync, os.replace,
fsync the directory. Every load-modify-save holds an exclusive flock on the directory
itself (opened per call; no lock file that someone could delete while it is held). A
read error is an error, never an empty queue. The directory is
born with its state file (built aside, then renamed into place), so inside an existing
directory a missing state file is damage, not emptiness. recover() puts every
PROCESSING entry back to PENDING (no other processor runs then).

The bug modules subclass `SnapshotQueue` and change one thing each.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil

from tests.quality.queues._util import (
    dir_flocked,
    discarded_on_error,
    durable_name,
    fsync_dir,
    unique,
    write_synced,
)

log = logging.getLogger(__name__)

STATE = "state.json"


class SnapshotQueue:
    def __init__(self, directory: str) -> None:
        self.dir = os.path.abspath(directory)
        self.state_path = os.path.join(self.dir, STATE)
        self.lock_path = os.path.join(self.dir, "queue.lock")  # for variants with a lock file

    # -- the directory: born with its state file ------------------------------------

    def _ensure(self) -> None:
        if os.path.isdir(self.dir):
            durable_name(self.dir)  # its creator's directory fsync may have failed
            return
        parent = os.path.dirname(self.dir)
        os.makedirs(parent, exist_ok=True)
        aside = os.path.join(parent, unique(".init-" + os.path.basename(self.dir)))
        os.mkdir(aside)
        try:
            self._write_file(os.path.join(aside, STATE), self._dump({"seq": 0, "entries": {}}))
            fsync_dir(aside)
            try:
                os.rename(aside, self.dir)
            except OSError:
                if not os.path.isdir(self.dir):
                    raise
                durable_name(self.dir)
                return  # someone else created it first
            durable_name(self.dir, created=True)
        finally:
            if os.path.isdir(aside):
                shutil.rmtree(aside, ignore_errors=True)

    def _lock(self):
        return dir_flocked(self.dir, ensure=self._ensure)

    # -- load / save -------------------------------------------------------------------

    @staticmethod
    def _dump(state: dict) -> bytes:
        return json.dumps(state, sort_keys=True).encode("utf-8")

    def _load(self) -> dict:
        with open(self.state_path, "rb") as f:  # any error propagates
            data = f.read()
        state = json.loads(data.decode("utf-8"))
        if not isinstance(state, dict) or "entries" not in state:
            raise ValueError(f"{self.state_path}: not a queue state")
        return state

    def _write_file(self, path: str, data: bytes) -> None:
        write_synced(path, data)

    def _temp_path(self) -> str:
        return os.path.join(self.dir, unique(STATE + ".tmp"))

    def _save(self, state: dict) -> None:
        tmp = self._temp_path()
        with discarded_on_error(tmp):
            self._write_file(tmp, self._dump(state))
            os.replace(tmp, self.state_path)
        fsync_dir(self.dir)

    # -- the contract ------------------------------------------------------------------

    def enqueue(self, payload: bytes) -> str:
        with self._lock():
            state = self._load()
            state["seq"] += 1
            ident = f"{state['seq']:08d}"
            state["entries"][ident] = {
                "state": "PENDING", "worker": None,
                "payload": base64.b64encode(bytes(payload)).decode("ascii")}
            self._save(state)
        return ident

    def _pick(self, state: dict) -> str | None:
        for ident in sorted(state["entries"]):
            if state["entries"][ident]["state"] == "PENDING":
                return ident
        return None

    def claim(self, worker: str):
        with self._lock():
            state = self._load()
            ident = self._pick(state)
            if ident is None:
                return None
            entry = state["entries"][ident]
            entry["state"], entry["worker"] = "PROCESSING", worker
            self._save(state)
        return ident, base64.b64decode(entry["payload"])

    def ack(self, entry_id: str) -> None:
        with self._lock():
            state = self._load()
            if entry_id not in state["entries"]:
                raise KeyError(f"ack of unknown entry {entry_id!r}")
            del state["entries"][entry_id]
            self._save(state)

    def recover(self) -> None:
        with self._lock():
            state = self._load()
            for entry in state["entries"].values():
                if entry["state"] == "PROCESSING":
                    entry["state"], entry["worker"] = "PENDING", None
            self._save(state)
            for name in os.listdir(self.dir):
                if name.startswith(STATE + ".tmp"):
                    os.unlink(os.path.join(self.dir, name))

    def states(self) -> dict:
        with self._lock():
            state = self._load()
        return {ident: e["state"] for ident, e in state["entries"].items()}

    def close(self) -> None:
        pass


def open_queue(directory: str) -> SnapshotQueue:
    return SnapshotQueue(directory)


# No checksums: a flipped bit at rest is handed out as data. It says so, and the harness
# lists what damage at rest does to it apart, as outside its promises.
open_queue.promises = {"damage": False}  # type: ignore[attr-defined]
