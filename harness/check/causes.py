"""Why a scenario failed, in one sentence per cause: violations grouped, the target's errors named.

A power loss that drops 12 entries is one cause, not 12 sentences; a store whose own
``json.loads`` raised in 71 calls lost its entries to that, not to "no fault". So:

- `target_errors`: the calls of the target that raised by themselves (no fault injected
  inside the call, the processor not killed), grouped by exception, message and the
  line of the target that raised it (`harness.check.words.raised_at`), most frequent first;
- `group`: the violations grouped by kind and cause (`checker.Violation.cause`), each
  group one sentence naming how many entries, which (the first few), and why; where no
  fault explains them and the target raised, the sentence names its most frequent
  exception and where;
- `cause_lines` and `scenario_facts`: what the terminal and the Markdown summary print.

The run JSON keeps every violation's own detail; the groups are its ``causes`` key, and
the terminal and the Markdown summary print them.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from harness.check.checker import NO_FAULT
from harness.check.history import FaultEvent, FsOp, History, Op, entry_key
from harness.check.words import count, ids

__all__ = ["cause_lines", "errors_sentence", "group", "scenario_facts", "target_errors"]

_DIGITS = re.compile(r"\d+")
_MAX_CAUSE = 400  # characters of a story in a line; the JSON keeps the whole detail

# How a group of each kind is counted and what happened to it.
_HEADS = {"lost": ("entry", "lost"), "stuck": ("entry", "stuck"),
          "duplicate": ("entry", "delivered twice"), "corrupt": ("entry", "corrupted"),
          "silent_error": ("silent error", ""), "phantom": ("phantom queue id", "")}


def target_errors(history: History) -> list[dict[str, Any]]:
    """The target's own exceptions: ``{"error", "where", "count", "calls": {f: n}}`` each,
    most frequent first. A call an injected fault hit, or whose processor was killed, is
    the fault's doing and not counted."""
    hit: dict[int, bool] = {}  # process -> a fault struck inside its call in flight
    groups: dict[tuple, dict[str, Any]] = {}
    for rec in history.records:
        if isinstance(rec, FaultEvent):
            for p in (rec.process, *rec.crashed):
                hit[p] = True
        elif isinstance(rec, FsOp) and rec.fault:
            hit[rec.process] = True
        elif isinstance(rec, Op):
            if rec.type == "invoke":
                hit[rec.process] = False
            elif rec.type == "info" and rec.error and not hit.get(rec.process) and not (
                    rec.error.startswith("processor ")):
                kind, _, message = rec.error.partition(": ")
                # Grouped with its digits masked, shown as first raised: a real message
                # whose positions may differ from call to call ("line 1 column 837").
                key = (kind, rec.where, _DIGITS.sub("#", message))
                g = groups.setdefault(key, {"error": rec.error, "where": rec.where,
                                            "count": 0, "calls": collections.Counter()})
                g["count"] += 1
                g["calls"][rec.f] += 1
    out = sorted(groups.values(), key=lambda g: -g["count"])
    for g in out:
        g["calls"] = dict(g["calls"].most_common())
    return out


def errors_sentence(errors: Sequence[dict[str, Any]]) -> str:
    """``the target itself raised JSONDecodeError: Extra data at store.py:41 in _load,
    in 71 calls (40 claim, 31 enqueue)``, naming the most frequent when there are several."""
    if not errors:
        return ""
    top = errors[0]
    where = f" at {top['where']}" if top.get("where") else ""
    calls = ", ".join(f"{n} {f}" for f, n in top["calls"].items())
    total = sum(e["count"] for e in errors)
    if len(errors) == 1:
        return (f"the target itself raised {top['error']}{where}, in "
                f"{count(top['count'], 'call')} ({calls})")
    return (f"the target itself raised in {count(total, 'call')}, most often "
            f"{top['error']}{where} ({count(top['count'], 'call')}: {calls})")


def group(violations: Iterable[Any], errors: Sequence[dict[str, Any]] = (),
          processors: int = 1) -> list[dict[str, Any]]:
    """Violations (`checker.Violation`s, or their dicts) -> ``{"kind", "cause", "count",
    "entries", "text"}`` per cause, in the order of each cause's first violation.
    ``processors``: how many the run had (with several, the processors switching at file
    calls is itself a fault, though no history record cites it)."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    stories: dict[tuple[str, str], str] = {}  # the first entry's detail, for a group of one
    for v in violations:
        get = v.get if isinstance(v, dict) else lambda k, v=v: getattr(v, k, None)
        kind, entry = str(get("kind")), str(get("entry"))
        cause = get("cause") or _after_story(str(get("detail") or ""), entry)
        g = groups.setdefault((kind, cause), {"kind": kind, "cause": cause, "count": 0,
                                              "entries": []})
        g["count"] += 1
        g["entries"].append(entry)
        stories.setdefault((kind, cause), _after_story(str(get("detail") or ""), entry))
    out = list(groups.values())
    for g in out:
        g["text"] = _sentence(g, errors, stories[(g["kind"], g["cause"])], processors)
    return out


def _after_story(detail: str, entry: str) -> str:
    """A cause for a violation that has none of its own: its detail without the prefix."""
    prefix = f"entry {entry}: "
    return detail[len(prefix):] if detail.startswith(prefix) else detail


def _sentence(g: dict[str, Any], errors: Sequence[dict[str, Any]], story: str,
              processors: int) -> str:
    """The group's line: a group of one tells its entry's whole story (op numbers and
    all), a larger group how many, which and the cause they share."""
    kind, entries = g["kind"], g["entries"]
    alone = len(entries) == 1
    cause = story if alone else g["cause"]
    if len(cause) > _MAX_CAUSE:
        cause = cause[:_MAX_CAUSE - 3] + "..."
    if not alone and processors > 1 and cause.startswith(NO_FAULT):
        head, sep, rest = cause.partition(" (the last one before")
        cause = f"{head}, only {processors} processors interleaving{sep}{rest}"
    if g["cause"].startswith(NO_FAULT) and errors:  # never cut: it is what to fix
        cause += "; " + errors_sentence(errors)
    if alone or kind not in _HEADS or not all(
            entry_key(f"{e}|".encode()) or kind == "phantom" for e in entries):
        # one entry, the queue, a processor: named
        return f"{kind} {', '.join(dict.fromkeys(entries))}: {cause}"
    noun, verb = _HEADS[kind]
    head = " ".join(x for x in (count(g["count"], noun), verb) if x)
    return f"{head} ({ids(entries)}): {cause}"


def cause_lines(scenario: Mapping[str, Any]) -> list[str]:
    """One sentence per cause (`group`): ``12 entries lost (e3, e5, e9, ... 9
    more): ...``; from the run's ``causes``, or grouped here for a JSON that has none."""
    causes = scenario.get("causes")
    if causes is None:
        causes = group(scenario.get("violations") or [], scenario.get("target_errors") or [])
    return [str(c.get("text")) for c in causes]


def scenario_facts(s: Mapping[str, Any]) -> str:
    """``2 faults fired, 1360 ops (987 file calls), 25 entries``: "ops" counts what the
    details number ("at op 905": every client call, file call and fault of the history)."""
    ops = count(int(s.get("ops") or 0), "file call")
    if s.get("history_ops") is not None:
        ops = f"{count(int(s['history_ops']), 'op')} ({ops})"
    return (f"{count(int(s.get('faults_fired') or 0), 'fault')} fired, {ops}, "
            f"{count(int(s.get('entries') or 0), 'entry')}")
