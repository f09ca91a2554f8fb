"""BUG: mutual exclusion by an O_CREAT|O_EXCL lock file (as in the incident) instead of
flock; a processor killed while holding it leaves it behind, and every later call gives
up after a few retries. Expected: caught by stale-locks / incident (lost or stuck)."""
import contextlib
import errno
import os
import time

from tests.quality.queues.correct_snapshot import SnapshotQueue


class Q(SnapshotQueue):
    @contextlib.contextmanager
    def _lock(self):
        self._ensure()
        path = self.lock_path + ".excl"
        for _ in range(50):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                break
            except FileExistsError:
                time.sleep(0.01)
        else:
            raise OSError(errno.EAGAIN, "queue lock is held", path)
        os.close(fd)
        try:
            yield
        finally:
            os.unlink(path)  # BUG: a kill before this leaves the lock for ever


def open_queue(directory):
    return Q(directory)
