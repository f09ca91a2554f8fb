"""A target graded on what it promises: findings outside its promises are listed, not failed."""

from __future__ import annotations

import os

import pytest

from harness import faults, report
from harness.check.promises import PromiseError, Promises, outside, promises_of
from harness.run.runner import run_scenario
from harness.run.scenarios import Scenario, Workload


class _NoFsync:
    """Appends records to one file with no fsync: correct for one process without power
    loss, and nothing more (it promises exactly that)."""

    def __init__(self, directory):
        os.makedirs(directory, exist_ok=True)
        self.path = os.path.join(directory, "log")
        self.items, self.taken, self.done = {}, set(), set()
        if os.path.exists(self.path):
            with open(self.path, "rb") as f:
                for line in f.read().splitlines():
                    op, _, rest = line.partition(b" ")
                    ident, _, payload = rest.partition(b" ")
                    if op == b"E":
                        self.items[ident.decode()] = bytes.fromhex(payload.decode())
                    elif op == b"A":
                        self.done.add(ident.decode())
        self.n = len(self.items)

    def _log(self, line):
        with open(self.path, "ab") as f:
            f.write(line + b"\n")

    def enqueue(self, payload):
        self.n += 1
        ident = str(self.n)
        self._log(b"E " + ident.encode() + b" " + payload.hex().encode())
        self.items[ident] = payload
        return ident

    def claim(self, worker):
        for ident, payload in self.items.items():
            if ident not in self.done and ident not in self.taken:
                self.taken.add(ident)
                return ident, payload
        return None

    def ack(self, ident):
        self._log(b"A " + ident.encode())
        self.done.add(ident)

    def recover(self):
        self.taken.clear()

    def close(self):
        pass


def _scenario(*fs, processors=1):
    return Scenario(name="t", description="t", fault=fs[0].kind, plan=faults.Plan(tuple(fs)),
                    workload=Workload(entries=12, processors=processors), seed=2)


def _power_loss_run(promises):
    def factory(directory):
        return _NoFsync(directory)
    if promises is not None:
        factory.promises = promises
    return run_scenario("t:t", _scenario(faults.PowerLoss(at_op=40)), factory=factory)


def test_by_default_the_whole_contract_is_promised_and_a_power_loss_fails_it():
    d = _power_loss_run(None).to_dict()
    assert d["status"] == "fail" and d["violations"]
    assert "outside_promises" not in d and "promises" not in d


def test_a_target_that_does_not_promise_power_loss_is_graded_on_what_it_promises():
    d = _power_loss_run({"power_loss": False}).to_dict()
    assert d["status"] == "pass", d["violations"]
    assert d["violations"] == []
    assert d["outside_promises"] and all(
        v["outside"] == "the target does not promise durability across a power loss"
        for v in d["outside_promises"])
    assert d["promises"] == {"processes": None, "power_loss": False,
                             "delivery": "at-least-once", "damage": True}
    md = report.markdown({"target": "t", "scenarios": [d]})
    assert "Outside its promises" in md


@pytest.mark.parametrize("promises", [None, {"processes": 1}])
def test_one_process_promised_concurrent_findings_are_outside(promises):
    # every processor keeps its own in-memory view: several of them hand out one entry
    def factory(directory):
        return _NoFsync(directory)
    if promises is not None:
        factory.promises = promises
    sc = _scenario(faults.ConcurrentProcessors(processors=3), processors=3)
    d = run_scenario("t:t", sc, factory=factory).to_dict()
    if promises is None:
        assert d["status"] == "fail" and d["violations"]
    else:
        assert d["status"] == "pass" and not d["violations"]
        assert d["outside_promises"]
        assert d["outside_promises"][0]["outside"].endswith("this scenario ran 3")


def test_more_processors_than_promised_moves_every_finding():
    v = {"kind": "lost", "faults": [], "entry": "e1"}
    assert outside(Promises(processes=1), 4, v).startswith("the target promises at most 1")
    assert outside(Promises(processes=4), 4, v) is None
    assert outside(Promises(delivery="at-most-once"), 1,
                   {**v, "tags": ["released"]}).startswith("the target promises at-most-once")
    assert outside(Promises(delivery="at-most-once"), 1, v) is None
    died = {**v, "tags": ["claim_died"]}
    assert outside(Promises(delivery="at-most-once"), 1, died).startswith(
        "the target promises at-most-once")
    assert outside(Promises(), 1, died) is None


@pytest.mark.parametrize("declared, words", [
    ({"procs": 1}, "unknown key 'procs'"), ({"processes": 0}, "processes=0"),
    ({"delivery": "exactly-once"}, "delivery='exactly-once'"), ("one", "expected a dict"),
])
def test_bad_promises_are_refused_with_a_clear_message(declared, words):
    def factory(directory):
        return _NoFsync(directory)
    factory.promises = declared
    with pytest.raises(PromiseError, match=words.replace("(", r"\(")):
        promises_of(factory)
    run = run_scenario("t:t", _scenario(faults.PowerLoss(at_op=40)), factory=factory)
    assert run.status == "error" and words in run.error
