"""A soak worker: a producer, a consumer or the final drain, recording down its own pipe.

No shim and no plan: the soak's only fault is the parent's SIGKILL. Each record is
sent as it happens, stamped with ``time.monotonic_ns()`` (one clock for every process
on the machine), so the parent can merge the pipes into the real-time order. Sending is
one small ``write(2)`` to a pipe, atomic and in the kernel once it returns: a SIGKILL
never tears a record, and never loses one that was sent.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

from harness.check.history import DRAIN, History, entry_key
from harness.run._worker import die_with_parent, quiet_signals
from harness.run.client import Client
from harness.run.schedule import Step

__all__ = ["DRAIN_SLOT", "record", "worker"]

DRAIN_SLOT = DRAIN
"""The slot (and process number) of the final drain."""

_IDLE_S = 0.002  # a consumer that found the queue empty waits this long before it asks again
_RETRY_S = 0.01  # a worker whose open failed waits this long before it tries again


class _Recorder:
    """The `History` interface a `Client` needs, writing to the pipe instead."""

    def __init__(self, conn: Any) -> None:
        self._send = conn.send

    def op(self, type: str, process: int, f: str, *, key=None, value=None, error=None,
           where=None) -> None:  # where (harness._where) is not kept: soak lists no causes
        self._send((time.monotonic_ns(), "op", type, f, key, value, error))


def record(history: History, process: int, fields: tuple) -> None:
    """Append one merged record (``("op", type, f, key, value, error)`` or a fault)."""
    kind, *rest = fields
    if kind == "op":
        type_, f, key, value, error = rest
        history.op(type_, process, f, key=key, value=value, error=error)
    else:
        fault_kind, fault, effect, crashed = rest
        history.fault(process, fault_kind, fault, effect, crashed=crashed)


def worker(conn: Any, slot: int, role: str, base: int, factory: Any, target: str,
           directory: str, phase: Any, rng_name: str, bound: int, parent: int) -> None:
    """One worker's life: ends when the parent's phase says so (or with its SIGKILL)."""
    die_with_parent(parent)
    quiet_signals()
    # the target's own log lines (thousands under legacy) would drown the verdict
    logging.getLogger().handlers[:] = [logging.NullHandler()]
    logging.lastResort = None
    rec = _Recorder(conn)
    client = Client(process=slot, factory=factory, target=target, directory=directory,
                    history=rec, shim=None, baton=None)  # type: ignore[arg-type]
    if role == "drain":
        problem = client.drain(bound)
        if problem:
            conn.send((time.monotonic_ns(), "problem", problem))
        return
    stop_at = 1 if role == "producer" else 2
    while phase.value < stop_at and not client.open():
        time.sleep(_RETRY_S)
    if role == "producer":
        _produce(client, phase, base, random.Random(rng_name))
    else:
        _consume(client, phase, f"p{slot}")
    client.close()


def _produce(client: Client, phase: Any, base: int, rng: random.Random) -> None:
    n = 0
    while phase.value < 1:
        if client.queue is None and not client.open():
            time.sleep(_RETRY_S)
            continue
        key = f"e{base + n}"
        payload = key.encode("ascii") + b"|" + rng.randbytes(rng.randint(8, 64))
        client.enqueue(Step("enqueue", key, payload))
        n += 1


def _consume(client: Client, phase: Any, name: str) -> None:
    while phase.value < 2:
        if client.queue is None and not client.open():
            time.sleep(_RETRY_S)
            continue
        got = client.claim(name)
        if got is None:
            time.sleep(_IDLE_S)
            continue
        client.ack(got[0], entry_key(got[1]))
