"""BUG: the temp file is renamed into place first and fsynced afterwards (then the
directory). Real file systems may persist the rename before the data (ext4 without
auto_da_alloc, XFS, btrfs, ...): a cut in between leaves an empty state file. The
harness's model makes a rename durable only at a directory fsync, which comes after the
data fsync here, so only another processor's directory fsync in between exposes it."""
import os

from tests.quality.queues._util import fsync_dir
from tests.quality.queues.correct_snapshot import SnapshotQueue


class Q(SnapshotQueue):
    def _save(self, state):
        tmp = self.state_path + ".tmp." + os.urandom(8).hex()
        with open(tmp, "wb") as f:
            f.write(self._dump(state))
            f.flush()
            os.replace(tmp, self.state_path)  # BUG: before the fsync
            os.fsync(f.fileno())
        fsync_dir(self.dir)


def open_queue(directory):
    return Q(directory)
