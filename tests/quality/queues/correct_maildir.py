"""CORRECT: one file per entry, state = the subdirectory it sits in (maildir style).

q/tmp/ (being written), q/pending/, q/processing/; acked entries are unlinked.
- enqueue: write tmp/<name> (flush + fsync), rename into pending/, fsync pending/ (and
  tmp/); lock-free: names are unique.
- claim: under an flock on q/ itself, read the oldest pending file, rename it into
  processing/, fsync processing/ then pending/ (a journaled file system commits the
  rename whole at either fsync: a power loss leaves it in pending or in processing).
- ack: unlink processing/<name> (or pending/<name> if recover requeued it), fsync.
- recover: everything in processing/ goes back to pending/; tmp/ is emptied.
"""

from __future__ import annotations

import os
import time
import uuid

from tests.quality.queues._util import (
    dir_flocked,
    discarded_on_error,
    ensure_dir,
    fsync_dir,
    write_synced,
)

SUBDIRS = ("tmp", "pending", "processing")


class MaildirQueue:
    READ_CHUNK = 1 << 16

    def __init__(self, directory: str) -> None:
        self.dir = os.path.abspath(directory)
        self.tmp, self.pending, self.processing = (os.path.join(self.dir, s) for s in SUBDIRS)
        self.lock_path = os.path.join(self.dir, "lock")  # for variants with a lock file

    def _ensure(self) -> None:
        ensure_dir(self.dir)
        for sub in (self.tmp, self.pending, self.processing):
            ensure_dir(sub)

    def _lock(self):
        return dir_flocked(self.dir, ensure=self._ensure)

    def _new_name(self) -> str:
        return f"{time.time_ns():020d}.{uuid.uuid4().hex}"

    def _tmp_name(self, name: str) -> str:
        return os.path.join(self.tmp, name)

    def _write_entry(self, path: str, payload: bytes) -> None:
        write_synced(path, payload, exclusive=True)

    def _read_entry(self, path: str) -> bytes:
        fd = os.open(path, os.O_RDONLY)
        try:
            chunks = []
            while chunk := os.read(fd, self.READ_CHUNK):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def _move(self, src_dir: str, dst_dir: str, name: str) -> None:
        os.rename(os.path.join(src_dir, name), os.path.join(dst_dir, name))
        fsync_dir(dst_dir)  # either fsync commits the rename whole (one journal transaction)
        fsync_dir(src_dir)

    # -- the contract ----------------------------------------------------------------

    def enqueue(self, payload: bytes) -> str:
        self._ensure()
        name = self._new_name()
        tmp = self._tmp_name(name)
        with discarded_on_error(tmp):
            self._write_entry(tmp, bytes(payload))
            os.rename(tmp, os.path.join(self.pending, name))
        fsync_dir(self.pending)
        fsync_dir(self.tmp)
        return name

    def claim(self, worker: str):
        with self._lock():
            names = sorted(os.listdir(self.pending))
            if not names:
                return None
            name = names[0]
            payload = self._read_entry(os.path.join(self.pending, name))
            self._move(self.pending, self.processing, name)
        return name, payload

    def ack(self, entry_id: str) -> None:
        with self._lock():
            for where in (self.processing, self.pending):
                try:
                    os.unlink(os.path.join(where, entry_id))
                except FileNotFoundError:
                    continue
                fsync_dir(where)
                return
        raise KeyError(f"ack of unknown entry {entry_id!r}")

    def recover(self) -> None:
        with self._lock():
            for name in sorted(os.listdir(self.processing)):
                # rename onto an existing pending copy (power loss kept both) is fine
                os.rename(os.path.join(self.processing, name), os.path.join(self.pending, name))
            fsync_dir(self.pending)
            fsync_dir(self.processing)
            for name in os.listdir(self.tmp):
                os.unlink(os.path.join(self.tmp, name))
            fsync_dir(self.tmp)

    def states(self) -> dict:
        with self._lock():
            out = {n: "PENDING" for n in os.listdir(self.pending)}
            out.update({n: "PROCESSING" for n in os.listdir(self.processing)})
        return out

    def close(self) -> None:
        pass


def open_queue(directory: str) -> MaildirQueue:
    return MaildirQueue(directory)


# No checksums: a flipped bit at rest is handed out as data. It says so, and the harness
# lists what damage at rest does to it apart, as outside its promises.
open_queue.promises = {"damage": False}  # type: ignore[attr-defined]
