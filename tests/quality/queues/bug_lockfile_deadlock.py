"""BUG: the lock is a file born with the queue, opened without O_CREAT ever after: a
missing lock file is taken to mean "another processor is still creating the queue", so
the call waits for it to appear. Removed by someone else (a tmp cleaner, an operator
deleting a "stale" lock), it never comes back and every call waits, gives up and raises,
for ever: the queue is dead until a person re-creates the file. (The wait is bounded so
that a run ends.) Expected: caught by file-removed (stuck: the final drain cannot drain
it once every fault is healed)."""
import contextlib
import errno
import fcntl
import os
import time

from tests.quality.queues._util import write_synced
from tests.quality.queues.correct_snapshot import STATE, SnapshotQueue


class Q(SnapshotQueue):
    def _write_file(self, path, data):
        super()._write_file(path, data)
        if os.path.basename(path) == STATE and ".init-" in path:  # the directory is born
            write_synced(os.path.join(os.path.dirname(path), "queue.lock"), b"")

    @contextlib.contextmanager
    def _lock(self):
        self._ensure()
        for _ in range(50):
            try:
                fd = os.open(self.lock_path, os.O_RDWR)  # BUG: never re-created
                break
            except FileNotFoundError:
                time.sleep(0.01)  # "someone is still creating the queue"
        else:
            raise OSError(errno.EAGAIN, "the queue's lock file never appeared", self.lock_path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def open_queue(directory):
    return Q(directory)
