"""BUG: ack(id) marks the oldest PROCESSING entry done instead of entry id. With one
processor that is the same entry; with several, a processor acks another's claim, and
its own entry is redelivered after its ack returned ok. Expected: caught by
concurrent-processors (duplicate)."""
from tests.quality.queues.correct_snapshot import SnapshotQueue


class Q(SnapshotQueue):
    def ack(self, entry_id):
        with self._lock():
            state = self._load()
            busy = sorted(i for i, e in state["entries"].items() if e["state"] == "PROCESSING")
            if not busy:
                raise KeyError(entry_id)
            del state["entries"][busy[0]]  # BUG: not necessarily entry_id
            self._save(state)


def open_queue(directory):
    return Q(directory)
