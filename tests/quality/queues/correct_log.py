"""CORRECT: an append-only log of checksummed text lines, written with raw os calls.

Each record is one line ``<crc32 hex 8> <json>\\n``; the json is {"op": "enq"|"claim"|
"ack"|"requeue", "id": ..., "p": base64 payload (enq only)}. Every append is fsynced
before the call returns; the log file is created once and the directory fsynced (by
every process before it relies on the name: a failed directory fsync is retried). On
read, the first line that is unterminated or fails its checksum ends the valid log (a
torn tail from a crash: nothing after it was ever acknowledged), and it is cut off
before the next append so new records never glue onto garbage. All of it under an
flock on q/log.lock.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
import zlib

from tests.quality.queues._util import durable_name, ensure_dir, flocked


class LogQueue:
    SYNC_ACK = True
    CHECKSUM = True

    def __init__(self, directory: str) -> None:
        self.dir = os.path.abspath(directory)
        self.log_path = os.path.join(self.dir, "queue.log")
        self.lock_path = os.path.join(self.dir, "log.lock")

    def _ensure(self) -> None:
        ensure_dir(self.dir)

    def _lock(self):
        return flocked(self.lock_path, ensure=self._ensure)

    # -- records ---------------------------------------------------------------------

    def _encode(self, rec: dict) -> bytes:
        body = json.dumps(rec, sort_keys=True, separators=(",", ":")).encode("ascii")
        if not self.CHECKSUM:
            return body + b"\n"
        return b"%08x %s\n" % (zlib.crc32(body), body)

    def _decode(self, line: bytes) -> dict | None:
        """A record, or None for a line that is not a whole record."""
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
        try:
            fd = os.open(self.log_path, os.O_RDONLY)
        except FileNotFoundError:
            self._create_log()
            return b""
        try:
            durable_name(self.log_path)  # its creator's directory fsync may have failed
            chunks = []
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def _create_log(self) -> None:
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        durable_name(self.log_path, created=True)

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
                break
            self._apply(entries, rec, pos)
            pos = end + 1
        return entries, min(pos, len(data)), len(data)

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
