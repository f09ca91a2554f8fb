"""BUG: the state file is rewritten in place (truncate + write + fsync), no temp + rename.

A kill or power cut in the middle of the write leaves a truncated / partial JSON file,
which then fails to load for ever. Expected: caught by killed-mid-write and
power-loss-torn (lost)."""
from tests.quality.queues.correct_snapshot import SnapshotQueue


class Q(SnapshotQueue):
    def _save(self, state):
        self._write_file(self.state_path, self._dump(state))  # BUG: in place


def open_queue(directory):
    return Q(directory)
