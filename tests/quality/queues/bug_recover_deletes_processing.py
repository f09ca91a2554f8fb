"""BUG: recover() drops PROCESSING entries ("a crashed worker's entry is poison").
Expected: caught by killed-mid-write / power-loss (lost)."""
from tests.quality.queues.correct_snapshot import SnapshotQueue


class Q(SnapshotQueue):
    def recover(self):
        with self._lock():
            state = self._load()
            state["entries"] = {i: e for i, e in state["entries"].items()
                                if e["state"] != "PROCESSING"}  # BUG
            self._save(state)


def open_queue(directory):
    return Q(directory)
