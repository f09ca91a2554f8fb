"""BUG (maildir): the entry file is read with one os.read(fd, 4096): payloads over 4 KiB
come back truncated. Expected: corrupt, but only with payloads > 4 KiB (see report)."""
import os

from tests.quality.queues.correct_maildir import MaildirQueue


class Q(MaildirQueue):
    def _read_entry(self, path):
        fd = os.open(path, os.O_RDONLY)
        try:
            return os.read(fd, 4096)  # BUG: one read, fixed size
        finally:
            os.close(fd)


def open_queue(directory):
    return Q(directory)
