"""Property tests of the checker: a correct in-memory queue passes, one forgotten entry is lost."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.check.checker import check
from harness.check.history import DRAIN, NEMESIS, History

STEPS = st.lists(st.tuples(st.sampled_from(["enqueue", "enqueue", "claim", "ack", "ack_unknown",
                                            "enqueue_unknown", "crash", "power_loss"]),
                           st.integers(0, 2)), max_size=40)


def simulate(steps, forget: int | None = None) -> tuple[History, str | None]:
    """A history of a correct queue (random crashes release claims), then a full drain.

    ``forget`` picks one entry whose enqueue returned ok and that is still in the queue
    when the drain starts; the queue drops it there, as a buggy recovery would.
    """
    h, pending, held, done, ok = History(), [], {}, set(), []
    n = 0

    def put(p, outcome, applied):
        nonlocal n
        n += 1
        key = f"e{n}"
        h.op("invoke", p, "enqueue", key=key, value={"payload": f"{key}|data".encode()})
        if applied:
            pending.append(key)
        h.op(outcome, p, "enqueue", key=key, value={"id": key} if outcome == "ok" else None)
        if outcome == "ok":
            ok.append(key)

    def release(procs):
        for key, holder in list(held.items()):
            if holder in procs:
                del held[key]
                pending.append(key)

    def take(p):
        h.op("invoke", p, "claim")
        key = pending.pop(0) if pending else None
        value = {"id": key, "payload": f"{key}|data".encode()} if key else None
        h.op("ok", p, "claim", key=key, value=value)
        if key:
            held[key] = p

    for action, p in steps:
        mine = [k for k, holder in held.items() if holder == p]
        if action == "enqueue":
            put(p, "ok", True)
        elif action == "enqueue_unknown":
            put(p, "info", n % 2 == 0)
        elif action == "claim":
            take(p)
        elif action in ("ack", "ack_unknown") and mine:
            h.op("invoke", p, "ack", key=mine[0], value={"id": mine[0]})
            del held[mine[0]]
            done.add(mine[0])
            h.op("ok" if action == "ack" else "info", p, "ack", key=mine[0],
                 value={"id": mine[0]})
        elif action == "crash":
            h.fault(p, "killed_mid_write", "KillMidWrite(at_op=1)", "killed", crashed=[p])
            release({p})
            h.op("invoke", p, "open")
            h.op("ok", p, "open")
        elif action == "power_loss":
            h.fault(NEMESIS, "power_loss", "PowerLoss(at_op=1)", "nothing lost", crashed=[0, 1, 2])
            release({0, 1, 2})
    put(0, "ok", True)  # so that something is always left for the drain
    release({0, 1, 2})
    candidates = [k for k in ok if k in pending]
    dropped = candidates[forget % len(candidates)] if forget is not None else None
    if dropped:
        pending.remove(dropped)
    h.op("invoke", DRAIN, "open")
    h.op("ok", DRAIN, "open")
    while pending:
        take(DRAIN)
        key = next(iter(held))
        h.op("invoke", DRAIN, "ack", key=key, value={"id": key})
        del held[key]
        done.add(key)
        h.op("ok", DRAIN, "ack", key=key, value={"id": key})
    take(DRAIN)
    h.op("invoke", DRAIN, "states")
    h.op("ok", DRAIN, "states", value=dict.fromkeys(sorted(done), "DELIVERED"))
    return h, dropped


@settings(max_examples=200, deadline=None)
@given(STEPS)
def test_a_correct_queue_is_always_valid(steps):
    result = check(simulate(steps)[0])
    assert result.valid, [v.detail for v in result.violations]


@settings(max_examples=200, deadline=None)
@given(STEPS, st.integers(0, 1000))
def test_forgetting_one_entry_is_exactly_one_loss(steps, forget):
    history, dropped = simulate(steps, forget)
    result = check(history)
    assert [(v.kind, v.entry) for v in result.violations] == [("lost", dropped)]
    assert result.counts["lost"] == 1
