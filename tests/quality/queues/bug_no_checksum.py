"""BUG (log): no checksum and no torn-tail handling: every line, the unterminated last
one too, is parsed as a record, and new records are appended after whatever is there.
A torn tail then glues onto the next record: a parse crash for every later call.
Expected: caught by killed-mid-write and power-loss-torn (lost)."""
from tests.quality.queues.correct_log import LogQueue


class Q(LogQueue):
    CHECKSUM = False  # BUG


def open_queue(directory):
    return Q(directory)
