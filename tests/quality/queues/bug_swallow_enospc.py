"""BUG: an OSError in save is logged and ignored; the call returns normally.
Expected: caught by disk-full (silent_error / lost)."""
import logging

from tests.quality.queues.correct_snapshot import SnapshotQueue

log = logging.getLogger(__name__)


class Q(SnapshotQueue):
    def _save(self, state):
        try:
            super()._save(state)
        except OSError as exc:  # BUG: swallowed
            log.warning("save failed: %s", exc)


def open_queue(directory):
    return Q(directory)
