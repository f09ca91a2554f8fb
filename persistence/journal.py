"""On-disk formats of the queue: framed records, the journal file, and checkpoints.

Framing. Every record is ``header + body`` where the 9-byte header is a marker byte
(magic in the high nibble, format version in the low one), the body length (u32) and
the CRC32 of the body (u32), all big-endian. A reader trusts a record only if the
whole header and body are present and the CRC matches; the first record that fails
ends the valid prefix. Whatever follows is a torn tail: a write cut by a crash or a
full disk. It is cut (ftruncate + fsync) and reported, never silently kept or
silently dropped, so no later append ever lands behind garbage.

Journal records, one per state change: ``E`` enqueue (id, payload bytes, opaque),
``C`` claim (id, worker, owner token), ``A`` ack, ``F`` fail (id, final flag, reason),
``R`` requeue (owner died), ``S`` seal (the journal is closed; the state continues
in generation ``n``). Records carry outcomes, not intentions (``F`` says whether the
entry became FAILED), so replay never depends on the options of whoever replays.

A batch is several records joined into ONE write(2) followed by ONE fsync(2): a crash
leaves a valid prefix of the batch, and the torn remainder is cut at the next scan.

Checkpoints reuse the framing: ``M`` (generation), one ``N`` record per live entry in
queue order, then ``Z`` (entry count). A checkpoint missing its ``Z`` record, or with
any bad record, is invalid as a whole; it is only ever published by ``rename(2)`` after
an fsync, so a valid-looking half checkpoint cannot exist unless the device lies.
"""

from __future__ import annotations

import errno
import logging
import os.path
import secrets
import struct
import zlib
from collections.abc import Callable, Iterable

from . import _os
from .errors import CorruptionError, PersistenceError

__all__ = [
    "Journal",
    "decode_checkpoint",
    "encode_checkpoint",
    "frame",
    "generations",
    "quarantine",
    "read_checkpoint",
    "rec_ack",
    "rec_claim",
    "rec_enqueue",
    "rec_fail",
    "rec_requeue",
    "rec_seal",
    "scan",
    "temp_name",
    "write_file_atomically",
]

_log = logging.getLogger("persistence")

_MARK = 0xB1  # magic 0xB, format version 1
_HEADER = struct.Struct(">BII")
_HLEN = _HEADER.size
_MAX_BODY = 1 << 30  # a length beyond this is a torn header, not a record
_crc32 = zlib.crc32

_ID = struct.Struct(">cH")
_FAIL = struct.Struct(">cBH")
_GEN = struct.Struct(">cQ")
_ENTRY = struct.Struct(">cBHHHHI")
_H = struct.Struct(">H")

STATE_CODES = {"PENDING": 0, "PROCESSING": 1, "DELIVERED": 2, "FAILED": 3}
_STATE_NAMES = {v: k for k, v in STATE_CODES.items()}


def frame(body: bytes) -> bytes:
    return _HEADER.pack(_MARK, len(body), _crc32(body)) + body


def rec_enqueue(entry_id: str, payload: bytes) -> bytes:
    idb = entry_id.encode()
    return frame(_ID.pack(b"E", len(idb)) + idb + payload)


def rec_claim(entry_id: str, worker: str, owner: str) -> bytes:
    idb, wb = entry_id.encode(), worker.encode()
    return frame(_ID.pack(b"C", len(idb)) + idb + _H.pack(len(wb)) + wb + owner.encode())


def rec_ack(entry_id: str) -> bytes:
    return frame(b"A" + entry_id.encode())


def rec_fail(entry_id: str, final: bool, reason: str) -> bytes:
    idb = entry_id.encode()
    return frame(_FAIL.pack(b"F", final, len(idb)) + idb + reason.encode())


def rec_requeue(entry_id: str) -> bytes:
    return frame(b"R" + entry_id.encode())


def rec_seal(next_gen: int) -> bytes:
    return frame(_GEN.pack(b"S", next_gen))


def _dec_enqueue(body: bytes) -> tuple:
    n = _H.unpack_from(body, 1)[0]
    return ("E", body[3 : 3 + n].decode(), body[3 + n :])


def _dec_claim(body: bytes) -> tuple:
    n = _H.unpack_from(body, 1)[0]
    m = _H.unpack_from(body, 3 + n)[0]
    start = 5 + n
    worker = body[start : start + m].decode()
    return ("C", body[3 : 3 + n].decode(), worker, body[start + m :].decode())


def _dec_fail(body: bytes) -> tuple:
    _, final, n = _FAIL.unpack_from(body)
    return ("F", body[4 : 4 + n].decode(), bool(final), body[4 + n :].decode())


def _dec_entry(body: bytes) -> tuple:
    _, state, attempts, nid, nown, nwork, nreason = _ENTRY.unpack_from(body)
    pos = _ENTRY.size
    fields = []
    for size in (nid, nown, nwork, nreason):
        fields.append(body[pos : pos + size].decode())
        pos += size
    entry_id, owner, worker, reason = fields
    return ("N", entry_id, _STATE_NAMES[state], attempts, owner, worker, reason, body[pos:])


