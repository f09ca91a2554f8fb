"""BUG (log): recover() requeues every entry that was ever claimed, acked ones too: it
rebuilds "what was in flight" from the claim records and forgets that an ack record ends
an entry. Expected: caught in every scenario by the drain's recover (duplicate: claimed
again after its ack returned ok)."""
from tests.quality.queues.correct_log import LogQueue


class Q(LogQueue):
    def _replay(self):
        entries, valid, length = super()._replay()
        data = self._read_all()[:valid]
        payloads, order, requeued = {}, {}, set()
        for line in data.splitlines():
            rec = self._decode(line)
            if rec is None:
                break
            if rec["op"] == "enq":
                payloads[rec["id"]], order[rec["id"]] = rec["p"], len(order)
            elif rec["op"] == "requeue":
                requeued.add(rec["id"])
        for ident in requeued:
            if ident not in entries:  # a requeue brings an acked entry back
                entries[ident] = ["PENDING", payloads[ident], order[ident]]
        return entries, valid, length

    def _to_requeue(self, entries):
        data = self._read_all()
        claimed = {r["id"] for r in map(self._decode, data.splitlines())
                   if r is not None and r["op"] == "claim"}
        return sorted(claimed)  # BUG: acked entries too


def open_queue(directory):
    return Q(directory)
