"""BUG: mutual exclusion by flock on a lock file (re-created with O_CREAT when missing)
instead of on the directory. Removed while held (an operator deleting a "stale" lock), the
next processor creates a new file and locks that: two processors hold "the" lock at once
and their load-modify-save cycles overwrite each other. Expected: caught by file-removed
(lost or duplicate)."""
from tests.quality.queues._util import flocked
from tests.quality.queues.correct_snapshot import SnapshotQueue


class Q(SnapshotQueue):
    def _lock(self):
        return flocked(self.lock_path, ensure=self._ensure)  # BUG: a file others can remove


def open_queue(directory):
    return Q(directory)