# Indexed by the kind byte: recovery replays every record since the last checkpoint, and
# one lookup is cheaper than a chain of comparisons. An unknown kind raises KeyError.
_DECODERS: dict[int, Callable[[bytes], tuple]] = {
    ord("E"): _dec_enqueue,
    ord("C"): _dec_claim,
    ord("A"): lambda body: ("A", body[1:].decode()),
    ord("R"): lambda body: ("R", body[1:].decode()),
    ord("F"): _dec_fail,
    ord("N"): _dec_entry,
    **{ord(k): (lambda body, k=k: (k, _GEN.unpack(body)[1])) for k in "SMZ"},
}


def scan(data: bytes | memoryview) -> tuple[list[tuple], int]:
    """Decode the valid prefix of ``data``: (records, length of that prefix)."""
    records: list[tuple] = []
    append = records.append
    data = bytes(data)  # slices of bytes are cheaper than memoryview slices copied out
    pos = 0
    end = len(data)
    unpack = _HEADER.unpack_from
    decoders = _DECODERS
    while end - pos >= _HLEN:
        mark, length, crc = unpack(data, pos)
        start = pos + _HLEN
        stop = start + length
        if mark != _MARK or length > _MAX_BODY or stop > end:
            break
        body = data[start:stop]
        if _crc32(body) != crc:
            break
        try:
            append(decoders[body[0]](body))
        except (ValueError, KeyError, IndexError, struct.error):
            # A CRC-valid body we cannot decode is damage (or a newer format): treat it
            # as the end of what we can trust rather than guess.
            break
        pos = stop
    return records, pos


def encode_checkpoint(gen: int, entries: Iterable[tuple]) -> bytes:
    """``entries``: (id, state, attempts, owner, worker, reason, payload) in queue order."""
    parts = [frame(_GEN.pack(b"M", gen))]
    count = 0
    for entry_id, state, attempts, owner, worker, reason, payload in entries:
        idb, ob, wb, rb = (entry_id.encode(), owner.encode(), worker.encode(), reason.encode())
        head = _ENTRY.pack(
            b"N", STATE_CODES[state], min(attempts, 0xFFFF), len(idb), len(ob), len(wb), len(rb)
        )
        parts.append(frame(b"".join((head, idb, ob, wb, rb, payload))))
        count += 1
    parts.append(frame(_GEN.pack(b"Z", count)))
    return b"".join(parts)


def decode_checkpoint(data: bytes) -> tuple[int, list[tuple]] | None:
    """(generation, entry records) or None when the checkpoint is not entirely valid."""
    records, valid = scan(data)
    if valid != len(data) or len(records) < 2:
        return None
    first, last, body = records[0], records[-1], records[1:-1]
    if first[0] != "M" or last[0] != "Z" or last[1] != len(body):
        return None
    if any(rec[0] != "N" for rec in body):
        return None
    return first[1], body


class Journal:
    """One open ``journal.<gen>`` file: the offset read so far, append with rollback.

    Only ever used while the caller holds the queue's commit lock, which is what makes
    "read to EOF, then append" safe against other processes.
    """

    def __init__(self, path: str, gen: int, fd: int) -> None:
        self.path = path
        self.gen = gen
        self.fd = fd
        self.end = 0  # bytes applied; also where the next append must start
        # The fd's file offset when known, else None. Reading to EOF and appending with
        # O_APPEND both leave it at EOF, so the per-commit look for other processes'
        # records is one read(2) with no lseek, as long as nothing else moved it.
        self._pos: int | None = 0
        self.fsyncs = 0
        self.bytes_written = 0
        self.sealed_to: int | None = None

    @classmethod
    def open(cls, path: str, gen: int) -> tuple[Journal, bool]:
        """Open or create the journal; True when created (the caller fsyncs the dir)."""
        created = False
        try:
            fd = _os.open_file(path, _os.O_RDWR | _os.O_APPEND)
        except PersistenceError as exc:
            if exc.errno != errno.ENOENT:  # a checkpoint's missing journal means empty
                raise
            fd = _os.open_file(path, _os.O_RDWR | _os.O_APPEND | _os.O_CREAT)
            created = True
        return cls(path, gen, fd), created

    def read_tail(self) -> tuple[list[tuple], int]:
        """Records appended since our last read, and the torn bytes cut (0 if none).

        Called under the lock, so a torn record at EOF belongs to a writer that died
        or failed (it could not hold the lock otherwise): cutting it is safe.
        """
        pos, self._pos = self._pos, None  # a failed lseek or read leaves it unknown
        if pos != self.end:
            _os.lseek(self.fd, self.end, self.path)
        data = _os.read_rest(self.fd, self.path)
        self._pos = self.end + len(data)
        if not data:
            return [], 0
        records, valid = scan(data)
        cut = len(data) - valid
        if cut:
            new_end = self.end + valid
            # ftruncate leaves the offset past the new EOF: the next read must lseek.
            self._pos = None
            _os.truncate(self.fd, new_end, self.path)
            _os.fsync(self.fd, self.path)  # the cut must survive: else garbage returns
            self.fsyncs += 1
            _log.warning(
                "torn journal tail cut: path=%r offset=%d bytes=%d", self.path, new_end, cut
            )
        self.end += valid
        for rec in records:
            if rec[0] == "S":
                self.sealed_to = rec[1]
        return records, cut

    def append(self, data: bytes, sync: bool) -> None:
        """Append ``data`` (whole records); on any error leave the file as it was.

        Step 1 write(2) the batch in one call (O_APPEND puts it at EOF, which is
        ``self.end`` because we read to EOF under the lock). Step 2 fsync(2): the
        records are durable only now. On failure, ftruncate back to the previous end
        and fsync that, so the durable journal is unchanged. If even that fails, the
        garbage stays past ``self.end`` and the next :meth:`read_tail` (which always
        precedes an append) cuts it, so nothing is ever appended after garbage.
        """
        start = self.end
        self._pos = None  # unknown until the whole batch is written
        try:
            _os.write_all(self.fd, data, self.path)
            # O_APPEND left the offset at the new EOF, which is start + len(data)
            # because we had read to EOF under the lock.
            self._pos = start + len(data)
            if sync:
                self.fsyncs += 1
                _os.fsync(self.fd, self.path)
        except PersistenceError:
            self._rollback(start)
            raise
        self.end = start + len(data)
        self.bytes_written += len(data)

    def _rollback(self, start: int) -> None:
        try:
            _os.truncate(self.fd, start, self.path)
            self.fsyncs += 1
            _os.fsync(self.fd, self.path)
        except PersistenceError as exc:
            # The original error is the one to report; the tail scan repairs this later.
            _log.warning("journal rollback failed, repair deferred: %s", exc)

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            _os.close(fd, self.path)


