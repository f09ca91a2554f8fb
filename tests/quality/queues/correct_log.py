"""CORRECT: an append-only log of checksummed text lines, written with raw os calls.

Each record is one line ``<crc32 hex 8> <json>\\n``; the json is {"op": "enq"|"claim"|
"ack"|"requeue", "id": ..., "p": base64 payload (enq only)}. Every append is fsynced
before the call returns. The directory is born with its (empty) log, built aside and
renamed into place, so a log missing from an existing directory is damage, not a new
queue. On read, a line that is unterminated or fails its checksum, with no valid line
after it, is a torn tail from a crash (nothing after it was ever acknowledged): it is
cut off before the next append so new records never glue onto garbage. A bad line with a
valid one after it is damage at rest (a crash only ever tears the end): every call
raises EBADMSG until `repair` rebuilds the log from every valid line. (A flipped bit in
the last line cannot be told from a torn write; it is cut like one. A power cut that
leaves holes in a multi-record append is taken for damage: the queue then refuses until
repaired, which loses nothing acknowledged.) Every process makes the directory's name
durable before it relies on it (a failed directory fsync is retried). All of it under an
flock on the directory q/ itself (no lock file that someone could delete while it is
held).
"""

from __future__ import annotations

import base64
import errno
import json
import os
import shutil
import uuid
import zlib

from tests.quality.queues._util import (
    dir_flocked,
    durable_name,
    fsync_dir,
    unique,
    write_synced,
)

LOG = "queue.log"


