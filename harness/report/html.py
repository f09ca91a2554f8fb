"""Render a run as one self-contained HTML page: summary, verdicts, and a timeline per failure.

Like every report this is a view of the run dict (docs/harness-design.md, "run JSON"),
so ``harness report RUN.json --html PATH`` rebuilds it from a saved JSON. The page needs
nothing but itself: styles inline, pictures as inline SVG (harness.report._svg), no script, no
web font, no link leaving the file. A scenario that did not pass gets its timeline
(drawn from the ``timeline`` key the runner records for it), switchable between one
lane per entry and one lane per processor with a CSS-only toggle; every violation is
a red ring on the picture linking to its entry in the list below it. That list groups
the violations that say the same thing (same kind, same sentence but for the numbers:
"lost, 12 entries: e1 e6 ...: enqueue returned ok at op ...; never came out") with
each entry's own sentence folded under it. Each scenario ends with the command that
replays it. Text from the run (details quote raw payloads) is escaped.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any

from harness.check.words import count
from harness.report import STATUS_WORDS, _svg, printable, runs_of, violation_summary

__all__ = ["render", "write_html"]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
  margin:0;color:#222;background:#fafafa;line-height:1.4}
main{max-width:1180px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:18px;margin:0 0 6px}
h3{font-size:14px;margin:14px 0 4px;color:#444}
section.sc{background:#fff;border:1px solid #ddd;border-radius:6px;padding:14px 16px;
  margin:14px 0}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;
  font-weight:bold;color:#fff;vertical-align:middle}
.pass{background:#2e7d32}.fail{background:#c62828}.no_fault_fired{background:#ef6c00}
.error{background:#6a1b9a}
table.sum{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
table.sum th,table.sum td{border-bottom:1px solid #e4e4e4;padding:4px 8px;text-align:left}
table.sum td.n{text-align:right;font-variant-numeric:tabular-nums}
.facts{color:#555;font-size:13px}.desc{font-size:13px;color:#333;max-width:900px}
.chip{display:inline-block;background:#eef;border-radius:4px;padding:0 6px;margin:2px;
  font-size:12px}.chip.bad{background:#fde3e3;color:#b71c1c;font-weight:bold}
pre.replay{background:#263238;color:#eceff1;padding:6px 10px;border-radius:4px;
  overflow-x:auto;font-size:13px}
ol.viol{font-size:13px;padding-left:22px}ol.viol>li{margin:4px 0;padding:2px 4px}
ol.viol>li:has(:target){background:#fffbe6}
ol.viol .entry:target{background:#fff3bf;outline:2px solid #f2c94c}
ol.viol .n{color:#555}ol.viol details{margin:2px 0 0;color:#444}
ol.viol details summary{cursor:pointer;font-size:12px;color:#666}
ol.viol details ul{margin:2px 0;padding-left:18px}
.kind{color:#c62828;font-weight:bold}.entry{font-family:monospace}
ul.obs{font-size:12px;color:#555}
.tl{margin:6px 0;overflow-x:auto}.tl input{margin-left:0}
.tl label{font-size:13px;margin-right:14px;cursor:pointer}
.tl .by-proc{display:none}
.tl input.pick-proc:checked~.by-entry{display:none}
.tl input.pick-proc:checked~.by-proc{display:block}
svg.timeline{font-size:11px;font-family:inherit;display:block;margin-top:4px}
svg.timeline .small{font-size:10px;fill:#555}
.legend{font-size:12px;color:#444;margin:4px 0}
.legend span.item{white-space:nowrap;margin-right:10px;display:inline-block}
.legend span.sw{display:inline-block;width:12px;height:10px;margin:0 4px 0 0;
  vertical-align:middle;border-radius:2px;box-sizing:border-box}
.note{font-size:12px;color:#666}
"""


def _e(value: Any) -> str:
    return escape(printable(value))


def _slug(*parts: Any) -> str:
    text = "-".join(str(p) for p in parts)
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "x"


def _badge(status: Any) -> str:
    word = STATUS_WORDS.get(status, str(status).upper())
    css = status if status in STATUS_WORDS else "error"
    return f'<span class="badge {css}">{_e(word)}</span>'


def render(run: Any) -> str:
    """The whole page for one run, a list of runs, or ``{"targets": {name: run}}``."""
    runs = runs_of(run)
    targets = ", ".join(str(r.get("target")) for r in runs)
    body = []
    for r in runs:
        body += _run(r)
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # no network: forbid anything the page could try to fetch
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        'style-src \'unsafe-inline\'; img-src data:">',
        f"<title>harness report: {_e(targets)}</title>",
        f"<style>{_CSS}</style></head><body><main>", *body, "</main></body></html>", ""])


