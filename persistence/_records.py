"""The queue's byte formats: frames, journal commits, records and checkpoints.

Frame. ``header + body``; the 9-byte header is a marker byte (magic 0xB in the high
nibble, format version 2 in the low one), the body length (u32) and the CRC32 of the
body (u32), all big-endian. A reader trusts a frame only if the whole header and body
are present, the CRC matches and the body decodes.

Journal commit. ONE frame per commit, so a commit is all or nothing even when a crash
tears it: ``durable (u64) + records``, each record ``length (u32) + bytes``. ``durable``
is the journal offset up to which the writing handle has itself seen fsync(2) succeed
(0 if never; which fsyncs count is in journal.py). A frame found *after* damage whose
``durable`` is past the damage proves that the damaged bytes had been made durable, so
they are not a torn tail: that is how damage in the middle of a journal is told from a
write a crash cut short (journal.py).

Records, one per state change; each carries an outcome, never an intention, so replay
does not depend on the options of whoever replays:
``E`` enqueue (id, payload), ``C`` claim (id, worker, owner token), ``A`` ack,
``F`` fail (id, final?, reason), ``R`` requeue (its claimer died), ``Y`` retry (FAILED
back to PENDING), ``X`` purge (a FAILED entry removed), ``S`` seal (this journal is
closed; the queue continues in generation ``n``).

Checkpoint. One frame per record: ``M`` (generation), one ``N`` per live entry in queue
order, ``Z`` (entry count). Invalid as a whole unless every frame is valid and ``Z``
counts the ``N`` records; it is only ever published by rename(2) after an fsync. Only
salvage reads an invalid one, frame by frame (:func:`checkpoint_frames`).

Owns the byte formats; may import nothing of ``persistence`` (the bottom layer).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterable, Iterator

__all__ = [
    "HEADER_SIZE",
    "MARK",
    "MAX_BODY",
    "OLD_MARKS",
    "STATE_CODES",
    "checkpoint_frames",
    "commit_frame",
    "decode_checkpoint",
    "encode_checkpoint",
    "frame",
    "frames_after",
    "rec_ack",
    "rec_claim",
    "rec_enqueue",
    "rec_fail",
    "rec_id",
    "rec_seal",
    "scan_commits",
]

MARK = 0xB2  # magic 0xB, format version 2
OLD_MARKS = frozenset({0xB1})  # version 1: one frame per record, no durable mark
_HEADER = struct.Struct(">BII")
HEADER_SIZE = _HEADER.size
MAX_BODY = 1 << 30  # a longer body is refused when written and read as damage
_crc32 = zlib.crc32
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_ID = struct.Struct(">cH")
_FAIL = struct.Struct(">cBH")
_GEN = struct.Struct(">cQ")
_ENTRY = struct.Struct(">cBHHHHI")
_H = struct.Struct(">H")

STATE_CODES = {"PENDING": 0, "PROCESSING": 1, "DELIVERED": 2, "FAILED": 3}
_STATE_NAMES = {v: k for k, v in STATE_CODES.items()}


def frame(body: bytes) -> bytes:
    return _HEADER.pack(MARK, len(body), _crc32(body)) + body


def commit_frame(durable: int, records: Iterable[bytes]) -> bytes:
    """One journal commit: every record of one call, in one frame."""
    parts = [_U64.pack(durable)]
    for rec in records:
        parts.append(_U32.pack(len(rec)))
        parts.append(rec)
    return frame(b"".join(parts))


def rec_enqueue(entry_id: str, payload: bytes) -> bytes:
    idb = entry_id.encode()
    return _ID.pack(b"E", len(idb)) + idb + payload


def rec_claim(entry_id: str, worker: str, owner: str) -> bytes:
    idb, wb = entry_id.encode(), worker.encode()
    return _ID.pack(b"C", len(idb)) + idb + _H.pack(len(wb)) + wb + owner.encode()


def rec_fail(entry_id: str, final: bool, reason: str) -> bytes:
    idb = entry_id.encode()
    return _FAIL.pack(b"F", final, len(idb)) + idb + reason.encode()


def rec_id(kind: str, entry_id: str) -> bytes:
    """``A`` ack, ``R`` requeue, ``Y`` retry or ``X`` purge of one entry."""
    return kind.encode() + entry_id.encode()


def rec_ack(entry_id: str) -> bytes:
    return rec_id("A", entry_id)


def rec_seal(next_gen: int) -> bytes:
    return _GEN.pack(b"S", next_gen)


def _dec_enqueue(body: bytes) -> tuple:
    n = _H.unpack_from(body, 1)[0]
    if 3 + n > len(body):
        raise ValueError("id runs past the record")
    return ("E", body[3 : 3 + n].decode(), body[3 + n :])


def _dec_claim(body: bytes) -> tuple:
    n = _H.unpack_from(body, 1)[0]
    m = _H.unpack_from(body, 3 + n)[0]
    start = 5 + n
    if start + m > len(body):
        raise ValueError("worker runs past the record")
    worker = body[start : start + m].decode()
    return ("C", body[3 : 3 + n].decode(), worker, body[start + m :].decode())


def _dec_fail(body: bytes) -> tuple:
    _, final, n = _FAIL.unpack_from(body)
    if 4 + n > len(body) or final > 1:
        raise ValueError("malformed fail record")
    return ("F", body[4 : 4 + n].decode(), bool(final), body[4 + n :].decode())


def _dec_entry(body: bytes) -> tuple:
    _, state, attempts, nid, nown, nwork, nreason = _ENTRY.unpack_from(body)
    pos = _ENTRY.size
    fields = []
    for size in (nid, nown, nwork, nreason):
        fields.append(body[pos : pos + size].decode())
        pos += size
    if pos > len(body):
        raise ValueError("entry fields run past the record")
    entry_id, owner, worker, reason = fields
    return ("N", entry_id, _STATE_NAMES[state], attempts, owner, worker, reason, body[pos:])


def _dec_gen(kind: str) -> Callable[[bytes], tuple]:
    def decode(body: bytes) -> tuple:
        if len(body) != _GEN.size:
            raise ValueError("malformed generation record")
        return (kind, _GEN.unpack(body)[1])
    return decode


# Indexed by the kind byte: replay is the hot path of opening and catching up. An unknown
# kind raises KeyError, which the scanners take as damage.
_DECODERS: dict[int, Callable[[bytes], tuple]] = {
    ord("E"): _dec_enqueue,
    ord("C"): _dec_claim,
    ord("F"): _dec_fail,
    ord("N"): _dec_entry,
    **{ord(k): (lambda body, k=k: (k, body[1:].decode())) for k in "ARYX"},
    **{ord(k): _dec_gen(k) for k in "SMZ"},
}
_BAD = (ValueError, KeyError, IndexError, struct.error)


def _commit_records(body: bytes) -> list[tuple]:
    """The records of one commit frame's body; raises one of _BAD if it does not decode."""
    records = []
    pos, end = _U64.size, len(body)
    if end < pos:
        raise ValueError("commit shorter than its durable mark")
    decoders = _DECODERS
    while pos < end:
        n = _U32.unpack_from(body, pos)[0]
        start = pos + 4
        pos = start + n
        if n == 0 or pos > end:
            raise ValueError("record runs past the commit")
        rec = body[start:pos]
        records.append(decoders[rec[0]](rec))
    if not records:
        raise ValueError("a commit without records")
    return records