# -- files of a queue directory -------------------------------------------------------

TEMP_PREFIX = ".tmp-"


def generations(names: Iterable[str], kind: str) -> list[int]:
    """Generations of ``<kind>.<int>`` names, newest first."""
    found = []
    for name in names:
        stem, dot, gen = name.partition(".")
        if stem == kind and dot and gen.isdigit():
            found.append(int(gen))
    return sorted(found, reverse=True)


def temp_name(directory: str) -> str:
    """A temp path no other process or save can share (the incident used one fixed name)."""
    return os.path.join(directory, f"{TEMP_PREFIX}{_os.getpid()}-{secrets.token_hex(8)}")


def write_file_atomically(
    directory: str, name: str, data: bytes, before_replace: Callable[[], None] | None = None
) -> int:
    """The atomic recipe; returns how many fsyncs it made.

    Step 1 write to a unique temp file in the same directory (rename is only atomic
    within one file system). Step 2 fsync the temp file: rename(2) may reach the disk
    before the data, and a crash then shows a complete name over empty content.
    Step 3 rename over the target: readers see the old or the new file, never neither.
    Step 4 fsync the directory, which holds the new name. ``before_replace`` runs
    between steps 2 and 3 (the queue seals its journal there); if it raises, the temp
    file is removed and nothing was published.
    """
    tmp = temp_name(directory)
    fd = _os.open_file(tmp, _os.O_WRONLY | _os.O_CREAT | _os.O_EXCL)
    try:
        _os.write_all(fd, data, tmp)
        _os.fsync(fd, tmp)
    except PersistenceError:
        _close_and_unlink(fd, tmp)
        raise
    _os.close(fd, tmp)
    if before_replace is not None:
        try:
            before_replace()
        except PersistenceError:
            _unlink_quietly(tmp)
            raise
    _os.replace(tmp, os.path.join(directory, name))
    _os.fsync_dir(directory)
    return 2


def _close_and_unlink(fd: int, path: str) -> None:
    try:
        _os.close(fd, path)
    except PersistenceError as exc:
        _log.warning("close of %r failed: %s", path, exc)
    _unlink_quietly(path)


def _unlink_quietly(path: str) -> None:
    try:
        _os.unlink(path)
    except PersistenceError as exc:
        # The write error is the one to report; recovery removes debris left here.
        _log.warning("cleanup of %r failed: %s", path, exc)


def read_checkpoint(path: str) -> tuple[int, list[tuple], int] | None:
    """(generation, entries, size); None if missing; CorruptionError if unreadable."""
    try:
        data = _os.read_all(path)
    except PersistenceError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise
    decoded = decode_checkpoint(data)
    if decoded is None:
        raise CorruptionError(
            errno.EBADMSG, "bad checkpoint", path,
            f"decode checkpoint failed: path={path!r} errno=EBADMSG (invalid record)",
        )
    return decoded[0], decoded[1], len(data)


def quarantine(path: str) -> str:
    """Move an unreadable file aside as ``<name>.corrupt-<n>``: evidence is never deleted."""
    directory = os.path.dirname(path)
    existing = set(_os.listdir(directory))
    n = 1
    while f"{os.path.basename(path)}.corrupt-{n}" in existing:
        n += 1
    target = f"{path}.corrupt-{n}"
    _os.replace(path, target)
    _os.fsync_dir(directory)
    _log.warning("unreadable file moved aside: path=%r to=%r", path, target)
    return target
