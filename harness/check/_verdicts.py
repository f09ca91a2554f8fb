"""The checker's explanations: which fault explains a verdict, and the sentence that says so.

Kept apart from `harness.check.checker` so that the rules (there) stay short enough
to read against docs/harness-design.md; everything here only describes.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from harness.check._trace import Call, EntryTrace, FaultMark, Trace
from harness.check.history import DRAIN, NEMESIS, FaultEvent, FsOp, Op
from harness.check.words import article, count

__all__ = [
    "who",
    "preview",
    "cite",
    "brief",
    "faults_between",
    "last_fault_before",
    "explaining_fault",
    "destroyer",
    "destroyed_between",
    "damager",
    "damage_reports",
    "swallowed_fault",
    "saw_error",
    "symptom_detail",
]


def who(process: int) -> str:
    if process == DRAIN:
        return "the drain"
    if process == NEMESIS:
        return "the nemesis"
    return f"process {process}"


def preview(payload: Any, limit: int = 32) -> str:
    if not isinstance(payload, bytes | bytearray):
        return repr(payload)
    return repr(bytes(payload[:limit])) + ("..." if len(payload) > limit else "")


def cite(mark: FaultMark) -> str:
    """``DiskFull(...) fired at op 4 (write q/journal.0 -> ENOSPC)``."""
    rec, what = mark.record, _what(mark.record)
    if not isinstance(rec, FsOp) and rec.crashed:
        what += f"; crashed {', '.join(who(p) for p in rec.crashed)}"
    return f"{mark.fault} fired at op {mark.index} ({what})"


def _what(rec: FsOp | FaultEvent) -> str:
    """The call a fault failed and how, or what the fault did."""
    if isinstance(rec, FsOp):
        what = " ".join(x for x in (rec.call, rec.path, rec.path2 and f"-> {rec.path2}") if x)
        return what + f" -> {rec.outcome}"
    return rec.effect


def brief(mark: FaultMark) -> str:
    """What a fault did, then which fault and where, with no entry in it, so entries that
    share a cause share the sentence: ``power lost; dropped q/ (...) (PowerLoss at op 69)``."""
    return f"{_what(mark.record)} ({mark.fault.split('(')[0]} at op {mark.index})"


def _idx(mark: FaultMark) -> int:
    return mark.index


def _window(marks: list[FaultMark], lo: int, hi: int) -> list[FaultMark]:
    """Marks with ``lo <= index < hi`` (marks are in history order)."""
    return marks[bisect_left(marks, lo, key=_idx):bisect_left(marks, hi, key=_idx)]


def faults_between(marks: list[FaultMark], lo: int, hi: int) -> tuple[str, ...]:
    """Reprs of the faults that fired in ``[lo, hi)``, each once, first firing first."""
    return tuple(dict.fromkeys(m.fault for m in _window(marks, lo, hi)))


def last_fault_before(marks: list[FaultMark], index: int) -> FaultMark | None:
    """The latest fault that fired before ``index``, if any."""
    found = _window(marks, -1, index)
    return found[-1] if found else None


def _best(marks: list[FaultMark], lo: int, hi: int) -> FaultMark | None:
    """The fault in ``(lo, hi)`` most likely to explain a missing or wrong entry.

    A power loss or a deletion explains more than a kill or an error returned by
    one call, which the target may well have handled; so those come first.
    """
    found = _window(marks, lo + 1, hi)
    tiers = (
        lambda r: isinstance(r, FaultEvent) and (r.destroyed or r.kind in (
            "power_loss", "corruption")),
        lambda r: True,
    )
    for tier in tiers:
        for mark in found:
            if tier(mark.record):
                return mark
    return None


def explaining_fault(entry: EntryTrace, facts: Trace, symptom: str) -> FaultMark | None:
    """The fault the detail sentence should name for this symptom, if any fired."""
    marks = facts.marks
    if symptom == "duplicate":
        dup = entry.duplicates[0]
        return _best(marks, dup.earlier, dup.claim) or _best(marks, entry.first - 1, dup.claim)
    if symptom == "corrupt":
        return _best(marks, entry.first - 1, entry.corrupt[0].done.index)
    if symptom == "lost" and entry.released:
        cause = entry.released[-1].cause
        if cause is not None:  # claimed, then its processor crashed: that crash is the story
            return next((m for m in marks if m.record is cause), None)
    return _best(marks, entry.last_seen, facts.end) or _best(marks, entry.first - 1, facts.end)


def _destroys(rec: FsOp | FaultEvent, key: str | None) -> bool:
    # A fault that names the entries it may have taken (a removed file) took only those.
    return isinstance(rec, FaultEvent) and rec.destroyed and (
        not rec.entries or key is None or key in rec.entries)


def destroyed_between(facts: Trace, lo: int, hi: int, key: str | None = None) -> bool:
    """Did a fault delete data (of entry ``key``, when given) in ``(lo, hi)``?"""
    return any(_destroys(m.record, key) for m in _window(facts.marks, lo + 1, hi)) or (
        damager(key, facts, lo, hi) is not None)


def destroyer(entry: EntryTrace, facts: Trace) -> FaultMark | None:
    """A fault that deleted data after the entry was last seen (so it took the only copy),
    or damage at rest that may have held it and that the target reported. (Not "after it
    was last seen" for damage: a claim handed out of memory afterwards wrote no new copy of
    its bytes, and where they lay was looked up when the damage struck.)"""
    for mark in _window(facts.marks, entry.last_seen + 1, facts.end):
        if _destroys(mark.record, entry.key):
            return mark
    return damager(entry.key, facts, entry.first, facts.end)


def damager(key: str | None, facts: Trace, lo: int, hi: int) -> FaultMark | None:
    """Damage at rest in ``(lo, hi)`` whose bytes may have held entry ``key`` and that the
    target reported (see harness.faults.damage): it destroyed the entry; unreported, it did not."""
    for mark in _window(facts.marks, lo + 1, hi):
        rec = mark.record
        if (isinstance(rec, FaultEvent) and rec.kind == "corruption" and key in rec.entries
                and rec.index in facts.reports):
            return mark
    return None


def damage_reports(records: list, marks: list[FaultMark]) -> dict[int, str]:
    """For each damage at rest (its index), how the target reported it, if it did: a call
    that raised (not in a crash, no injected error inside it), or a file call that set the
    damaged file aside (replace or copy from it) or cut the damaged bytes off (truncate)."""
    events = [m.record for m in marks if isinstance(m.record, FaultEvent)
              and m.record.kind == "corruption" and m.record.ranges]
    out: dict[int, str] = {}
    for ev in events:
        start = {}
        for path, a, _b in ev.ranges:
            start[path] = min(a, start.get(path, a))
        hit: dict[int, bool] = {}  # process -> a fault struck inside its call in flight
        for rec in records:
            if rec.index <= ev.index or rec.process == NEMESIS:
                continue
            if isinstance(rec, Op) and rec.type == "invoke":
                hit[rec.process] = False
            elif isinstance(rec, FaultEvent) or (isinstance(rec, FsOp) and rec.fault):
                hit[rec.process] = True
            if isinstance(rec, Op) and rec.type == "info" and rec.f != "repair" and not (
                    hit.get(rec.process) or (rec.error or "").startswith("processor ")):
                out[ev.index] = (f"{who(rec.process)}'s {rec.f} raised at op {rec.index} "
                                 f"({(rec.error or '')[:100]})")
            elif (isinstance(rec, FsOp) and rec.outcome == "ok" and rec.path in start and (
                    rec.call in ("replace", "copy") or (
                        rec.call == "truncate" and rec.nbytes is not None
                        and rec.nbytes <= start[rec.path]))):
                what = "set it aside" if rec.call != "truncate" else "cut the damaged bytes off"
                out[ev.index] = f"{who(rec.process)} {what} at op {rec.index} ({rec.call})"
            if ev.index in out:
                break
    return out


# Failures that are questions, not failed writes: probing for a file, a lock held by
# someone else, a directory that already exists. A correct queue meets them all the time.
_PROBES = frozenset({"stat", "listdir", "lock", "seek", "read", "close"})
# (An open that finds no file is usually a reader asking whether it exists; the history
# does not keep the open's mode, so it is not taken for a failed write.)
# A directory built aside and renamed into place loses a race to another one the same way:
# rename(2) answers ENOTEMPTY (or EEXIST) and the loser uses the winner's.
_BENIGN = {("mkdir", "EEXIST"), ("open", "EEXIST"), ("open", "ENOENT"), ("unlink", "ENOENT"),
           ("rmdir", "ENOENT"), ("replace", "ENOTEMPTY"), ("replace", "EEXIST")}
# Inside a claim only: a lock on an entry taken by hard link that someone else holds, or an
# entry taken by rename that another processor took first: the claim moves on to the next
# entry. (Inside an enqueue or an ack the same ENOENT is a save that failed: the incident.)
_CLAIM_RACES = {("link", "EEXIST"), ("replace", "ENOENT"), ("open", "EEXIST")}


def saw_error(rec: FsOp, f: str | None = None) -> bool:
    """Did the target get an error back from this call that means a change did not happen?
    ``f``: the client call it happened in (a claim races for entries)."""
    if rec.outcome in ("ok", "killed"):
        return False
    if f == "claim" and not rec.fault and (rec.call, rec.outcome) in _CLAIM_RACES:
        return False
    if rec.fault:
        return True  # an error the harness injected into it
    return rec.call not in _PROBES and (rec.call, rec.outcome) not in _BENIGN


def _retried(facts: Trace, rec: FsOp, end: int) -> bool:
    """Did the same call on the same path succeed later inside the same client call? Then
    the target retried it (or took another way to the same effect): nothing was swallowed.
    Not for an fsync: one that succeeds after a failure does not bring back the pages the
    failure dropped (fsyncgate), so trusting the retry is the bug itself."""
    if rec.call in ("fsync", "dirsync"):
        return False
    oks = facts.retried.get((rec.process, rec.call, rec.path, rec.path2), ())
    i = bisect_left(oks, rec.index + 1)
    return i < len(oks) and oks[i] < end


def swallowed_fault(entry: EntryTrace, facts: Trace) -> tuple[Call, FaultMark] | None:
    """The first call on the entry that returned ok although a file call inside it failed."""
    calls = sorted(entry.enqueues + entry.claims + entry.acks, key=lambda c: c.invoke.index)
    starts = [rec.index for rec in facts.errors]
    for call in calls:
        if call.outcome != "ok":
            continue
        lo = bisect_left(starts, call.invoke.index + 1)
        for rec in facts.errors[lo:]:
            if rec.index >= call.done.index:
                break
            if rec.process == call.process and saw_error(rec, call.invoke.f) and not _retried(
                    facts, rec, call.done.index):
                label = rec.fault or (f"{article(rec.outcome)} {rec.outcome} error "
                                      "(no fault of ours)")
                return call, FaultMark(rec.index, rec.process, label, rec)
    return None


# A call's outcome as the README words it: "info" is a call that raised or whose
# processor died, so its effect is unknown; "fail" one known to have had no effect.
_ENDED = {"info": "ended unknown", "fail": "failed"}


def _enqueue_story(entry: EntryTrace) -> str:
    ok = entry.enqueue_ok()
    if ok is not None:
        return f"enqueue returned ok at op {ok.done.index}"
    if not entry.enqueues:
        return "never enqueued"
    last = entry.enqueues[-1]
    at = last.done.index if last.done is not None else last.invoke.index
    story = f"enqueue {_ENDED.get(last.outcome, last.outcome)} at op {at}"
    if entry.claims:
        story += f" but it came out at op {entry.claims[0].done.index}"
    return story


def _lost(entry: EntryTrace, facts: Trace, story: str) -> str:
    if entry.status == "held":
        holder, since = next(iter(entry.holders.items()))
        return (f"{story}; still held by {who(holder)} (claim at op {since}) when the "
                "history ended with no final drain")
    gone = "never came out"
    if entry.released:
        rel = entry.released[-1]
        story += (f"; claimed by {who(rel.process)} at op {rel.claim}, released when "
                  f"{rel.why} at op {rel.at}")
        gone = "never came out again"
    where = ("of the final drain" if facts.drain_start is not None
             else "(the history has no final drain)")
    return f"{story}; {gone} {where}"


def _stuck(entry: EntryTrace, story: str) -> str:
    parts = [story]
    claim = entry.claims[-1] if entry.claims else None
    if claim is not None and claim.process == DRAIN:
        after = claim.done.index
        acks = [a for a in entry.acks if a.process == DRAIN and a.invoke.index > after]
        if acks:
            end = acks[-1].done.index if acks[-1].done is not None else acks[-1].invoke.index
            how = f"its ack {_ENDED.get(acks[-1].outcome, acks[-1].outcome)} at op {end}"
        else:
            how = "never acked it"
        parts.append(f"the drain claimed it at op {after} but {how}")
    if entry.final_state is not None:
        at, ident, state = entry.final_state
        parts.append(f"the final states() at op {at} shows queue id {ident} {state}")
        if len(parts) == 2:
            parts[-1] += ": the drain could not claim it"
    return "; ".join(parts)


def _duplicate(entry: EntryTrace, story: str) -> str:
    dup = entry.duplicates[0]
    if dup.reason == "acked":
        text = (f"{story}; an ack of it by {who(dup.earlier_process)} returned ok at op "
                f"{dup.earlier}, yet {who(dup.process)} claimed it again at op {dup.claim}")
    else:
        text = (f"{story}; {who(dup.process)} claimed it at op {dup.claim} while "
                f"{who(dup.earlier_process)} still held it from its claim at op "
                f"{dup.earlier} (no crash, restart, close or failed ack of it in between)")
    if len(entry.duplicates) > 1:
        text += f" ({len(entry.duplicates)} duplicate claims in all)"
    return text


def _corrupt(entry: EntryTrace, story: str) -> str:
    bad = entry.corrupt[0]
    got, want = bad.done.value.get("payload"), entry.payload or b""
    got = got.encode() if isinstance(got, str) else bytes(got or b"")
    if len(got) < len(want) and want.startswith(got):
        how = "truncated"
    elif got.startswith(want):
        how = "with bytes appended"
    else:
        how = "altered"
    return (f"{story}; the claim by {who(bad.process)} at op {bad.done.index} returned "
            f"{count(len(got), 'byte')} {preview(got)}, {how}: {count(len(want), 'byte')} "
            f"{preview(want)} "
            f"were enqueued at op {entry.enqueues[0].invoke.index}")


def symptom_detail(symptom: str, entry: EntryTrace, facts: Trace) -> str:
    """What went wrong, without the ``entry eN:`` prefix and without the fault."""
    story = _enqueue_story(entry)
    if symptom == "lost":
        return _lost(entry, facts, story)
    if symptom == "stuck":
        return _stuck(entry, story)
    if symptom == "duplicate":
        return _duplicate(entry, story)
    if symptom == "corrupt":
        return _corrupt(entry, story)
    return story
