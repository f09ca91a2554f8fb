"""The journal file: append with rollback, read with repair of a torn tail only.

A journal (``journal.<gen>``) is a sequence of commit frames (``_records.py``), appended
by whichever handle holds the queue's commit lock. Reading it to the end under that lock
is how a handle learns what every other process did.

What a crash can leave, and what is done with it. A commit is one write(2) and, unless
it is a claim, one fsync(2) before the lock is let go. So a power loss or a SIGKILL can
only damage bytes written after the last fsync that completed: a frame cut short, or,
on file systems that extend a file before its data lands (XFS, ext4 data=writeback),
zeros where sectors never made it, possibly followed by later, intact, unsynced frames.
That, and only that, is a *torn tail*: it is cut (ftruncate + fsync, so it cannot come
back) and counted in the recovery report. Anything else is *damage*, and the journal is
left exactly as it is: the read raises :class:`CorruptionError` naming the file and the
offset, after a copy of the file is kept aside as ``journal.<gen>.corrupt-<n>``.

Bytes after the end of the valid prefix at offset P are damage, not a torn tail, when
(1) a valid commit frame follows whose durable mark is past P (its writer had seen an
fsync cover P, so P held acknowledged data), or (2) the bytes at P begin with neither
a frame header, nor zeros, nor fewer than 9 bytes: no crash of our writer leaves that.
A flipped bit in the last commit is not distinguishable from a torn write: it is cut,
and reported, as a torn tail.

What a mark proves. A frame's mark is an offset that its writer saw a successful
fsync(2) of this file cover, after it had read or written everything before that
offset: the end of its own last fsynced commit, the point where it cut a torn tail
(the cut is fsynced), or the end of what it had read when it fsynced before appending.
An fsync flushes every byte of the file, whoever wrote it, so the bytes before the
mark were on stable storage before the frame holding the mark was even written: a
crash cannot lose them, and damage there is damage at rest. A mark never relies on
another handle's fsync: a commit that is not a claim is fsynced by its writer before
the lock is let go, but a writer killed between its write and its fsync leaves a
complete, unsynced frame that a power loss may still take, and a reader cannot tell
that frame from a synced one (nor, after a kernel crash, one read at open from one
still in a volatile disk cache). So a handle that read, since its last fsync, a commit
other than a claim fsyncs once before its next fsynced append, and that append's mark
covers all it read. Without it, a commit that another handle made durable, followed
only by commits whose writers' own last fsync came before it, could not be told from a
torn tail, and the commits after it, acknowledged ones too, were cut with it. The price
is paid where handles take turns: one more fsync per commit that follows another
handle's commit (the pages are clean, but the file system still flushes the disk
cache); a handle alone pays it once after it opens, when what it read holds a commit.
Claims are never fsynced, so they carry their writer's last mark and add no fsync.

A journal rewritten beneath a handle. Damage at rest can cut a journal short while a
handle that has applied more of it idles. The next handle to read it cannot tell that
from a torn tail: it cuts the partial commit and appends its own, acknowledged, commits,
which may grow the file past the idle handle's ``end`` again. Reading on from ``end``
would then start in the middle of those commits, and could cut them as a torn tail. So
each handle keeps the header of the last commit it applied (it holds the body's CRC) and
its offset, and reads it back under the lock before reading on: different bytes there,
or a file too short to hold them, is damage. Nothing of ours changes bytes a handle
applied: a cut or a rollback only removes bytes past every handle's ``end``, and a new
generation is a new file. Once damage is found, the journal keeps raising it, without
another copy.

fsync failure (fsyncgate). After fsync(2) fails, the kernel may have dropped the dirty
pages and will report success next time: the file can no longer be trusted. The
journal is marked ``poisoned``, the failed commit is rolled back as far as possible
and the store moves the queue to a fresh generation written from memory (``_store``).

Owns the journal and checkpoint files and generation names; may import only _os,
_records, errors.
"""

from __future__ import annotations

import errno
import logging
import os.path
import secrets

from . import _os
from . import _records as _r
from .errors import CorruptionError, PayloadTooLargeError, PersistenceError

__all__ = [
    "TEMP_PREFIX",
    "Journal",
    "discard_temp",
    "generations",
    "keep_copy",
    "read_checkpoint",
    "temp_name",
    "write_file_atomically",
    "write_temp",
]

