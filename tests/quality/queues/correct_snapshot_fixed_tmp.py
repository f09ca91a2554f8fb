"""CORRECT (snapshot variant): a fixed temp name state.json.tmp. With the flock held across every
load-modify-save only one processor ever writes it, so this is NOT a bug in this design
(kept to show that a harmless variant passes: it must not be flagged)."""
import os

from tests.quality.queues.correct_snapshot import SnapshotQueue


class Q(SnapshotQueue):
    def _save(self, state):
        tmp = self.state_path + ".tmp"
        try:
            self._write_file(tmp, self._dump(state))
            os.replace(tmp, self.state_path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        from tests.quality.queues._util import fsync_dir
        fsync_dir(self.dir)


def open_queue(directory):
    return Q(directory)