def write_html(run: Any, path: str | Path) -> Path:
    """Write `render` to ``path`` (parent directories created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(run), encoding="utf-8")
    return path


def _run(run: Mapping[str, Any]) -> list[str]:
    scenarios = list(run.get("scenarios") or [])
    target = run.get("target")
    statuses = Counter(s.get("status") for s in scenarios)
    ok = bool(scenarios) and set(statuses) == {"pass"}
    told = ", ".join(f"{n} {STATUS_WORDS.get(k, k).lower()}" for k, n in statuses.items())
    seed = run.get("seed")
    out = [f"<h1>harness: target <code>{_e(target)}</code> {_badge('pass' if ok else 'fail')}"
           "</h1>",
           f'<p class="facts">{count(len(scenarios), "scenario")} '
           f'({_e(told or "none ran")}), '
           f"{_e(count(int(run.get('violations_total', 0)), 'violation'))}, "
           f"{_e(f'seed {seed}' if seed is not None else 'each scenario its own seed')}. "
           "Each scenario that did not pass has a timeline below: red rings are "
           "violations (click one for its explanation), purple triangles are faults.</p>",
           '<table class="sum"><tr><th>scenario</th><th>fault</th><th>status</th>'
           "<th>faults fired</th><th>ops</th><th>entries</th><th>violations</th>"
           "<th>time</th></tr>"]
    for s in scenarios:
        anchor = _slug("s", target, s.get("name"))
        bad = s.get("violations") or []
        out.append(
            f'<tr><td><a href="#{anchor}">{_e(s.get("name"))}</a></td>'
            f"<td>{_e(s.get('fault'))}</td><td>{_badge(s.get('status'))}</td>"
            f'<td class="n">{_e(s.get("faults_fired", 0))}</td>'
            f'<td class="n">{_e(s.get("ops", 0))}</td><td class="n">{_e(s.get("entries", 0))}'
            f"</td><td>{_e(violation_summary(s) if bad else '0')}</td>"
            f'<td class="n">{float(s.get("duration_s") or 0):.2f}s</td></tr>')
    out.append("</table>")
    for s in scenarios:
        out += _scenario(s, _slug("s", target, s.get("name")))
    return out


def _scenario(s: Mapping[str, Any], anchor: str) -> list[str]:
    status = s.get("status")
    out = [f'<section class="sc" id="{anchor}"><h2>{_e(s.get("name"))} {_badge(status)}</h2>',
           f'<p class="facts">fault <b>{_e(s.get("fault"))}</b>: '
           f"{_e('; '.join(map(str, s.get('faults') or [])))}. "
           f"{_e(s.get('faults_fired', 0))} faults fired over {_e(s.get('ops', 0))} file "
           f"operations, {_e(s.get('entries', 0))} entries, seed {_e(s.get('seed'))}.</p>"]
    if s.get("description"):
        out.append(f'<p class="desc">{_e(s["description"])}</p>')
    counts = {k: n for k, n in (s.get("counts") or {}).items() if n}
    if counts:
        bad_kinds = {str(v.get("kind")) for v in s.get("violations") or []}
        out.append("<div>" + "".join(
            f'<span class="chip{" bad" if k in bad_kinds else ""}">{_e(k)} {_e(n)}</span>'
            for k, n in counts.items()) + "</div>")
    if status == "no_fault_fired":
        out.append('<p class="desc"><b>No fault fired</b>: the scenario tested nothing (the '
                   "shim saw none of the target's I/O, or no call matched the fault's "
                   "trigger). This is never a pass.</p>")
    if status != "pass":
        out += _timeline(s, anchor)
    violations = s.get("violations") or []
    if violations:
        out += _violation_list(violations, anchor, violation_summary(s))
    if s.get("observations"):
        out.append("<h3>observed</h3><ul class=\"obs\">"
                   + "".join(f"<li>{_e(o)}</li>" for o in s["observations"]) + "</ul>")
    if status != "pass":
        out.append(f'<h3>replay</h3><pre class="replay">{_e(s.get("replay", ""))}</pre>')
    out.append("</section>")
    return out


_NUMBER = re.compile(r"(\d+)")


def _sentence(v: Mapping[str, Any]) -> str:
    """A violation's sentence without its "entry eN: " head (the list shows the entry)."""
    detail = str(v.get("detail") or "")
    head = f"entry {v.get('entry')}: "
    return detail[len(head):] if detail.startswith(head) else detail


