"""A naive JSON job store, as a user would first write one: the target the cause tests drive.

Every call reads the whole ``jobs.json``, changes it and writes it back in place, with no
lock, no temp file and no fsync. Two processors interleaved at a file call read each
other's half-written file (``JSONDecodeError: Extra data`` or ``Expecting value``), and a
power loss takes back everything. Kept here, not in ``examples/``: it is wrong on purpose.
"""

from __future__ import annotations

import json
import os
import uuid

__all__ = ["NaiveStore", "open_queue", "open_raising"]


class NaiveStore:
    """Entries in one JSON object ``{id: {"payload": hex, "state": ...}}``."""

    def __init__(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)
        self.path = os.path.join(directory, "jobs.json")

    def _load(self) -> dict:
        if not os.path.exists(self.path):
            return {}
        with open(self.path, encoding="utf-8") as f:
            text = f.read()
        return json.loads(text) if text else {}

    def _save(self, jobs: dict) -> None:
        # Rewritten where it stands: a reader in between sees a truncated or mixed file.
        with open(self.path, "r+" if os.path.exists(self.path) else "w",
                  encoding="utf-8") as f:
            f.write(json.dumps(jobs))
            f.truncate()

    def enqueue(self, payload: bytes) -> str:
        jobs = self._load()
        ident = uuid.uuid4().hex[:12]
        jobs[ident] = {"payload": payload.hex(), "state": "PENDING"}
        self._save(jobs)
        return ident

    def claim(self, worker: str) -> tuple[str, bytes] | None:
        jobs = self._load()
        for ident, job in jobs.items():
            if job["state"] == "PENDING":
                job["state"] = "PROCESSING"
                self._save(jobs)
                return ident, bytes.fromhex(job["payload"])
        return None

    def ack(self, entry_id: str) -> None:
        jobs = self._load()
        jobs[entry_id]["state"] = "DELIVERED"
        self._save(jobs)

    def recover(self) -> None:
        jobs = self._load()
        for job in jobs.values():
            if job["state"] == "PROCESSING":
                job["state"] = "PENDING"
        self._save(jobs)

    def close(self) -> None:
        pass

    def states(self) -> dict[str, str]:
        return {ident: job["state"] for ident, job in self._load().items()
                if job["state"] != "DELIVERED"}


def open_queue(directory: str) -> NaiveStore:
    return NaiveStore(directory)


def open_raising(directory: str) -> NaiveStore:
    """A factory whose constructor refuses every directory, with a message of its own."""
    raise RuntimeError(f"jobs database at {directory} needs a schema migration")
