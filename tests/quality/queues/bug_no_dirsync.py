"""BUG: the snapshot is renamed into place but the directory is never fsynced.

A power loss undoes the rename: the state file goes back to an old version.
Expected: caught by power-loss (lost)."""
import os

from tests.quality.queues.correct_snapshot import SnapshotQueue


class Q(SnapshotQueue):
    def _save(self, state):
        tmp = self.state_path + ".tmp." + os.urandom(8).hex()
        self._write_file(tmp, self._dump(state))
        os.replace(tmp, self.state_path)  # BUG: no fsync of the directory afterwards


def open_queue(directory):
    return Q(directory)