def _groups(violations: list[Mapping[str, Any]]) -> list[list[int]]:
    """Indexes of the violations that say the same thing but for their numbers (op
    indexes, entry numbers), in order of first appearance."""
    groups: dict[tuple[str, str], list[int]] = {}
    for n, v in enumerate(violations):
        key = (str(v.get("kind")), _NUMBER.sub("#", _sentence(v)))
        groups.setdefault(key, []).append(n)
    return list(groups.values())


def _common(sentences: list[str]) -> str:
    """The sentences' shared text, with "…" where their numbers differ."""
    parts = [_NUMBER.split(text) for text in sentences]
    return "".join(p[0] if i % 2 == 0 or len({q[i] for q in parts}) == 1 else "…"
                   for i, p in enumerate(zip(*parts, strict=True)))


def _violation_list(violations: list[Mapping[str, Any]], anchor: str, summary: str
                    ) -> list[str]:
    """The violations grouped: kind, count, entries (each one a ring's link target), the
    shared sentence, the faults; each entry's own sentence folded under a group."""
    groups = _groups(violations)
    if len(groups) < len(violations):
        summary += f", in {len(groups)} groups of the same kind and explanation"
    out = [f"<h3>{_e(summary)}</h3><ol class=\"viol\">"]
    for members in groups:
        first = violations[members[0]]
        faults = list(dict.fromkeys(str(f) for n in members
                                    for f in violations[n].get("faults") or []))
        entries = " ".join(f'<span class="entry" id="{anchor}-v{n}">'
                           f'{_e(violations[n].get("entry"))}</span>' for n in members)
        count = f' <span class="n">{len(members)} entries:</span>' if len(members) > 1 else ""
        sentence = _common([_sentence(violations[n]) for n in members])
        item = (f'<li><span class="kind">{_e(first.get("kind"))}</span>{count} {entries}: '
                f"{_e(sentence)}"
                + (f' <span class="note">(faults: {_e("; ".join(faults))})</span>'
                   if faults else ""))
        if len(members) > 1:
            item += ("<details><summary>each entry's own sentence</summary><ul>" + "".join(
                f'<li><span class="entry">{_e(violations[n].get("entry"))}</span>: '
                f"{_e(_sentence(violations[n]))}</li>" for n in members) + "</ul></details>")
        out.append(item + "</li>")
    out.append("</ol>")
    return out


def _timeline(s: Mapping[str, Any], anchor: str) -> list[str]:
    timeline = s.get("timeline")
    if not timeline:
        return ['<p class="note">No timeline in this report (the JSON was written without '
                "one, or the harness could not run the scenario); run the replay command "
                "with --html to draw it.</p>"]
    violations = s.get("violations") or []
    by_entry, hidden = _svg.entry_svg(timeline, violations, anchor)
    by_proc = _svg.processor_svg(timeline, violations, anchor)
    pick = _slug(anchor, "view")
    notes = []
    if hidden:
        notes.append(f"{hidden} entries without a violation are not drawn")
    omitted = timeline.get("omitted") or {}
    if omitted.get("calls") or omitted.get("marks"):
        notes.append(f"the report kept the first calls and markers only "
                     f"({omitted.get('calls', 0)} calls, {omitted.get('marks', 0)} markers "
                     "left out)")
    return [
        '<h3>timeline</h3><div class="tl">',
        f'<input type="radio" name="{pick}" id="{pick}-e" class="pick-entry" checked>'
        f'<label for="{pick}-e">one lane per entry</label>',
        f'<input type="radio" name="{pick}" id="{pick}-p" class="pick-proc">'
        f'<label for="{pick}-p">one lane per processor</label>',
        f'<div class="by-entry">{_legend("entry")}{by_entry}</div>',
        f'<div class="by-proc">{_legend("processor")}{by_proc}</div>',
        "</div>",
        *([f'<p class="note">{_e("; ".join(notes))}.</p>'] if notes else []),
    ]


def _legend(view: str) -> str:
    items = "".join(f'<span class="item"><span class="sw" style="{style}"></span>'
                    f"{_e(words)}</span>" for style, words in _svg.legend_items(view))
    axis = '<span class="item">x axis: history op index</span>'
    return f'<div class="legend">{items}{axis}</div>'
