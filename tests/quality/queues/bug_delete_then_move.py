"""BUG: save deletes state.json, then renames the temp file onto it (the incident's
delete-then-move) instead of one os.replace. A crash (kill) between the unlink and the
rename leaves no state file: the queue refuses to load for ever (everything lost).
Expected: caught by a kill between the two calls; see the report (the scenarios only
kill inside writes)."""
import os

from tests.quality.queues._util import fsync_dir
from tests.quality.queues.correct_snapshot import SnapshotQueue


class Q(SnapshotQueue):
    def _save(self, state):
        tmp = self.state_path + ".tmp." + os.urandom(8).hex()
        self._write_file(tmp, self._dump(state))
        if os.path.exists(self.state_path):
            os.unlink(self.state_path)  # BUG: a window with no state file
        os.rename(tmp, self.state_path)
        fsync_dir(self.dir)


def open_queue(directory):
    return Q(directory)
