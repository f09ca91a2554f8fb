"""BUG (snapshot): an ack saves without fsync of the file and of the directory ("acks
are cheap to redo"). Enqueue and claim saves are fully durable. Expected: caught by
power-loss (duplicate after ack) when the cut falls after an ack and before the next
durable save."""
import os

from tests.quality.queues.correct_snapshot import SnapshotQueue


class Q(SnapshotQueue):
    def ack(self, entry_id):
        with self._lock():
            state = self._load()
            if entry_id not in state["entries"]:
                raise KeyError(entry_id)
            del state["entries"][entry_id]
            tmp = self.state_path + ".tmp." + os.urandom(8).hex()
            with open(tmp, "wb") as f:  # BUG: no fsync, no directory fsync
                f.write(self._dump(state))
            os.replace(tmp, self.state_path)


def open_queue(directory):
    return Q(directory)
