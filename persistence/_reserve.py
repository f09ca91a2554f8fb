"""Space set aside so that a queue that filled its own disk can still be drained.

Draining an entry costs journal bytes (a claim record, then an ack or fail record),
so a queue whose enqueues filled the disk used to be stuck: almost every ack raised
``DiskFullError``. The fix is the filesystem analogue of a database's reserved pages:
the file ``reserve`` in the queue directory holds allocated blocks (fallocate) sized to
what draining every live entry will write, grown *before* an enqueue is accepted. So:

- an enqueue that cannot grow the reserve fails with ``DiskFullError`` and writes
  nothing (the reserve is put back to its old size);
- a claim, ack, fail, requeue, retry, purge or seal that meets ENOSPC gives back part
  of the reserve (ftruncate frees its blocks at once) and tries again;
- an automatic checkpoint needs room for a copy of the live state and may fail on a
  full disk; that is harmless (the journal stays valid) and it is retried later.

The reserve is shared by every handle and only changed under the commit lock. It holds
no data; losing it (a power loss, someone deleting it) only means it is grown again.

Owns the ``reserve`` file; may import only _directory, _os, errors.
"""

from __future__ import annotations

import errno
import logging
import os.path

from . import _directory, _os
from .errors import DiskFullError, PersistenceError

__all__ = ["PER_ENTRY", "Reserve"]

_log = logging.getLogger("persistence")
# A claim plus an ack or fail of one entry, with frame and length overheads, is about
# 120 bytes for ids and worker names of usual length; 192 leaves room for longer ones.
PER_ENTRY = 192
_BASE = 4096  # a seal, a few requeues, and the filesystem's block rounding
_BLOCK = 4096


def _round_up(n: int) -> int:
    return -(-n // _BLOCK) * _BLOCK


class Reserve:
    """The ``reserve`` file of one handle (opened lazily, re-opened if removed)."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, "reserve")
        self.fd = -1
        self.released = 0  # bytes given back to let a drain proceed (for stats)

    def _size(self) -> int:
        if self.fd >= 0:
            st = _os.fstat(self.fd, self.path)
            if st.st_nlink:
                return st.st_size
            self.close()  # removed by someone: make a new one
        self.fd = _os.open_file(self.path, _os.O_RDWR | _os.O_CREAT)
        try:
            _directory.check_file(self.fd, self.path)
        except PersistenceError:
            self.close()
            raise
        return _os.fstat(self.fd, self.path).st_size

    @staticmethod
    def target(live: int) -> int:
        return _BASE + PER_ENTRY * live

    def ensure(self, live: int) -> None:
        """Hold enough to drain ``live`` entries; DiskFullError (nothing changed) if the
        disk cannot give it. Grows by a quarter more than needed, so that most enqueues
        cost one fstat(2) here."""
        size = self._size()
        need = self.target(live)
        if size >= need:
            return
        want = _round_up(need + need // 4)
        try:
            _os.fallocate(self.fd, want, self.path)
        except PersistenceError as exc:
            try:
                _os.truncate(self.fd, size, self.path)
            except PersistenceError as undo:
                _log.warning("could not shrink the reserve back: %s", undo)
            if exc.errno in (errno.EOPNOTSUPP, errno.ENOTSUP):
                return  # no fallocate here: the queue runs without a reserve
            if isinstance(exc, DiskFullError):
                raise DiskFullError(
                    exc.errno, exc.strerror, exc.filename,
                    f"enqueue failed: path={self.path!r} errno=ENOSPC (no room to reserve "
                    f"{want} bytes for draining {live} entries; nothing was written); "
                    f"{DiskFullError.hint}") from exc
            raise

    def release(self, nbytes: int) -> bool:
        """Give back at least ``nbytes`` (a write met ENOSPC); False if nothing is left."""
        size = self._size()
        if size == 0:
            return False
        new = max(0, size - _round_up(max(nbytes, 4 * _BLOCK)))
        _os.truncate(self.fd, new, self.path)
        self.released += size - new
        _log.warning("disk full: gave back %d bytes of the queue's reserve (%d left)",
                     size - new, new)
        return True

    def trim(self, live: int) -> None:
        """At a checkpoint: shrink a reserve far larger than the live entries need
        (after a drain, what it held for the drained entries is free space again)."""
        if self.fd < 0:
            return
        size = self._size()
        need = self.target(live)
        if size > need + need // 2 + 16 * _BLOCK:
            _os.truncate(self.fd, _round_up(need), self.path)

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            _os.close(fd, self.path)
