"""The history of a run: every client call, every intercepted file call, every fault.

Vocabulary after Jepsen. A client call is two `Op` records sharing a process:
an `invoke` and its completion, one of

- ``ok``: the call returned normally; its effect is promised (durable for
  enqueue and ack, by the target contract);
- ``fail``: the call certainly had no effect (the harness only records this
  when it knows, e.g. a call refused before any file operation);
- ``info``: the outcome is unknown: the call raised, or its processor died in
  the middle of it. Its effect may or may not be there afterwards.

Between them, the shim appends an `FsOp` for every file call it intercepted,
and a `FaultEvent` whenever a fault did something to the disk or a process.
All three share one sequence (`index`), so "what happened between the enqueue
of e17 and its ack" is a slice of the history.

Conventions the checker relies on:

- Entry keys: the client embeds a unique key (``e<n>``) at the start of every
  payload, ``b"e17|..."``, so an entry can be followed by its bytes even when
  the enqueue that wrote it raised and returned no id.
- ``enqueue``: invoke ``value={"payload": bytes}``, ``key="e17"``; ok
  ``value={"id": queue_id}``.
- ``claim``: invoke ``value=None``; ok ``value=None`` (queue empty) or
  ``{"id": queue_id, "payload": bytes}`` with ``key`` parsed from the payload
  (None when it does not parse).
- ``ack``: invoke and completion ``value={"id": queue_id}``, ``key`` the entry
  the client claimed under that id.
- ``open``, ``recover``, ``close``: ``value=None``; ``states``: ok
  ``value={queue_id: state}``; ``repair`` (the drain's call of the target's
  ``repair(directory)`` after damage): ok ``value`` its result as text, or None.
- Process ``DRAIN`` is the final drain: faults healed, every processor closed,
  a fresh queue opened, ``recover()``, one new entry enqueued (the liveness probe,
  payload ``PROBE + ...``, no key: it is no entry of the workload), claim + ack until
  empty, ``states()``. Its first op marks a restart of every processor.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "DRAIN",
    "NEMESIS",
    "OP_TYPES",
    "CLIENT_FUNCTIONS",
    "Op",
    "FsOp",
    "FaultEvent",
    "History",
    "entry_key",
    "dumps",
    "PROBE",
]

PROBE = b"liveness-probe|"
"""Start of the payload the final drain enqueues once every fault is healed: the queue
must take it, hand it out and accept its ack, or it is ``unavailable``."""

DRAIN = -1
"""Process number of the final drain."""

NEMESIS = -2
"""Process number of faults that hit every processor at once (power loss)."""

OP_TYPES = ("invoke", "ok", "fail", "info")
CLIENT_FUNCTIONS = ("open", "enqueue", "claim", "ack", "recover", "close", "states", "repair")


@dataclass(frozen=True, slots=True)
class Op:
    """One half of a client call: its invocation or its completion."""

    index: int
    type: str
    process: int
    f: str
    key: str | None = None
    value: Any = None
    error: str | None = None
    where: str | None = None  # where the target raised (`file:line in function`), if it did

    def __post_init__(self) -> None:
        if self.type not in OP_TYPES:
            raise ValueError(f"Op type={self.type!r}; expected one of {OP_TYPES}")
        if self.f not in CLIENT_FUNCTIONS:
            raise ValueError(f"Op f={self.f!r}; expected one of {CLIENT_FUNCTIONS}")


@dataclass(frozen=True, slots=True)
class FsOp:
    """One intercepted file-system call and what came of it.

    ``outcome`` is ``"ok"``, an errno name (``"ENOSPC"``), or ``"killed"``;
    ``fault`` is the repr of the fault that fired on this call, if any.
    """

    index: int
    process: int
    call: str
    path: str | None = None
    path2: str | None = None
    nbytes: int | None = None
    outcome: str = "ok"
    fault: str | None = None


@dataclass(frozen=True, slots=True)
class FaultEvent:
    """What a fault did to the disk or to processes, in a sentence.

    ``crashed`` names the processors that died here (a kill, a power loss);
    ``destroyed`` is true when the fault itself removed data that may have
    been the only durable copy of entries (a deleted directory).
    ``ranges`` and ``entries`` say what a fault that hit single files touched: the
    byte ranges it damaged or removed, ``(sandbox-relative file, start, end)``, and
    the keys of the entries whose bytes may have lain there (`Corruption`,
    `FileRemoved`; see harness.faults.damage). When ``entries`` is given, ``destroyed``
    concerns those entries only.
    """

    index: int
    process: int
    kind: str
    fault: str
    effect: str
    crashed: tuple[int, ...] = ()
    destroyed: bool = False
    ranges: tuple[tuple[str, int, int], ...] = ()
    entries: tuple[str, ...] = ()


Record = Op | FsOp | FaultEvent
_KINDS: dict[str, type] = {"op": Op, "fs": FsOp, "fault": FaultEvent}


def entry_key(payload: bytes | None) -> str | None:
    """The harness key at the start of a payload (``b"e17|..."`` -> ``"e17"``), or None."""
    if not isinstance(payload, bytes | bytearray):
        return None
    head, sep, _ = bytes(payload).partition(b"|")
    if not sep or len(head) < 2 or head[:1] != b"e" or not head[1:].isdigit():
        return None
    return head.decode("ascii")


@dataclass
class History:
    """An append-only, thread-safe list of records with one shared sequence."""

    records: list[Record] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def _append(self, make) -> Record:
        with self._lock:
            record = make(len(self.records))
            self.records.append(record)
            return record

    def op(self, type: str, process: int, f: str, *, key: str | None = None,
           value: Any = None, error: str | None = None, where: str | None = None) -> Op:
        """Append a client op; returns it with its index."""
        return self._append(lambda i: Op(i, type, process, f, key, value, error, where))

    def fs(self, process: int, call: str, *, path: str | None = None,
           path2: str | None = None, nbytes: int | None = None,
           outcome: str = "ok", fault: str | None = None) -> FsOp:
        """Append an intercepted file call."""
        return self._append(
            lambda i: FsOp(i, process, call, path, path2, nbytes, outcome, fault))

    def fault(self, process: int, kind: str, fault: str, effect: str, *,
              crashed: Iterable[int] = (), destroyed: bool = False,
              ranges: Iterable[tuple[str, int, int]] = (),
              entries: Iterable[str] = ()) -> FaultEvent:
        """Append what a fault did."""
        crashed, entries = tuple(crashed), tuple(entries)
        ranges = tuple((str(f), int(a), int(b)) for f, a, b in ranges)
        return self._append(lambda i: FaultEvent(i, process, kind, fault, effect, crashed,
                                                 destroyed, ranges, entries))

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Record]:
        return iter(list(self.records))

    def ops(self) -> list[Op]:
        return [r for r in self.records if isinstance(r, Op)]

    def fs_ops(self) -> list[FsOp]:
        return [r for r in self.records if isinstance(r, FsOp)]

    def faults(self) -> list[FaultEvent]:
        return [r for r in self.records if isinstance(r, FaultEvent)]

    # -- serialisation: JSON with bytes as {"b64": ...}, for reports and literal test histories

    def to_json(self) -> list[dict]:
        out = []
        for r in self.records:
            d = asdict(r)
            if isinstance(r, Op) and r.where is None:
                del d["where"]  # only a call that raised has one: older readers stay happy
            if isinstance(r, FaultEvent):
                # The event's own kind (power_loss...) must not clobber the record kind.
                d["fault_kind"] = d.pop("kind")
            kind = "op" if isinstance(r, Op) else "fs" if isinstance(r, FsOp) else "fault"
            out.append(_encode({"kind": kind, **d}))
        return out

    @classmethod
    def from_json(cls, data: Iterable[dict]) -> History:
        """Rebuild a history; indexes are taken from the data, in order given."""
        h = cls()
        for n, raw in enumerate(data):
            d = _decode(dict(raw))
            kind = d.pop("kind", "op")
            if kind not in _KINDS:
                raise ValueError(f"history record {n}: kind={kind!r}; expected op, fs or fault")
            d.setdefault("index", n)
            if kind == "fault":
                d["kind"] = d.pop("fault_kind", "unknown")
                d["crashed"] = tuple(d.get("crashed", ()))
                d["entries"] = tuple(d.get("entries", ()))
                d["ranges"] = tuple(tuple(r) for r in d.get("ranges", ()))
            h.records.append(_KINDS[kind](**d))
        return h


def _encode(obj: Any) -> Any:
    if isinstance(obj, bytes | bytearray):
        return {"b64": base64.b64encode(bytes(obj)).decode("ascii")}
    if isinstance(obj, dict):
        return {k: _encode(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_encode(v) for v in obj]
    return obj


def _decode(obj: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"b64"}:
            return base64.b64decode(obj["b64"])
        if set(obj) == {"text"}:  # literal histories may spell payloads as text
            return obj["text"].encode()
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    return obj


def dumps(history: History) -> str:
    return json.dumps(history.to_json(), indent=1)
