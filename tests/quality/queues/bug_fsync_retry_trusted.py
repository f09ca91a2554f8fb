"""BUG: an fsync that fails with EIO is retried, and the retry's success is trusted.

After a failed fsync Linux has marked the dirty pages clean: the retry finds nothing to
write and succeeds, yet the data never reached the disk (fsyncgate). The state file is
renamed into place and the call returns ok. Expected: caught by fsync-failure (lost /
silent_error once the power goes before the next save)."""
import errno
import os

from tests.quality.queues.correct_snapshot import SnapshotQueue


class Q(SnapshotQueue):
    def _write_file(self, path, data):
        with open(path, "wb") as f:
            f.write(data)
            f.flush()
            try:
                os.fsync(f.fileno())
            except OSError as exc:
                if exc.errno != errno.EIO:
                    raise
                os.fsync(f.fileno())  # BUG: retried, and its success trusted


def open_queue(directory):
    return Q(directory)