def scan_commits(data: bytes) -> tuple[list[tuple], int, int]:
    """Decode the valid prefix of journal bytes ``data``.

    Returns (records, length of the valid prefix, offset of the last commit in it: 0 if
    there is none).
    """
    records: list[tuple] = []
    extend = records.extend
    pos, end, last = 0, len(data), 0
    unpack = _HEADER.unpack_from
    while end - pos >= HEADER_SIZE:
        mark, length, crc = unpack(data, pos)
        start = pos + HEADER_SIZE
        stop = start + length
        if mark != MARK or length > MAX_BODY or stop > end:
            break
        body = data[start:stop]
        if _crc32(body) != crc:
            break
        try:
            extend(_commit_records(body))
        except _BAD:
            break
        last, pos = pos, stop
    return records, pos, last


def _frame_at(data: bytes, pos: int, decode: Callable[[bytes], object]
              ) -> tuple[int, object] | None:
    """(end, decoded body) of the valid frame at ``pos`` in ``data``, else None."""
    if len(data) - pos < HEADER_SIZE:
        return None
    mark, length, crc = _HEADER.unpack_from(data, pos)
    stop = pos + HEADER_SIZE + length
    if mark != MARK or length > MAX_BODY or stop > len(data):
        return None
    body = data[pos + HEADER_SIZE : stop]
    if _crc32(body) != crc:
        return None
    try:
        return stop, decode(body)
    except _BAD:
        return None


