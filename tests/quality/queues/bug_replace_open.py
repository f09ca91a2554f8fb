"""BUG (snapshot): claim() reads the state through a handle it keeps open until after the
save (the save moved inside the ``with open(...)`` block). On Linux that is harmless:
os.replace swaps the name and the open handle keeps the old inode. On Windows os.replace
onto a file any handle holds open, its own process's included, raises PermissionError
[WinError 5]: no claim ever succeeds and every entry stays PENDING for ever.
Expected: passes every Linux scenario; caught only by windows-concurrent (stuck, lost)."""
import base64
import json

from tests.quality.queues.correct_snapshot import SnapshotQueue


class Q(SnapshotQueue):
    def claim(self, worker):
        with self._lock(), open(self.state_path, "rb") as f:
            state = json.loads(f.read().decode("utf-8"))
            ident = self._pick(state)
            if ident is None:
                return None
            entry = state["entries"][ident]
            entry["state"], entry["worker"] = "PROCESSING", worker
            self._save(state)  # BUG: replaces state.json while f still holds it open
        return ident, base64.b64decode(entry["payload"])


def open_queue(directory):
    return Q(directory)


# As correct_snapshot, whose design it shares: no checksums (harness.check.promises).
open_queue.promises = {"damage": False}  # type: ignore[attr-defined]
