"""The checker: a verdict for every entry of a history, and the violations among them.

``check(history) -> Result`` is pure: no I/O, no clock, no randomness; the same
history gives the same result, violations in the same order. Vocabulary after
Jepsen's ``total-queue`` (what goes in must come out), made stricter for a
queue with claims and acks; the rules are those of docs/harness-design.md:

- ``delivered``: an ack of it returned ok (or ended unknown and it never came
  out again), and it did not come out again after an ack ok;
- ``recovered``: its enqueue ended unknown or failed, yet it came out intact
  and was delivered;
- ``destroyed``: it would be lost, but a fault that deleted data
  (``FaultEvent.destroyed``; of this entry, when the event names its entries) came
  after the last time it was seen; or it came out again after an ack ok (or while
  claimed), with such a fault in between. Damage at rest (``corruption``) counts
  only for the entries that may have lain in it, and only once the target reported
  it (a call raised, or it set the file aside or cut the damage off: harness.faults.damage);
- ``indeterminate``: its enqueue ended unknown and it never came out;
- ``failed``: its enqueue failed and it never came out (the call kept its word);
- ``lost``: it had to come out (enqueue ok, or a claim of it released by a
  crash, restart, close or failed ack) and never did;
- ``duplicate``: it came out after an ack ok, or while another claim of it was
  still held by a live processor;
- ``stuck``: the drain's ``states()`` shows it PENDING or PROCESSING, or the
  drain claimed it and could not ack it;
- ``corrupt``: a claim returned its key with other bytes than were enqueued;
- ``phantom`` (per queue id): a claim returned a payload no enqueue invoked;
- ``silent_error``: lost, stuck or duplicate, and a call on the entry returned
  ok although a file call inside it failed and was not retried (the incident's
  "logged and swallowed");
- ``unavailable`` (for the queue, not an entry; added by the runner): once every fault
  was healed, a fresh processor could not open the queue, enqueue a new entry, claim
  it and ack it (TigerBeetle's liveness phase): a queue that never recovers.

A claim that was under way when an ack of the same entry returned may have taken effect
before that ack (the order Knossos would try), so it is a duplicate only if another
processor held the entry when the ack came. A claim that returns a known queue id with
bytes that no longer carry the entry's key is that entry, corrupt (not a loss plus a
phantom).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.check._trace import Call, EntryTrace, FaultMark, Phantom, Trace, trace
from harness.check._verdicts import (
    brief,
    cite,
    damage_reports,
    destroyed_between,
    destroyer,
    explaining_fault,
    faults_between,
    last_fault_before,
    preview,
    swallowed_fault,
    symptom_detail,
    who,
)
from harness.check.history import DRAIN, History

__all__ = [
    "VERDICTS",
    "VIOLATIONS",
    "COUNTS",
    "Violation",
    "Result",
    "check",
    "NO_FAULT",
]

VERDICTS = (
    "delivered", "recovered", "destroyed", "indeterminate", "failed",
    "lost", "duplicate", "stuck", "phantom", "corrupt", "silent_error", "unavailable",
)
"""Every verdict an entry (or, for ``phantom``, a queue id) can get."""

VIOLATIONS = ("lost", "duplicate", "stuck", "phantom", "corrupt", "silent_error",
              "unavailable")
"""The verdicts that make a history invalid."""

SILENT_SYMPTOMS = ("lost", "stuck", "duplicate")
"""Symptoms that become ``silent_error`` when a call on the entry swallowed a fault."""

COUNTS = VERDICTS + ("enqueued", "enqueue_ok", "acked")
"""Keys of `Result.counts`: one per verdict, then entries invoked, enqueued ok, acked ok."""


@dataclass(frozen=True)
class Violation:
    """One entry (or phantom queue id) that broke the contract, and why, in a sentence."""

    kind: str
    entry: str
    ops: tuple[int, ...]
    faults: tuple[str, ...]
    detail: str
    tags: tuple[str, ...] = ()  # "released": it had been claimed and the claim let go;
    # "claim_died": a claim whose processor died in it (outcome unknown) may have taken it
    # Why, without the entry's own story: the sentence entries that share a cause share
    # (harness.check.causes groups by it); not in to_dict, whose detail already ends with it.
    cause: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = {"kind": self.kind, "entry": self.entry, "detail": self.detail,
             "ops": list(self.ops), "faults": list(self.faults)}
        if self.tags:
            d["tags"] = list(self.tags)
        return d


@dataclass(frozen=True)
class Result:
    """What the checker concluded: valid iff there is no violation."""

    valid: bool
    violations: tuple[Violation, ...]
    counts: dict[str, int]
    entries: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"valid": self.valid, "violations": [v.to_dict() for v in self.violations],
                "counts": dict(self.counts), "entries": dict(self.entries)}


def check(history: History) -> Result:
    """Every entry's verdict and the violations of `history` (which should end with a drain)."""
    facts = trace(history)
    facts.reports = damage_reports(history.records, facts.marks)
    entries: dict[str, str] = {}
    violations: list[Violation] = []
    for entry in facts.entries.values():
        verdict, violation = _judge(entry, facts)
        entries[entry.key] = verdict
        if violation is not None:
            violations.append(violation)
    for phantom in facts.phantoms.values():
        entries[phantom.name] = "phantom"
        violations.append(_phantom(phantom, facts))
    # Sorted by where the story starts, so the first violation listed is the earliest one.
    violations.sort(key=lambda v: (v.ops[0] if v.ops else -1, v.entry, v.kind))
    counts = dict.fromkeys(COUNTS, 0)
    for verdict in entries.values():
        counts[verdict] += 1
    counts["enqueued"] = sum(1 for e in facts.entries.values() if e.enqueues)
    counts["enqueue_ok"] = sum(1 for e in facts.entries.values() if e.enqueue_ok())
    counts["acked"] = sum(1 for e in facts.entries.values() if e.acked_at is not None)
    return Result(not violations, tuple(violations), counts, entries)


