"""Reproduce the incident of 2025-12-13: the old JSON-file queue, kept broken on purpose.

Test data for the fault-injection harness, not a queue to use: it mirrors the API of the
core (``persistence.open_queue``) and keeps every mechanism of the incident report
(``/work/shared/incident.md``) so the harness can see each fail. Do not fix it here.

Behaviours kept, and what each one costs (incident.md sections in brackets):

* One ``queue.json`` holds every entry with its status, and every operation loads the
  whole file, changes it and saves the whole file. Cost: each operation is O(queue size),
  so throughput falls as the queue grows (22.17 msg/s at 90 messages, 13.66 at 450)
  ["Earlier symptoms"]. DELIVERED entries are never removed (93 of 94 entries were
  DELIVERED in the report), so the file only grows.
* The save writes to the fixed path ``queue.json.tmp``, the same for every process and
  every save. Cost: two processors write, move or delete each other's temp file; the
  loser's ``shutil.move`` raises ``[Errno 2] No such file or directory: 'queue.json.tmp'``
  (seen four times) and its state is never saved ["What was seen"].
* The save deletes ``queue.json`` (retrying with short sleeps on ``PermissionError``, for
  Windows WinError 5/32) and then moves the temp file into place. Cost: between delete and
  move there is no ``queue.json``; a loader in that window reads an empty queue, and a
  crash in that window leaves only the temp file, which nobody reads back.
* No fsync of the file or of the directory, and no flush beyond ``close``. Cost: after a
  power loss ``queue.json`` may be empty, partial or missing, and the move may be undone.
  ``stats()["fsyncs"]`` is therefore always 0.
* A ``queue.json.lock`` file (``O_CREAT | O_EXCL``) guards only the save, not the
  load-modify-save cycle. Cost: two processors load the same state and the second save
  overwrites the first one's update (lost update). A processor killed mid-save leaves the
  lock behind (the incident's four stale ``.lock`` files); a later save waits a few short
  moments, takes the lock for stale and breaks it. Cost: a live but slow holder is taken
  for dead too, two saves run at once on the shared temp name, and one of them meets
  ``FileNotFoundError`` on ``queue.json.tmp``, as the incident's log did four times.
* Loading: a missing ``queue.json`` is created as ``[]`` and read as empty;
  ``PermissionError``, ``FileNotFoundError`` or a decode error on read return an empty
  list. Cost: any transient read fault becomes an empty queue, and the next save writes
  that near-empty state over the real one (silent total loss).
* Invalid JSON triggers "partial recovery": keep what parses up to the last ``]``, else
  scan for ``{...}`` objects; the file is backed up to ``queue.json.backup-<n>``, the
  recovered part is saved and the rest dropped. Cost: entries after the damage are lost
  ("Extra data" and "Expecting value" errors, 18 of 90 and 47 of 450 not processed).
* The "processor loop": ``enqueue``, ``claim``, ``ack`` and ``fail`` log a failed save
  (``logging.getLogger("persistence.legacy").error``) and return as if it had worked, so
  ``enqueue`` still returns an id for an entry that is not in the file, and ``claim``
  hands out an entry whose PROCESSING state was never saved (it will be handed out
  again). Only ``Exception`` is swallowed: a ``BaseException`` (a simulated crash)
  propagates and, like a real kill, leaves the lock file behind.
* ``ack``/``fail`` of an unknown id only log a warning; ``ack`` does not check the entry
  is PROCESSING. ``recover()`` only reloads the file: entries a crashed processor left
  PROCESSING stay so forever, stale lock files stay ["Next steps", never done].

``seed_fix=True`` adds exactly the fix that shipped ["The fix that shipped"]: create the
directory before writing; check the temp file exists and is not empty after writing, and
exists before the move (a clearer ``FileNotFoundError``); delete it on failure. Still
check-then-act on a shared name: the race still loses saves, and the loop swallows all.

All file access goes through ``open``, ``os.*``, ``os.path.*`` and ``shutil.*`` looked up
at call time, so a harness that patches them while this code runs intercepts every call.

Owns the incident's design; may import nothing of ``persistence`` (it stands alone).
"""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["LegacyQueue", "LegacyRecovery", "open_legacy", "open_queue"]
__all__ += ["LOCK_FILE", "QUEUE_FILE", "STATES", "TEMP_FILE"]  # names a fault plan targets