_log = logging.getLogger("persistence")
TEMP_PREFIX = ".tmp-"


class Journal:
    """One open ``journal.<gen>``: what was read of it, appends with rollback.

    Only ever used under the queue's commit lock, which is what makes "read to the end,
    then append" safe against other processes.
    """

    def __init__(self, path: str, gen: int, fd: int) -> None:
        self.path, self.gen, self.fd = path, gen, fd
        self.end = 0  # bytes applied; also where the next append must start
        # The descriptor's offset when known, else None: reading to EOF and appending
        # with O_APPEND both leave it at EOF, so looking for other processes' commits is
        # one read(2) with no lseek as long as nothing else moved it.
        self._pos: int | None = 0
        self.synced_to = 0  # where our own last successful fsync of this file ended
        # Did we read a commit that was fsynced (not a claim) past ``synced_to``? Then
        # the next append fsyncs first, to carry its end in the mark (see the module doc).
        self._read_unsynced = False
        self.fsyncs = self.bytes_written = 0
        self.sealed_to: int | None = None
        self.poisoned: str | None = None  # why this file is no longer trusted
        # (offset, header) of the last commit applied: read back to see the file
        # unchanged up to ``end`` (see the module doc)
        self._last: tuple[int, bytes] | None = None
        self._damage: tuple[int, str, str | None] | None = None  # (offset, why, kept)
        st = _os.fstat(fd, path)
        self.identity = (st.st_dev, st.st_ino)

    @classmethod
    def open(cls, path: str, gen: int, create: bool = False) -> Journal:
        """Open the journal; ``create`` makes a new, empty one (O_EXCL: never reuses)."""
        flags = _os.O_RDWR | _os.O_APPEND | (_os.O_CREAT | _os.O_EXCL if create else 0)
        return cls(path, gen, _os.open_file(path, flags))

    def linked(self) -> bool:
        """Does our descriptor's file still have a name? (It has none once superseded
        and removed, or removed by someone else.)"""
        st = _os.fstat(self.fd, self.path)
        self._check_size(st.st_size)
        return st.st_nlink > 0

    def _check_size(self, size: int) -> None:
        # Nothing of ours ever shortens a journal below what was applied (a torn tail lies
        # past it): someone truncated committed records away.
        if size < self.end:
            self._damaged(size, f"the file shrank to {size} bytes below the {self.end} "
                          "bytes already committed")

    def read_tail(self) -> tuple[list[tuple], int]:
        """Records committed since our last read, and the torn bytes cut (0 if none)."""
        if self._damage is not None:
            self._damaged(*self._damage[:2])
        last = self._last
        if last is not None and _os.pread(self.fd, _r.HEADER_SIZE, last[0],
                                          self.path) != last[1]:
            self._rewritten(last[0])
        pos, self._pos = self._pos, None  # a failed lseek or read leaves it unknown
        if pos != self.end:
            _os.lseek(self.fd, self.end, self.path)
        data = _os.read_rest(self.fd, self.path)
        self._pos = self.end + len(data)
        if not data:
            return [], 0
        records, valid, last = _r.scan_commits(data)
        cut = len(data) - valid
        if cut:
            self._check_torn(data, valid)
            self._cut(self.end + valid, cut)
        if valid:
            self._last = (self.end + last, data[last : last + _r.HEADER_SIZE])
            if not self._read_unsynced:
                self._read_unsynced = any(rec[0] != "C" for rec in records)
        self.end += valid
        for rec in records:
            if rec[0] == "S":
                self.sealed_to = rec[1]
        return records, cut

    def _rewritten(self, at: int) -> None:
        """The last commit we applied, at ``at``, is no longer there: say why."""
        self._check_size(_os.fstat(self.fd, self.path).st_size)
        self._damaged(at, f"the commit at offset {at}, the last of the {self.end} bytes "
                      "already applied, was replaced: the journal was cut short and "
                      "written again since this handle read it")

    def _check_torn(self, data: bytes, p: int) -> None:
        """Raise CorruptionError unless ``data[p:]`` is a tail a crash could have torn."""
        at = self.end + p
        for _, stop, durable, _ in _r.frames_after(data, p + 1):
            if durable > at:
                self._damaged(at, f"a commit ending at offset {self.end + stop} follows, "
                              f"written after fsync had made offset {durable} durable")
        head = data[p : p + _r.HEADER_SIZE]
        if len(head) < _r.HEADER_SIZE or head[0] == 0:
            return  # a header cut short, or a hole of zeros the data never reached
        length = int.from_bytes(head[1:5], "big")
        if head[0] == _r.MARK and length <= _r.MAX_BODY:
            return  # a frame the crash cut short or left with holes
        if head[0] in _r.OLD_MARKS and at == 0:
            self._damaged(at, "written in format version 1, which this version does not "
                          "read")
        self._damaged(at, f"byte 0x{head[0]:02x} where a commit frame must start")

    def _damaged(self, offset: int, why: str) -> None:
        if self._damage is None:
            self._damage = (offset, why, keep_copy(self.path))
        offset, why, kept = self._damage
        raise CorruptionError(
            errno.EBADMSG, "damaged journal", self.path,
            f"read journal failed: path={self.path!r} offset={offset} errno=EBADMSG "
            f"({why}); kept={kept!r}; {CorruptionError.hint}", offset=offset, kept=kept)

    def _cut(self, at: int, nbytes: int) -> None:
        # ftruncate leaves the offset past the new EOF: the next read must lseek.
        self._pos = None
        _os.truncate(self.fd, at, self.path)
        self.fsyncs += 1
        _os.fsync(self.fd, self.path)  # the cut must survive, else the garbage returns
        self.synced_to, self._read_unsynced = at, False  # that fsync covered all before
        _log.warning("torn journal tail cut: path=%r offset=%d bytes=%d", self.path, at, nbytes)

    def append(self, records: list[bytes], sync: bool) -> None:
        """Append one commit holding ``records``; on any error leave the file as it was.

        Step 1 write(2) the frame in one call (O_APPEND puts it at EOF, which is
        ``self.end`` because we read to EOF under the lock). Step 2 fsync(2): the commit
        is durable only now. A failed write is rolled back (ftruncate + fsync to the
        previous end); if even that fails, the partial frame past ``self.end`` is cut as a
        torn tail by the next :meth:`read_tail`. A failed fsync poisons the file.
        """
        if self.poisoned:
            raise CorruptionError(
                errno.EIO, "journal not trusted", self.path,
                f"append failed: path={self.path!r} errno=EIO (not trusted since "
                f"{self.poisoned}); {CorruptionError.hint}")
        if sync and self._read_unsynced:
            self._sync_read()
        data = _r.commit_frame(self.synced_to, records)
        if len(data) - _r.HEADER_SIZE > _r.MAX_BODY:
            raise PayloadTooLargeError(
                None, None, self.path, f"commit size={len(data)} bytes exceeds the "
                f"{_r.MAX_BODY}-byte frame limit; {PayloadTooLargeError.hint}")
        start = self.end
        self._pos = None  # unknown until the whole frame is written
        try:
            _os.write_all(self.fd, data, self.path)
        except PersistenceError:
            self._rollback(start)
            raise
        # O_APPEND left the offset at the new EOF, start + len(data), since we had read
        # to EOF under the lock.
        self._pos = start + len(data)
        if sync:
            self.fsyncs += 1
            try:
                _os.fsync(self.fd, self.path)
            except PersistenceError as exc:
                self.poisoned = f"fsync at offset {start} failed ({exc.strerror})"
                self._rollback(start)
                raise
            self.synced_to, self._read_unsynced = start + len(data), False
        self.end = start + len(data)
        self._last = (start, data[: _r.HEADER_SIZE])
        self.bytes_written += len(data)

    def _sync_read(self) -> None:
        """fsync what we read before our mark claims it (see the module doc). Cheap:
        its writers fsynced those pages already, unless one died before its fsync."""
        self.fsyncs += 1
        try:
            _os.fsync(self.fd, self.path)
        except PersistenceError as exc:
            self.poisoned = f"fsync at offset {self.end} failed ({exc.strerror})"
            raise
        self.synced_to, self._read_unsynced = self.end, False

    def _rollback(self, start: int) -> None:
        self._pos = None
        try:
            _os.truncate(self.fd, start, self.path)
            self.fsyncs += 1
            _os.fsync(self.fd, self.path)
        except PersistenceError as exc:
            # The original error is the one to report. A partial frame left past
            # self.end is cut by the next read_tail; a complete one (its fsync failed)
            # is what poisoning the file, and a new generation, take care of.
            _log.warning("journal rollback failed: %s", exc)

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            _os.close(fd, self.path)


