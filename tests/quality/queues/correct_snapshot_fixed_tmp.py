"""CORRECT (snapshot variant): a fixed temp name state.json.tmp. With the flock held across every
load-modify-save only one processor ever writes it, so this is NOT a bug in this design
(kept to show that a harmless variant passes: it must not be flagged)."""
from tests.quality.queues.correct_snapshot import SnapshotQueue


class Q(SnapshotQueue):
    def _temp_path(self):
        return self.state_path + ".tmp"


def open_queue(directory):
    return Q(directory)


# No checksums: a flipped bit at rest is handed out as data. It says so, and the harness
# lists what damage at rest does to it apart, as outside its promises.
open_queue.promises = {"damage": False}  # type: ignore[attr-defined]