QUEUE_FILE = "queue.json"
TEMP_FILE = "queue.json.tmp"
LOCK_FILE = "queue.json.lock"
STATES = ("PENDING", "PROCESSING", "DELIVERED", "FAILED")

# Short waits, as the incident's Windows retry loops used; a few milliseconds in total
# before a lock is taken for stale.
_REMOVE_DELAYS = (0.001, 0.002, 0.005, 0.01)
_LOCK_DELAYS = (0.001, 0.002, 0.005)

_log = logging.getLogger("persistence.legacy")


@dataclass(frozen=True)
class LegacyRecovery:
    """What ``recover()`` repaired, shaped like the core's report: always nothing."""

    torn_bytes_cut: int = 0
    requeued: tuple[str, ...] = ()
    temp_files_removed: tuple[str, ...] = ()
    quarantined: tuple[str, ...] = ()
    owners_removed: tuple[str, ...] = ()


class LegacyQueue:
    """The incident's queue: one JSON file, rewritten whole on every change."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        seed_fix: bool = False,
        max_attempts: int = 5,
        id_factory: Callable[[], str] | None = None,
    ) -> None:
        self.directory = os.fspath(directory)
        self.seed_fix = seed_fix
        self.max_attempts = max_attempts
        # uuid4 so processes never mint the same id; a replaying harness may pass its own.
        self._new_id = id_factory or (lambda: uuid.uuid4().hex)
        self.path = os.path.join(self.directory, QUEUE_FILE)
        self.tmp_path = os.path.join(self.directory, TEMP_FILE)
        self.lock_path = os.path.join(self.directory, LOCK_FILE)
        self._closed = False  # nothing is held open; close() only refuses further use
        # Start-up made the directory and loaded once (creating an empty queue.json).
        os.makedirs(self.directory, exist_ok=True)
        self._load()

    def __enter__(self) -> LegacyQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True

    def enqueue(self, payload: bytes) -> str:
        self._check_open()
        entries = self._load()
        entry_id = self._new_id()
        encoded = base64.b64encode(bytes(payload)).decode("ascii")
        entries.append({"id": entry_id, "status": "PENDING", "payload": encoded, "attempts": 0})
        self._save_or_log(entries, "enqueue")
        return entry_id

    def claim(self, worker: str) -> tuple[str, bytes] | None:
        self._check_open()
        entries = self._load()
        for entry in entries:
            if entry.get("status") == "PENDING":
                entry["status"] = "PROCESSING"
                entry["worker"] = worker
                entry["attempts"] = int(entry.get("attempts") or 0) + 1
                # Returned even when the save fails: the entry stays PENDING on disk and
                # will be handed out again (duplicate delivery).
                self._save_or_log(entries, "claim")
                return entry["id"], base64.b64decode(entry.get("payload") or "")
        return None

    def ack(self, entry_id: str) -> None:
        entries, entry = self._load_entry(entry_id, "ack")
        if entry is None:
            return
        # No check that the entry is PROCESSING: the old code set the status by id.
        entry["status"] = "DELIVERED"
        self._save_or_log(entries, "ack")

    def fail(self, entry_id: str, reason: str) -> None:
        entries, entry = self._load_entry(entry_id, "fail")
        if entry is None:
            return
        attempts = int(entry.get("attempts") or 0)
        entry["status"] = "FAILED" if attempts >= self.max_attempts else "PENDING"
        entry["reason"] = reason
        entry["worker"] = None
        self._save_or_log(entries, "fail")

    # The batch forms are loops of single operations, each rewriting the whole file,
    # as the incident's code would have done.

    def enqueue_many(self, payloads: Iterable[bytes]) -> list[str]:
        return [self.enqueue(payload) for payload in payloads]

    def claim_many(self, worker: str, n: int) -> list[tuple[str, bytes]]:
        claimed = []
        for _ in range(n):
            item = self.claim(worker)
            if item is None:
                break
            claimed.append(item)
        return claimed

    def ack_many(self, entry_ids: Iterable[str]) -> None:
        for entry_id in entry_ids:
            self.ack(entry_id)

    def recover(self) -> LegacyRecovery:
        """Only reload (perhaps via partial recovery); report nothing, as nothing is repaired.

        Entries a crashed processor left PROCESSING stay so forever; stale locks stay.
        """
        self._check_open()
        self._load()
        return LegacyRecovery()

    def states(self) -> dict[str, str]:
        self._check_open()
        return {entry["id"]: entry.get("status", "") for entry in self._load() if "id" in entry}

    def stats(self) -> dict[str, int]:
        self._check_open()
        entries = self._load()
        counts = {state: sum(e.get("status") == state for e in entries) for state in STATES}
        try:
            file_bytes = os.path.getsize(self.path)
        except OSError:
            file_bytes = 0
        return {"fsyncs": 0, "entries": len(entries), "file_bytes": file_bytes, **counts}

    def _load_entry(self, entry_id: str, operation: str) -> tuple[list[dict], dict | None]:
        self._check_open()
        entries = self._load()
        entry = next((entry for entry in entries if entry.get("id") == entry_id), None)
        if entry is None:
            # "Logged the error and carried on": the caller never learns the id is unknown.
            _log.warning("%s: entry %s not found in %s", operation, entry_id, self.path)
        return entries, entry

    def _load(self) -> list[dict]:
        if not os.path.exists(self.path):
            # A missing file is "a new queue": create it empty and read nothing.
            try:
                with open(self.path, "w") as handle:
                    handle.write("[]")
            except (PermissionError, FileNotFoundError) as exc:
                _log.error("could not create %s: %s", self.path, exc)
            return []
        try:
            with open(self.path) as handle:
                text = handle.read()
        except (PermissionError, FileNotFoundError, UnicodeDecodeError) as exc:
            # The incident's worst habit: a transient read fault becomes an empty queue,
            # and the next save writes that over the real state.
            _log.error("could not read %s, treating queue as empty: %s", self.path, exc)
            return []
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            return self._partial_recovery(text, exc)
        if not isinstance(data, list):
            return self._partial_recovery(text, ValueError("queue file is not a JSON list"))
        return [entry for entry in data if isinstance(entry, dict)]

    def _partial_recovery(self, text: str, error: Exception) -> list[dict]:
        _log.error("invalid JSON in %s (%s); attempting partial recovery", self.path, error)
        recovered = _parse_prefix(text)
        if recovered is None:
            recovered = _scan_objects(text)
        # Back the damaged file up, then save what survived; everything else is dropped.
        try:
            shutil.copyfile(self.path, self._backup_path())
        except OSError as exc:
            _log.error("could not back up %s: %s", self.path, exc)
        self._save_or_log(recovered, "recovery")
        _log.error("partial recovery of %s kept %d entries", self.path, len(recovered))
        return recovered

    def _backup_path(self) -> str:
        n = 1
        while os.path.exists(f"{self.path}.backup-{n}"):
            n += 1
        return f"{self.path}.backup-{n}"

    def _save_or_log(self, entries: list[dict], operation: str) -> bool:
        # The processor loop: log the failure and carry on as if the state were saved.
        try:
            self._save(entries)
        except Exception as exc:
            _log.error("queue save failed during %s: %s", operation, exc)
            return False
        return True

    def _save(self, entries: list[dict]) -> None:
        if self.seed_fix:
            # The fix recreates a removed directory before anything is written into it.
            os.makedirs(self.directory, exist_ok=True)
        self._acquire_lock()
        # On an ordinary exception the lock is released; a BaseException (a kill) skips
        # this, leaving the stale lock the incident found.
        try:
            self._write_and_move(entries)
        except Exception:
            self._release_lock()
            raise
        self._release_lock()

    def _write_and_move(self, entries: list[dict]) -> None:
        tmp = self.tmp_path
        try:
            text = json.dumps(entries)
            with open(tmp, "w") as handle:
                handle.write(text)
            if self.seed_fix and (not os.path.exists(tmp) or os.path.getsize(tmp) == 0):
                raise OSError(errno.EIO, "temp file missing or empty after write", tmp)
            if os.path.exists(self.path):
                self._remove_with_retry(self.path)
            if self.seed_fix and not os.path.exists(tmp):
                # The clearer error of the fix; still check-then-act on a shared name.
                raise FileNotFoundError(
                    errno.ENOENT, "temp file disappeared before it could be moved", tmp
                )
            shutil.move(tmp, self.path)
        except Exception:
            if self.seed_fix:
                self._remove_partial_temp()
            raise

    def _remove_with_retry(self, path: str) -> None:
        # Windows denies a delete while another handle is open (WinError 5/32); retry.
        for delay in _REMOVE_DELAYS:
            try:
                os.remove(path)
                return
            except PermissionError:
                time.sleep(delay)
        os.remove(path)

    def _remove_partial_temp(self) -> None:
        # The fix deletes "its" temp file, which may be another processor's.
        try:
            if os.path.exists(self.tmp_path):
                os.remove(self.tmp_path)
        except OSError as exc:
            _log.error("could not remove temp file %s: %s", self.tmp_path, exc)

    def _acquire_lock(self) -> None:
        for delay in _LOCK_DELAYS:
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                time.sleep(delay)
                continue
            os.close(fd)
            return
        # Still there after the waits: taken for the stale lock of a crashed processor and
        # broken. A live holder that was merely slow is now saving alongside us.
        _log.warning("breaking stale lock %s", self.lock_path)
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.lock_path)
        fd = os.open(self.lock_path, os.O_CREAT | os.O_WRONLY, 0o644)
        os.close(fd)

    def _release_lock(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.lock_path)

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("queue is closed")


def _parse_prefix(text: str) -> list[dict] | None:
    # "Keep what parses up to the last ]" (junk after a complete list), else the first
    # complete document ("Extra data": a shorter save written over a longer one).
    try:
        data = json.loads(text[: text.rfind("]") + 1])
    except json.JSONDecodeError:
        try:
            data = json.JSONDecoder().raw_decode(text.lstrip())[0]
        except json.JSONDecodeError:
            return None
    return [entry for entry in data if isinstance(entry, dict)] if isinstance(data, list) else None


def _scan_objects(text: str) -> list[dict]:
    # Last resort: pick out every {...} that decodes on its own; torn ones are dropped.
    decoder = json.JSONDecoder()
    found: list[dict] = []
    pos = text.find("{")
    while pos >= 0:
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            pos = text.find("{", pos + 1)
            continue
        if isinstance(obj, dict) and "id" in obj:
            found.append(obj)
        pos = text.find("{", end)
    return found


def open_legacy(
    directory: str | os.PathLike[str], seed_fix: bool = False, **options
) -> LegacyQueue:
    """Open the incident's queue in ``directory``; ``seed_fix=True`` adds the shipped fix."""
    return LegacyQueue(directory, seed_fix=seed_fix, **options)


def open_queue(directory: str | os.PathLike[str], **options) -> LegacyQueue:
    """Same signature as ``persistence.open_queue``, so a harness target can name this."""
    return LegacyQueue(directory, **options)