# -- files of a queue directory -------------------------------------------------------


def generations(names: list[str], kind: str) -> list[int]:
    """Generations of ``<kind>.<int>`` names, newest first."""
    found = []
    for name in names:
        stem, dot, gen = name.partition(".")
        if stem == kind and dot and gen.isdigit() and gen.isascii():
            found.append(int(gen))
    return sorted(found, reverse=True)


def temp_name(directory: str) -> str:
    """A temp path no other process or save can share (the incident used one fixed name)."""
    return os.path.join(directory, f"{TEMP_PREFIX}{_os.getpid()}-{secrets.token_hex(8)}")


def write_temp(directory: str, data: bytes) -> str:
    """Steps 1 and 2 of the atomic recipe: write a unique temp file in the same directory
    (rename is only atomic within one file system) and fsync it (rename(2) may reach the
    disk before the data, and a crash then shows a complete name over empty content).
    Returns its path; on failure it is removed and the error raised."""
    tmp = temp_name(directory)
    fd = _os.open_file(tmp, _os.O_WRONLY | _os.O_CREAT | _os.O_EXCL)
    try:
        _os.write_all(fd, data, tmp)
        _os.fsync(fd, tmp)
    except PersistenceError:
        try:
            _os.close(fd, tmp)
        except PersistenceError as exc:
            _log.warning("close of %r failed: %s", tmp, exc)
        discard_temp(tmp)
        raise
    _os.close(fd, tmp)
    return tmp


