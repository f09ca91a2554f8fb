"""The client's final drain: it repairs a queue that refuses after damage, once, and says
why when it cannot drain it (the runner turns that into a stuck verdict)."""

from __future__ import annotations

import errno

import pytest

from harness.check.history import DRAIN, History
from harness.run.client import Client


class Damaged:
    """A queue over a dict 'disk': refuses (raises EBADMSG) while the disk says damaged."""

    def __init__(self, disk: dict, where: str) -> None:
        self.disk = disk
        if where == "open" and disk["damaged"]:
            raise OSError(errno.EBADMSG, "damaged journal")
        self.where = where

    def _check(self, where: str) -> None:
        if self.where == where and self.disk["damaged"]:
            raise OSError(errno.EBADMSG, "damaged record")

    def enqueue(self, payload):  # the drain's liveness probe
        ident = str(len(self.disk["entries"]) + 100)
        self.disk["entries"].append((ident, payload))
        return ident

    def claim(self, worker):
        self._check("claim")
        return self.disk["entries"].pop(0) if self.disk["entries"] else None

    def ack(self, entry_id):
        pass

    def recover(self):
        self._check("recover")

    def close(self):
        pass


def drain(where: str, *, damaged=True, repair: str | None = "ok", entries=()):
    disk = {"damaged": damaged, "entries": list(entries), "repairs": 0}
    history = History()
    client = Client(process=DRAIN, factory=lambda d: Damaged(disk, where), target="t",
                    directory="/nowhere", history=history, shim=None, baton=None)

    def fix(directory):
        disk["repairs"] += 1
        if repair == "raises":
            raise OSError(errno.EIO, "cannot repair")
        disk["damaged"] = False
        return "kept 1 of 2 records"

    client._repair = fix if repair else None
    return client.drain(bound=10), history, disk


@pytest.mark.parametrize("where", ["open", "claim"])
def test_a_queue_that_refuses_after_damage_is_repaired_once_then_drained(where):
    problem, history, disk = drain(where, entries=[("1", b"e1|x")])
    assert problem is None and disk["repairs"] == 1
    calls = [(o.f, o.type) for o in history.ops()]
    assert ("repair", "invoke") in calls and ("repair", "ok") in calls
    assert calls[-2:] == [("close", "invoke"), ("close", "ok")]
    (done,) = [o for o in history.ops() if o.f == "repair" and o.type == "ok"]
    assert done.value == "kept 1 of 2 records"
    assert ("claim", "ok") in calls[calls.index(("repair", "ok")):]


def test_without_a_repair_the_drain_says_the_queue_could_not_be_opened():
    problem, history, disk = drain("open", repair=None)
    assert problem.startswith("final drain: the queue could not be opened")
    assert "repair" not in {o.f for o in history.ops()}


def test_a_repair_that_raises_is_said():
    problem, _history, disk = drain("claim", repair="raises")
    assert "claim raised" in problem and "its repair raised" in problem
    assert disk["repairs"] == 1


def test_a_healthy_queue_is_never_repaired():
    problem, history, disk = drain("open", damaged=False, entries=[("1", b"e1|x")])
    assert problem is None and disk["repairs"] == 0