def _durable_and_records(body: bytes) -> tuple[int, list[tuple]]:
    return _U64.unpack_from(body)[0], _commit_records(body)


def frames_after(data: bytes, start: int) -> Iterator[tuple[int, int, int, list[tuple]]]:
    """Every valid commit frame in ``data`` at or after ``start``, found by trying each
    marker byte (a resynchronising scan, run only where damage was found):
    (offset, end, durable mark, records)."""
    pos = data.find(MARK, start)
    while pos >= 0:
        found = _frame_at(data, pos, _durable_and_records)
        if found is None:
            pos = data.find(MARK, pos + 1)
            continue
        stop, (durable, records) = found
        yield pos, stop, durable, records
        pos = data.find(MARK, stop)


def _checkpoint_record(body: bytes) -> tuple:
    return _DECODERS[body[0]](body)


def checkpoint_frames(data: bytes) -> Iterator[tuple[int, int, tuple]]:
    """Every valid frame of a damaged checkpoint: (offset, end, record), for salvage.

    Past an invalid frame whose header is sane, the next frame is looked for where that
    header says it ends (the damage lies in its body; the end of the file will do too);
    failing that, at each following marker byte. Hopping over the body keeps a payload
    that happens to hold a valid frame (a queue of queue files) from being taken for an
    entry.
    """
    pos, end = 0, len(data)
    while 0 <= pos < end:
        found = _frame_at(data, pos, _checkpoint_record)
        if found is not None:
            yield pos, found[0], found[1]
            pos = found[0]
            continue
        if end - pos >= HEADER_SIZE:
            mark, length, _ = _HEADER.unpack_from(data, pos)
            hop = pos + HEADER_SIZE + length
            if mark == MARK and hop <= end and (
                    hop == end or _frame_at(data, hop, _checkpoint_record)):
                pos = hop
                continue
        pos = data.find(MARK, pos + 1)


def _scan_frames(data: bytes) -> tuple[list[tuple], int]:
    records: list[tuple] = []
    pos, end = 0, len(data)
    while end - pos >= HEADER_SIZE:
        mark, length, crc = _HEADER.unpack_from(data, pos)
        stop = pos + HEADER_SIZE + length
        if mark != MARK or length > MAX_BODY or stop > end or length == 0:
            break
        body = data[pos + HEADER_SIZE : stop]
        if _crc32(body) != crc:
            break
        try:
            records.append(_DECODERS[body[0]](body))
        except _BAD:
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
    records, valid = _scan_frames(data)
    if valid != len(data) or len(records) < 2:
        return None
    first, last, body = records[0], records[-1], records[1:-1]
    if first[0] != "M" or last[0] != "Z" or last[1] != len(body):
        return None
    if any(rec[0] != "N" for rec in body):
        return None
    return first[1], body
