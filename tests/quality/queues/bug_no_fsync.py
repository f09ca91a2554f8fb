"""BUG: the snapshot's temp file is never fsynced (rename + directory fsync kept).

After a power loss the state file's name is durable but its data is not: it comes back
empty. Expected: caught by power-loss (lost entries)."""
import os  # noqa: F401

from tests.quality.queues.correct_snapshot import SnapshotQueue


class Q(SnapshotQueue):
    def _write_file(self, path, data):
        with open(path, "wb") as f:
            f.write(data)
            f.flush()  # BUG: no os.fsync(f.fileno())


def open_queue(directory):
    return Q(directory)
