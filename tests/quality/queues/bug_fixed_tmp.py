"""BUG (maildir): every enqueue writes the same temp name tmp/entry.tmp before renaming
it into pending/. Enqueues are lock-free, so two processors write the same file at once:
one entry gets the other's bytes (corrupt/phantom) and the other's rename fails or
moves the wrong content. Expected: caught by concurrent-processors."""
import os

from tests.quality.queues.correct_maildir import MaildirQueue


class Q(MaildirQueue):
    def _tmp_name(self, name):
        return os.path.join(self.tmp, "entry.tmp")  # BUG: shared by every process

    def _write_entry(self, path, payload):
        with open(path, "wb") as f:  # (the correct one uses "xb", which would refuse)
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())


def open_queue(directory):
    return Q(directory)
