"""BUG (log): the ack record is appended without fsync (enqueue and claim are fsynced).
A power loss right after an ack brings the entry back: delivered again after its ack
returned ok. Expected: caught by power-loss (duplicate), if the cut falls after an ack
and before the next fsync."""
from tests.quality.queues.correct_log import LogQueue


class Q(LogQueue):
    SYNC_ACK = False  # BUG


def open_queue(directory):
    return Q(directory)
