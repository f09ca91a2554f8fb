"""BUG: recover() does not put PROCESSING entries back: a crashed claimer's entry stays
PROCESSING for ever. Expected: caught by killed-mid-write / power-loss (stuck)."""
from tests.quality.queues.correct_snapshot import SnapshotQueue


class Q(SnapshotQueue):
    def recover(self):
        with self._lock():
            self._load()  # BUG: nothing is requeued


def open_queue(directory):
    return Q(directory)