class LogQueue:
    SYNC_ACK = True
    CHECKSUM = True
    DAMAGE_IS_TORN = False  # the planted bug: a bad line anywhere is taken for a torn tail

    def __init__(self, directory: str) -> None:
        self.dir = os.path.abspath(directory)
        self.log_path = os.path.join(self.dir, LOG)
        self.lock_path = os.path.join(self.dir, "log.lock")  # for variants with a lock file
        # Every call replays the whole log: decoding each line once per handle keeps long
        # drains linear. The bytes are the key, so damage still decodes afresh.
        self._decoded: dict[bytes, dict | None] = {}

    def _ensure(self) -> None:
        if os.path.isdir(self.dir):
            durable_name(self.dir)  # its creator's fsync of the parent may have failed
            return
        parent = os.path.dirname(self.dir)
        os.makedirs(parent, exist_ok=True)
        aside = os.path.join(parent, unique(".init-" + os.path.basename(self.dir)))
        os.mkdir(aside)
        try:
            write_synced(os.path.join(aside, LOG), b"")
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

    # -- records ---------------------------------------------------------------------

    def _encode(self, rec: dict) -> bytes:
        body = json.dumps(rec, sort_keys=True, separators=(",", ":")).encode("ascii")
        if not self.CHECKSUM:
            return body + b"\n"
        return b"%08x %s\n" % (zlib.crc32(body), body)

    def _decode(self, line: bytes) -> dict | None:
        """A record, or None for a line that is not a whole record."""
        try:
            return self._decoded[line]
        except KeyError:
            rec = self._decoded[line] = self._parse(line)
            return rec

    def _parse(self, line: bytes) -> dict | None:
        if not self.CHECKSUM:
            return json.loads(line)
        crc, sep, body = line.partition(b" ")
        if not sep or len(crc) != 8:
            return None
        try:
            if int(crc, 16) != zlib.crc32(body):
                return None
            return json.loads(body)
        except ValueError:
            return None

    def _read_all(self) -> bytes:
        fd = os.open(self.log_path, os.O_RDONLY)  # missing: damage, the error propagates
        try:
            chunks = []
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def _replay(self) -> tuple[dict, int, int]:
        """(id -> [state, payload b64, order], valid length, file length)."""
        data = self._read_all()
        entries: dict[str, list] = {}
        pos = 0
        while pos < len(data):
            end = data.find(b"\n", pos)
            if end < 0:
                if self.CHECKSUM:
                    break  # unterminated: a torn tail
                end = len(data)
            rec = self._decode(data[pos:end])
            if rec is None:
                if not self.DAMAGE_IS_TORN and self._valid_after(data, end + 1):
                    raise OSError(errno.EBADMSG, f"damaged record at offset {pos}, valid "
                                  "records after it (run repair)", self.log_path)
                break
            self._apply(entries, rec, pos)
            pos = end + 1
        return entries, min(pos, len(data)), len(data)

    def _valid_after(self, data: bytes, pos: int) -> bool:
        """Is there a whole valid line at or after ``pos``? (Then what went before is
        damage: a crash only tears the end.)"""
        return any(self._decode(line) is not None
                   for line in data[pos:].split(b"\n")[:-1])

    @staticmethod
    def _apply(entries: dict, rec: dict, pos: int) -> None:
        op, ident = rec["op"], rec["id"]
        if op == "enq":
            entries[ident] = ["PENDING", rec["p"], pos]
        elif op == "claim" and ident in entries:
            entries[ident][0] = "PROCESSING"
        elif op == "requeue" and ident in entries:
            entries[ident][0] = "PENDING"
        elif op == "ack":
            entries.pop(ident, None)

    def _append(self, recs: list[dict], valid: int, length: int, sync: bool = True) -> None:
        fd = os.open(self.log_path, os.O_WRONLY)
        try:
            if valid < length:  # cut the torn tail first
                os.ftruncate(fd, valid)
            os.lseek(fd, 0, os.SEEK_END)
            data = memoryview(b"".join(self._encode(r) for r in recs))
            while data:
                data = data[os.write(fd, data):]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)

    # -- the contract ----------------------------------------------------------------

    def enqueue(self, payload: bytes) -> str:
        ident = uuid.uuid4().hex
        with self._lock():
            _entries, valid, length = self._replay()
            self._append([{"op": "enq", "id": ident,
                           "p": base64.b64encode(bytes(payload)).decode("ascii")}],
                         valid, length)
        return ident

    def claim(self, worker: str):
        with self._lock():
            entries, valid, length = self._replay()
            pending = [(e[2], i) for i, e in entries.items() if e[0] == "PENDING"]
            if not pending:
                return None
            _pos, ident = min(pending)
            self._append([{"op": "claim", "id": ident, "w": worker}], valid, length)
        return ident, base64.b64decode(entries[ident][1])

    def ack(self, entry_id: str) -> None:
        with self._lock():
            entries, valid, length = self._replay()
            if entry_id not in entries:
                raise KeyError(f"ack of unknown entry {entry_id!r}")
            self._append([{"op": "ack", "id": entry_id}], valid, length, sync=self.SYNC_ACK)

    def _to_requeue(self, entries: dict) -> list[str]:
        return [i for i, e in entries.items() if e[0] == "PROCESSING"]

    def recover(self) -> None:
        with self._lock():
            entries, valid, length = self._replay()
            ids = self._to_requeue(entries)
            self._append([{"op": "requeue", "id": i} for i in ids], valid, length)

    def states(self) -> dict:
        with self._lock():
            entries, _valid, _length = self._replay()
        return {i: e[0] for i, e in entries.items()}

    def close(self) -> None:
        pass


def open_queue(directory: str) -> LogQueue:
    return LogQueue(directory)


def repair(directory: str) -> str:
    """What an operator runs once the damaged records are given up: the log rebuilt from
    every valid line (the damaged one kept aside as ``queue.log.corrupt-<n>``), or an empty
    log if it is gone. The harness's drain calls it (see harness.run.targets.repair_for)."""
    q = LogQueue(directory)
    with q._lock():
        try:
            data = q._read_all()
        except FileNotFoundError:
            data = None
        lines = [] if data is None else data.split(b"\n")[:-1]
        kept = [line + b"\n" for line in lines if q._decode(line) is not None]
        tmp = os.path.join(q.dir, unique(LOG + ".tmp"))
        write_synced(tmp, b"".join(kept))
        if data is not None:
            n = 1
            while os.path.exists(f"{q.log_path}.corrupt-{n}"):
                n += 1
            os.link(q.log_path, f"{q.log_path}.corrupt-{n}")
        os.replace(tmp, q.log_path)
        fsync_dir(q.dir)
    return f"kept {len(kept)} of {len(lines)} records"