def _symptom(entry: EntryTrace) -> str:
    """The entry's verdict before silent errors and destruction are considered."""
    drain_held = bool(entry.claims) and entry.claims[-1].process == DRAIN
    if entry.final_state is not None or (entry.status in ("owed", "held") and drain_held):
        return "stuck"  # there, but the drain could not get it out: worse than lost
    if entry.corrupt:
        return "corrupt"
    if entry.duplicates:
        return "duplicate"
    if entry.status in ("owed", "held"):
        return "lost"
    enqueued_ok = entry.enqueue_ok() is not None
    if entry.status in ("done", "maybe_done"):
        return "delivered" if enqueued_ok else "recovered"
    unknown = any(c.outcome == "info" for c in entry.enqueues)
    return "indeterminate" if unknown else "failed"


def _judge(entry: EntryTrace, facts: Trace) -> tuple[str, Violation | None]:
    symptom = _symptom(entry)
    swallowed = swallowed_fault(entry, facts) if symptom in SILENT_SYMPTOMS else None
    if swallowed is None and symptom == "lost" and destroyer(entry, facts) is not None:
        return "destroyed", None
    if swallowed is None and symptom == "duplicate" and all(
            destroyed_between(facts, d.earlier, d.claim, entry.key) for d in entry.duplicates):
        # The record of its ack (or of the claim held) went with the deleted files: a
        # queue rebuilding from what survived, or from memory, cannot know of it.
        return "destroyed", None
    if symptom not in VIOLATIONS:
        return symptom, None
    ops = entry.ops()
    # Loss and stuckness can be explained by anything up to the drain; the others by
    # what happened up to the entry's last call.
    upto = facts.end if symptom in ("lost", "stuck") else ops[-1] + 1
    faults = faults_between(facts.marks, entry.first, upto)
    body = symptom_detail(symptom, entry, facts)
    kind = symptom
    if swallowed is not None:
        call, mark = swallowed
        kind = "silent_error"
        body = (f"{symptom}: {body}; {_call_name(call)} (op {call.invoke.index} to "
                f"{call.done.index}) returned ok although {cite(mark)} inside it: "
                "the error was swallowed")
        faults = _with_first(faults, mark)
        cause = (f"{symptom}: {_A_CALL.get(call.invoke.f, call.invoke.f)} returned ok although "
                 f"{_failed(mark)} inside it: the error was swallowed")
    else:
        reason = explaining_fault(entry, facts, symptom)
        if reason is not None:
            body += f"; {cite(reason)}"
            cause = brief(reason)
            rec = reason.record
            if getattr(rec, "kind", "") == "corruption" and rec.index not in facts.reports:
                unreported = (": the target never reported that damage (no call raised, the "
                              "file was neither set aside nor cut)")
                body += unreported
                cause += unreported
        else:
            # An earlier fault can still be the cause (a stale lock left by a kill).
            earlier = last_fault_before(facts.marks, entry.first)
            body += "; no fault fired around it"
            cause = f"{NO_FAULT} {_SPAN.get(symptom, _SPAN['lost'])}"
            if earlier is not None:
                body += f" (the last one before it: {cite(earlier)})"
                cause += (f" (the last one before the enqueue: {earlier.fault.split('(')[0]} "
                          f"at op {earlier.index})")
    tags = ("released",) if entry.released else ()
    if symptom == "lost" and any(end > entry.first for end in facts.dead_claims):
        tags += ("claim_died",)  # a claim that died after it was enqueued may have taken it
    return kind, Violation(kind, entry.key, ops, faults, f"entry {entry.key}: {body}", tags,
                           cause)