def discard_temp(path: str) -> None:
    try:
        _os.unlink(path)
    except PersistenceError as exc:
        # The write error is the one to report; recovery removes debris left here.
        _log.warning("cleanup of %r failed: %s", path, exc)


def write_file_atomically(directory: str, name: str, data: bytes) -> None:
    """The whole recipe: temp file, fsync, rename(2) over ``name`` (readers see the old
    file or the new one, never neither), fsync of the directory that holds the name."""
    tmp = write_temp(directory, data)
    try:
        _os.replace(tmp, os.path.join(directory, name))
    except PersistenceError:
        discard_temp(tmp)
        raise
    _os.fsync_dir(directory)


def read_checkpoint(path: str) -> tuple[int, list[tuple], int] | None:
    """(generation, entries, size); None if missing; CorruptionError if unreadable (a
    copy is kept aside first: a checkpoint is fsynced before it is published, so a bad
    one is damage, never a crash's leftover)."""
    try:
        data = _os.read_all(path)
    except PersistenceError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise
    decoded = _r.decode_checkpoint(data)
    if decoded is None:
        kept = keep_copy(path, data)
        raise CorruptionError(
            errno.EBADMSG, "bad checkpoint", path,
            f"read checkpoint failed: path={path!r} errno=EBADMSG (not a complete, valid "
            f"checkpoint); kept={kept!r}; {CorruptionError.hint}", kept=kept)
    return decoded[0], decoded[1], len(data)


def keep_copy(path: str, data: bytes | None = None) -> str | None:
    """Keep a copy of a damaged file as ``<name>.corrupt-<n>`` (one per distinct content)
    and return its name; the file itself is left untouched. None if the copy could not be
    written (the error is logged: the damage is what the caller reports)."""
    directory, base = os.path.split(path)
    try:
        if data is None:
            data = _os.read_all(path)
        names = set(_os.listdir(directory))
        n = 1
        while f"{base}.corrupt-{n}" in names:
            copy = os.path.join(directory, f"{base}.corrupt-{n}")
            st = _os.lstat_or_none(copy)
            if st is not None and st.st_size == len(data) and _os.read_all(copy) == data:
                return os.path.basename(copy)  # this damage is already kept
            n += 1
        write_file_atomically(directory, f"{base}.corrupt-{n}", data)
    except PersistenceError as exc:
        _log.warning("could not keep a copy of damaged %r: %s", path, exc)
        return None
    _log.warning("damaged file kept aside: path=%r copy=%r", path, f"{base}.corrupt-{n}")
    return f"{base}.corrupt-{n}"
