"""Draw one scenario's timeline (`timeline`) as inline SVG, by entry or by processor.

The x axis is the history index (the ``op`` numbers the checker's sentences cite), so a
violation's ops land exactly on the calls they name. By entry, each lane follows one
entry through its states (being enqueued, waiting in the queue, held by a claim,
delivered, outcome unknown) and, when it was lost, a dashed red line from the fault
that lost it (or from its last call, when no fault explains it) to the end; by
processor, each lane shows a processor's calls as bars, and a call that raised is
pale with a dashed dark outline (red stays the violations' colour). Faults are purple
triangles with a dashed line down every lane, the runner's stops are black crosses,
violations are red rings that link to their explanation. Everything is plain SVG with
``<title>`` tooltips: no script, no font files.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from harness.report import printable
from harness.report.timeline import CALL_FIELDS, MARK_FIELDS

__all__ = ["COLOURS", "MAX_ENTRY_LANES", "entry_svg", "processor_svg", "legend_items"]

COLOURS = {
    "enqueueing": "#c6dbef",
    "pending": "#4e79a7",
    "held": "#f28e2b",
    "delivered": "#59a14f",
    "unknown": "#a0a0a0",
    "fault": "#8e44ad",
    "kill": "#222222",
    "violation": "#d62728",
    "lost": "#d62728",  # a lost entry's line: a violation, so the violations' red
    "raised": "#3d3d3d",  # outline of a call that raised
    "drain": "#eeeeee",
    "enqueue": "#4e79a7",
    "claim": "#f28e2b",
    "ack": "#59a14f",
    "other": "#b8b8b8",
}
"""One colour per meaning; the browser test looks for some of them in the screenshot."""

MAX_ENTRY_LANES = 60
"""Entries drawn at most; the violating ones always are, the rest in key order."""

_LABEL_W, _PLOT_W, _LANE_H, _TOP, _BOTTOM = 150, 960, 16, 36, 26
_BAR_H = 10
_RAISED_FILL = "#e6e6e6"  # legend swatch; the bars keep their call's colour, faded


def _esc(value: Any) -> str:
    # details quote raw payload bytes: no markup and no control characters in a tooltip
    return escape(printable(value))


def legend_items(view: str) -> list[tuple[str, str]]:
    """(swatch CSS, words) pairs for the legend of a view ("entry" or "processor")."""
    if view == "entry":
        states = [("enqueueing", "enqueue in flight"), ("pending", "in the queue"),
                  ("held", "claimed, not yet acked"), ("delivered", "acked"),
                  ("unknown", "outcome unknown")]
        extra = [(f"height:0;border-top:2px dashed {COLOURS['lost']}",
                  "lost (from the fault, or from its last call)")]
    else:
        states = [("enqueue", "enqueue"), ("claim", "claim"), ("ack", "ack"),
                  ("other", "open / recover / close")]
        extra = [(f"background:{_RAISED_FILL};border:1px dashed {COLOURS['raised']}",
                  "call raised (hover: its exception)")]
    return [(f"background:{COLOURS[k]}", words) for k, words in states] + extra + [
        (f"background:{COLOURS['fault']}", "fault fired"),
        (f"background:{COLOURS['kill']}", "processor stopped"),
        (f"background:{COLOURS['violation']}", "violation (click: explanation)")]


def _rows(timeline: Mapping[str, Any], part: str, fields: Sequence[str]) -> list[dict]:
    names = (timeline.get("fields") or {}).get(part) or list(fields)
    return [dict(zip(names, row, strict=False)) for row in timeline.get(part) or []]


class _Frame:
    """Coordinates of one picture: lanes down, history index across."""

    def __init__(self, end: int, lanes: int) -> None:
        self.end = max(int(end), 1)
        self.lanes = lanes
        self.width = _LABEL_W + _PLOT_W + 20
        self.height = _TOP + lanes * _LANE_H + _BOTTOM

    def x(self, index: float) -> float:
        return round(_LABEL_W + _PLOT_W * min(max(index, 0), self.end) / self.end, 1)

    def y(self, lane: int) -> float:
        return _TOP + lane * _LANE_H


def _who(p: int) -> str:
    return {-1: "drain", -2: "all"}.get(p, f"p{p}")


def _open(frame: _Frame, label: str) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" role="img" '
            f'width="{frame.width}" height="{frame.height}" '
            f'viewBox="0 0 {frame.width} {frame.height}" aria-label="{_esc(label)}">',
            f'<rect x="0" y="0" width="{frame.width}" height="{frame.height}" fill="#ffffff"/>']


def _axis(frame: _Frame, timeline: Mapping[str, Any]) -> list[str]:
    out = []
    drain = timeline.get("drain_at")
    bottom = frame.y(frame.lanes)
    if drain is not None:
        x0 = frame.x(drain)
        out.append(f'<rect x="{x0}" y="{_TOP - 4}" width="{frame.x(frame.end) - x0}" '
                   f'height="{bottom - _TOP + 4}" fill="{COLOURS["drain"]}">'
                   '<title>final drain: faults healed, every processor stopped, a fresh '
                   'queue opened, recovered and emptied</title></rect>')
        out.append(f'<text x="{frame.x(frame.end)}" y="{_TOP - 20}" class="small" '
                   'text-anchor="end">final drain</text>')
    step = _nice_step(frame.end)
    tick = 0
    while tick <= frame.end:
        x = frame.x(tick)
        out.append(f'<line x1="{x}" y1="{bottom}" x2="{x}" y2="{bottom + 4}" stroke="#666"/>')
        out.append(f'<text x="{x}" y="{bottom + 15}" class="small" '
                   f'text-anchor="middle">{tick}</text>')
        tick += step
    out.append(f'<line x1="{_LABEL_W}" y1="{bottom}" x2="{frame.x(frame.end)}" y2="{bottom}" '
               'stroke="#666"/>')
    out.append(f'<text x="{_LABEL_W - 6}" y="{bottom + 15}" class="small" '
               'text-anchor="end">op</text>')
    return out


def _nice_step(end: int) -> int:
    raw = max(end / 10, 1)
    base = 10 ** math.floor(math.log10(raw))
    return int(next(m * base for m in (1, 2, 5, 10) if m * base >= raw))


def _marks(frame: _Frame, marks: list[dict], faults: Sequence[str],
           lane_of: Mapping[int, int] | None) -> list[str]:
    """Faults: a triangle on top and a dashed line through the lanes (or on one lane)."""
    out = []
    bottom = frame.y(frame.lanes)
    for m in marks:
        x = frame.x(m["index"])
        ref = m.get("fault")
        name = faults[ref] if isinstance(ref, int) and 0 <= ref < len(faults) else ""
        tip = _esc(f"op {m['index']}, {_who(m['process'])}: {name or m['kind']}: {m['what']}")
        if m["kind"] == "kill":
            lanes = [lane_of[p] for p in m.get("crashed") or [] if lane_of and p in lane_of]
            for lane in lanes or ([] if lane_of else [None]):
                y = frame.y(lane) + _LANE_H / 2 if lane is not None else _TOP - 8
                out.append(_cross(x, y, COLOURS["kill"], tip))
            continue
        if lane_of is not None:  # by processor: who died in it, on their own lanes
            out += [_cross(x, frame.y(lane_of[p]) + _LANE_H / 2, COLOURS["kill"], tip)
                    for p in m.get("crashed") or [] if p in lane_of and p != m["process"]]
        if lane_of is None or m["process"] not in lane_of:
            out.append(f'<line x1="{x}" y1="{_TOP - 2}" x2="{x}" y2="{bottom}" '
                       f'stroke="{COLOURS["fault"]}" stroke-width="1" stroke-dasharray="3 3" '
                       'opacity="0.6"/>')
            y = _TOP - 8
        else:
            y = frame.y(lane_of[m["process"]]) + _LANE_H / 2
        out.append(f'<path d="M{x - 5},{y - 6} L{x + 5},{y - 6} L{x},{y + 3} Z" '
                   f'fill="{COLOURS["fault"]}" class="fault"><title>{tip}</title></path>')
    return out


def _cross(x: float, y: float, colour: str, tip: str) -> str:
    return (f'<path d="M{x - 4},{y - 4} L{x + 4},{y + 4} M{x - 4},{y + 4} L{x + 4},{y - 4}" '
            f'stroke="{colour}" stroke-width="2"><title>{tip}</title></path>')


def _bar(frame: _Frame, lane: int, start: float, end: float, colour: str, tip: str,
         *, height: float = _BAR_H, raised: bool = False) -> str:
    x0, x1 = frame.x(start), frame.x(end)
    y = frame.y(lane) + (_LANE_H - height) / 2
    # a raised call: faded, outlined dashed in dark grey (red is for violations only)
    style = (f' fill-opacity="0.35" stroke="{COLOURS["raised"]}" stroke-width="1" '
             'stroke-dasharray="2 1.5"' if raised else "")
    return (f'<rect x="{x0}" y="{y}" width="{max(x1 - x0, 1.5)}" height="{height}" '
            f'fill="{colour}"{style}><title>{_esc(tip)}</title></rect>')


def _lost_line(frame: _Frame, lane: int, start: float, tip: str) -> str:
    y = frame.y(lane) + _LANE_H / 2
    return (f'<line x1="{frame.x(start)}" y1="{y}" x2="{frame.x(frame.end)}" y2="{y}" '
            f'stroke="{COLOURS["lost"]}" stroke-width="2" stroke-dasharray="5 3">'
            f'<title>{_esc(tip)}</title></line>')


def _label(frame: _Frame, lane: int, text: str, *, href: str | None = None,
           bad: bool = False) -> list[str]:
    y = frame.y(lane)
    out = []
    if bad:
        out.append(f'<rect x="0" y="{y}" width="{frame.x(frame.end)}" height="{_LANE_H}" '
                   'fill="#fdecec"/>')
    elif lane % 2:
        out.append(f'<rect x="{_LABEL_W}" y="{y}" width="{_PLOT_W}" height="{_LANE_H}" '
                   'fill="#f7f7f7"/>')
    weight = ' font-weight="bold"' if bad else ""
    fill = COLOURS["violation"] if bad else "#333"
    text_el = (f'<text x="{_LABEL_W - 8}" y="{y + _LANE_H - 4}" text-anchor="end" '
               f'fill="{fill}"{weight}>{_esc(text)}</text>')
    out.append(f'<a href="{_esc(href)}">{text_el}</a>' if href else text_el)
    return out


def _violation_rings(frame: _Frame, lane: int, violation: Mapping[str, Any],
                     href: str) -> list[str]:
    tip = _esc(f"{violation.get('kind')}: {violation.get('detail')}")
    y = frame.y(lane) + _LANE_H / 2
    ops = list(violation.get("ops") or []) or [frame.end]
    parts = [f'<circle cx="{frame.x(op)}" cy="{y}" r="6" fill="none" '
             f'stroke="{COLOURS["violation"]}" stroke-width="2.5"/>' for op in ops]
    x_end = frame.x(frame.end) + 7
    parts.append(f'<circle cx="{x_end}" cy="{y}" r="6" fill="{COLOURS["violation"]}"/>'
                 f'<text x="{x_end}" y="{y + 4}" text-anchor="middle" fill="#fff" '
                 'font-weight="bold" class="small">!</text>')
    return [f'<a href="{_esc(href)}" class="violation"><title>{tip}</title>{"".join(parts)}'
            '</a>']


def _entry_segments(calls: list[dict], marks: list[dict], end: int) -> list[tuple]:
    """(start, stop, state, words) for one entry, from its calls and the crashes."""
    events: list[tuple[int, str, Any]] = []
    for c in calls:
        events.append((c["invoke"], "invoke", c))
        if c["done"] is not None:
            events.append((c["done"], "done", c))
    for m in marks:
        for p in m.get("crashed") or []:
            events.append((m["index"], "crash", p))
    events.sort(key=lambda e: (e[0], e[1] != "crash"))
    segments, state, since, holder = [], None, 0, None
    for index, what, item in events:
        new = state
        if what == "invoke" and item["f"] == "enqueue" and state is None:
            new = "enqueueing"
        elif what == "done":
            f, outcome = item["f"], item["outcome"]
            if f == "enqueue":
                new = "pending" if outcome == "ok" else "unknown"
            elif f == "claim" and outcome == "ok":
                new, holder = "held", item["process"]
            elif f == "ack":
                new = "delivered" if outcome == "ok" else "unknown"
        elif what == "crash" and state == "held" and item == holder:
            new = "pending"  # a crashed holder's claim is released
        if new != state:
            if state is not None:
                segments.append((since, index, state))
            state, since = new, index
    if state is not None:
        segments.append((since, end, state))
    return segments


_STATE_WORDS = {"enqueueing": "enqueue in flight", "pending": "in the queue",
                "held": "claimed", "delivered": "acked", "unknown": "outcome unknown"}

# "lost", or a silent_error whose symptom was a loss ("entry e3: lost: enqueue returned ...")
_LOST = re.compile(r"^(entry \S+: )?lost\b")


def _lost_at(segments: list[tuple], violation: Mapping[str, Any] | None, marks: list[dict],
             faults: Sequence[str], end: int) -> int | None:
    """Where a lost entry was lost: the first firing of a fault its violation names after
    its last call, else its last call's end (a swallowed error lost it inside that call);
    None when it is not lost or came out."""
    if violation is None or not segments:
        return None
    kind, detail = violation.get("kind"), str(violation.get("detail") or "")
    if not (kind == "lost" or (kind == "silent_error" and _LOST.match(detail))):
        return None
    since, stop, state = segments[-1]
    if stop != end or state not in ("pending", "held"):
        return None  # it came out after all, or its last state says nothing of a loss
    named = set(violation.get("faults") or []) if kind == "lost" else set()
    fired = [m["index"] for m in marks if since <= m["index"] < end
             and isinstance(m.get("fault"), int) and 0 <= m["fault"] < len(faults)
             and faults[m["fault"]] in named]
    return min(fired, default=since)


def entry_svg(timeline: Mapping[str, Any], violations: Sequence[Mapping[str, Any]],
              anchor: str) -> tuple[str, int]:
    """The by-entry picture and how many entries it left out.

    ``anchor`` prefixes violation ids: violation n links to ``#{anchor}-v{n}``.
    """
    calls = _rows(timeline, "calls", CALL_FIELDS)
    marks = _rows(timeline, "marks", MARK_FIELDS)
    by_key: dict[str, list[dict]] = {}
    for c in calls:
        if c.get("key"):
            by_key.setdefault(c["key"], []).append(c)
    bad = {str(v.get("entry")): n for n, v in enumerate(violations)}
    keys = sorted(set(by_key) | {k for k in bad if k in by_key or k.startswith("e")},
                  key=_key_order)
    chosen = [k for k in keys if k in bad]
    chosen += [k for k in keys if k not in bad][:max(0, MAX_ENTRY_LANES - len(chosen))]
    chosen.sort(key=_key_order)
    frame = _Frame(timeline.get("end") or 1, len(chosen))
    out = _open(frame, "timeline by entry") + _axis(frame, timeline)
    crash_marks = [m for m in marks if m.get("crashed")]
    rings = []
    for lane, key in enumerate(chosen):
        href = f"#{anchor}-v{bad[key]}" if key in bad else None
        out += _label(frame, lane, key, href=href, bad=key in bad)
        segments = _entry_segments(by_key.get(key, []), crash_marks, frame.end)
        lost = _lost_at(segments, violations[bad[key]] if key in bad else None, marks,
                        timeline.get("faults") or [], frame.end)
        if lost is not None:  # its last state ends where it was lost
            since, _stop, state = segments.pop()
            if lost > since:
                segments.append((since, lost, state))
        for start, stop, state in segments:
            thin = state == "delivered"
            out.append(_bar(frame, lane, start, stop, COLOURS[state],
                            f"{key}: {_STATE_WORDS[state]} from op {start} to {stop}",
                            height=4 if thin else _BAR_H))
        if lost is not None:
            out.append(_lost_line(frame, lane, lost, f"{key}: lost from op {lost}: never "
                                  "came out again, not even in the final drain"))
        if key in bad:
            rings += _violation_rings(frame, lane, violations[bad[key]], href or "")
    out += _marks(frame, marks, timeline.get("faults") or [], None)
    out += rings  # last, so they sit on top of everything
    out.append("</svg>")
    return "\n".join(out), len(keys) - len(chosen)


def _key_order(key: str) -> tuple[int, str]:
    digits = key[1:]
    return (int(digits), key) if key[:1] == "e" and digits.isdigit() else (1 << 30, key)


def processor_svg(timeline: Mapping[str, Any], violations: Sequence[Mapping[str, Any]],
                  anchor: str) -> str:
    """The by-processor picture: each processor's calls as bars, faults on their lane."""
    calls = _rows(timeline, "calls", CALL_FIELDS)
    marks = _rows(timeline, "marks", MARK_FIELDS)
    # a runner's stop ("kill") draws only on the lanes it stopped: no lane of its own
    procs = sorted({c["process"] for c in calls}
                   | {m["process"] for m in marks if m["kind"] != "kill"}
                   | {p for m in marks for p in m.get("crashed") or []},
                   key=lambda p: (p < 0, -p if p < 0 else p))
    lane_of = {p: n for n, p in enumerate(procs)}
    frame = _Frame(timeline.get("end") or 1, len(procs))
    out = _open(frame, "timeline by processor") + _axis(frame, timeline)
    for p, lane in lane_of.items():
        out += _label(frame, lane, {-1: "final drain", -2: "every processor"}.get(p, f"p{p}"))
    bad_ops = {op: n for n, v in enumerate(violations) for op in v.get("ops") or []}
    rings = []
    for c in calls:
        lane = lane_of[c["process"]]
        stop = c["done"] if c["done"] is not None else c["invoke"] + 1
        colour = COLOURS.get(c["f"], COLOURS["other"])
        tip = f"{_who(c['process'])} {c['f']}" + (f" {c['key']}" if c.get("key") else "")
        tip += f": op {c['invoke']} to {c['done']}, {c['outcome']}"
        if c.get("error"):
            tip += f" ({c['error']})"
        # raised: an exception of the target's own; a kill's cut call has the kill's cross
        raised = c["outcome"] != "ok" and bool(c.get("error")) and (
            c["error"] != "processor killed")
        out.append(_bar(frame, lane, c["invoke"], stop, colour, tip, raised=raised))
        hit = bad_ops.get(stop, bad_ops.get(c["invoke"]))
        if hit is not None and c.get("key") == violations[hit].get("entry"):
            y = frame.y(lane) + _LANE_H / 2
            rings.append(f'<a href="#{anchor}-v{hit}" class="violation"><title>'
                         f'{_esc(str(violations[hit].get("detail")))}</title>'
                         f'<circle cx="{frame.x(stop)}" cy="{y}" r="6" fill="none" '
                         f'stroke="{COLOURS["violation"]}" stroke-width="2.5"/></a>')
    out += _marks(frame, marks, timeline.get("faults") or [], lane_of)
    out += rings
    out.append("</svg>")
    return "\n".join(out)
