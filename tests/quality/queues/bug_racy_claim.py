"""BUG: claim loads and picks under the lock, releases it, then saves under a new lock:
two processors pick the same entry, or one saves over the other's update.
Expected: caught by concurrent-processors (duplicate or lost)."""
import base64

from tests.quality.queues.correct_snapshot import SnapshotQueue


class Q(SnapshotQueue):
    def claim(self, worker):
        with self._lock():
            state = self._load()
        ident = self._pick(state)  # BUG: the lock is not held from load to save
        if ident is None:
            return None
        entry = state["entries"][ident]
        entry["state"], entry["worker"] = "PROCESSING", worker
        with self._lock():
            self._save(state)
        return ident, base64.b64decode(entry["payload"])


def open_queue(directory):
    return Q(directory)