def _phantom(phantom: Phantom, facts: Trace) -> Violation:
    first = phantom.claims[0]
    ops = tuple(sorted({c.done.index for c in phantom.claims if c.done is not None}))
    value = first.done.value if first.done is not None else {}
    payload = value.get("payload") if isinstance(value, dict) else None
    why = ("whose key does not parse" if phantom.key is None
           else f"with key {phantom.key}, which no enqueue ever invoked")
    body = (f"queue id {phantom.name}: claim by {who(first.process)} returned at op "
            f"{ops[0]} a payload {preview(payload)} {why}")
    if len(ops) > 1:
        body += f" (claimed {len(ops)} times: ops {', '.join(map(str, ops))})"
    faults = faults_between(facts.marks, -1, ops[-1] + 1)
    return Violation("phantom", phantom.name, ops, faults, body,
                     cause="a claim returned a payload " + (
                         "whose key does not parse" if phantom.key is None
                         else "with a key no enqueue ever invoked"))


NO_FAULT = "no fault fired"
"""How the cause of a violation no fault explains begins (harness.check.causes adds the
target's own exceptions to it)."""

_SPAN = {"lost": "from the enqueue to the end of the run",
         "stuck": "from the enqueue to the end of the run",
         "duplicate": "from the enqueue to the second claim",
         "corrupt": "from the enqueue to the claim that returned other bytes"}
_A_CALL = {"enqueue": "an enqueue", "ack": "an ack", "claim": "a claim"}


def _failed(mark: FaultMark) -> str:
    """A failed file call, without its op number: ``write q/x -> ENOSPC (DiskFull)``."""
    rec = mark.record
    what = " ".join(x for x in (rec.call, rec.path, rec.path2 and f"-> {rec.path2}") if x)
    by = rec.fault.split("(")[0] if rec.fault else "no fault of ours"
    return f"{what} -> {rec.outcome} ({by})"


def _call_name(call: Call) -> str:
    return {"enqueue": "its enqueue", "ack": "an ack of it", "claim": "the claim that returned it"
            }.get(call.invoke.f, call.invoke.f)


def _with_first(faults: tuple[str, ...], mark: FaultMark) -> tuple[str, ...]:
    return faults if mark.fault in faults else (mark.fault, *faults)
