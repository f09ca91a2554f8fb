"""BUG (log): a bad record anywhere in the log is taken for a torn tail: the log is cut
there and the queue carries on, as if a crash had torn its end. Damage at rest in the
middle of the log (a flipped bit, a zeroed sector) then silently drops every record after
it, acknowledged enqueues and acks alike. Expected: caught by corruption-at-rest (lost:
entries far from the damage, or duplicate: an ack cut away)."""
from tests.quality.queues.correct_log import LogQueue


class Q(LogQueue):
    DAMAGE_IS_TORN = True  # BUG


def open_queue(directory):
    return Q(directory)
