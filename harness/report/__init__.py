"""How results are shown: a run (the dict `run_suite` returns) as JSON, JUnit, Markdown, prose.

Role (Jepsen's report): this module renders the run dict; `html` and `_svg` draw the
page and its timelines, `timeline` keeps the story of a run in the JSON so the page can
be drawn again later, `progress` shows long work as it goes, `reportfiles` names the
files so that concurrent runs never overwrite each other.

May import: `harness.check`, `harness.faults` (a fault's replaying repr).

The run dict is the one contract (docs/harness-design.md, "run JSON"); every format here
is a view of it, so a report can always be rebuilt from the JSON. JUnit is for CI test
tabs, Markdown for a CI step summary (``$GITHUB_STEP_SUMMARY``), `explain` for a person
at a terminal. A scenario where no fault fired is reported as a failure everywhere: it
tested nothing, and a green tick would say otherwise.

Functions that take ``run`` also accept several runs (a list, or the ``{"targets":
{name: run}}`` dict that ``harness reproduce`` writes) and then show one section per
target.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.check.causes import cause_lines
from harness.check.words import count

__all__ = [
    "STATUS_WORDS",
    "explain",
    "junit_xml",
    "markdown",
    "printable",
    "runs_of",
    "violation_summary",
    "write_all",
    "write_json",
    "write_junit",
    "write_markdown",
]

STATUS_WORDS = {
    "pass": "PASS",
    "fail": "FAIL",
    "no_fault_fired": "NO FAULT FIRED",
    "error": "ERROR",
}

# Markdown step summaries are capped (1 MiB on GitHub); a run with thousands of
# violations lists the first few per scenario and points at the JSON for the rest.
_MAX_LISTED = 20

# Characters XML 1.0 cannot carry at all, even escaped; details may quote raw payloads.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")


def printable(value: Any) -> str:
    """Text for a terminal or Markdown: control characters shown as ``\\xNN``.

    Details may quote raw payload bytes; an ESC or NUL must not reach a terminal or CI log.
    """
    text = "" if value is None else str(value)
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def runs_of(run: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One run, a list of runs, or ``{"targets": {name: run}}`` -> a list of runs."""
    if isinstance(run, Mapping):
        if "targets" in run and "scenarios" not in run:
            return list(run["targets"].values())
        return [run]
    return list(run)


def violation_summary(scenario: Mapping[str, Any]) -> str:
    """``"3 violations: lost=2 stuck=1"`` (kinds sorted, so the text is stable)."""
    violations = scenario.get("violations") or []
    counts = Counter(v.get("kind", "?") for v in violations)
    kinds = " ".join(f"{k}={n}" for k, n in sorted(counts.items()))
    noun = "violation" if len(violations) == 1 else "violations"
    return f"{len(violations)} {noun}: {kinds}" if kinds else f"0 {noun}"


# -- JSON ---------------------------------------------------------------------------------


def write_json(run: Any, path: str | Path) -> Path:
    """Write the run dict as indented JSON (the source of every other format)."""
    path = _ready(path)
    path.write_text(json.dumps(run, indent=2, default=str) + "\n", encoding="utf-8")
    return path


# -- JUnit XML ----------------------------------------------------------------------------


def junit_xml(run: Any) -> str:
    """JUnit XML: one ``<testsuite>`` per target, one ``<testcase>`` per scenario.

    A single run gives a ``<testsuite>`` root; several give a ``<testsuites>`` root.
    """
    suites = [_suite(r) for r in runs_of(run)]
    if len(suites) == 1:
        root = suites[0]
    else:
        root = ET.Element("testsuites", _counts(runs_of(run)))
        root.extend(suites)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def write_junit(run: Any, path: str | Path) -> Path:
    """Write `junit_xml` to ``path``."""
    path = _ready(path)
    path.write_text(junit_xml(run) + "\n", encoding="utf-8")
    return path


def _counts(runs: list[Mapping[str, Any]]) -> dict[str, str]:
    scenarios = [s for r in runs for s in r.get("scenarios", [])]
    statuses = Counter(s.get("status") for s in scenarios)
    return {
        "tests": str(len(scenarios)),
        "failures": str(statuses["fail"] + statuses["no_fault_fired"]),
        "errors": str(statuses["error"]),
        "skipped": "0",
        "time": f"{sum(float(s.get('duration_s') or 0) for s in scenarios):.3f}",
    }


def _suite(run: Mapping[str, Any]) -> ET.Element:
    target = str(run.get("target", "?"))
    suite = ET.Element("testsuite", {"name": _x(f"harness:{target}"), **_counts([run])})
    props = ET.SubElement(suite, "properties")
    for name in ("target", "seed", "violations_total", "status"):
        ET.SubElement(props, "property", name=name, value=_x(run.get(name)))
    for scenario in run.get("scenarios", []):
        suite.append(_case(target, scenario))
    return suite


def _case(target: str, s: Mapping[str, Any]) -> ET.Element:
    case = ET.Element("testcase", {
        "classname": _x(f"harness.{target}"),
        "name": _x(s.get("name")),
        "time": f"{float(s.get('duration_s') or 0):.3f}",
    })
    props = ET.SubElement(case, "properties")
    for name in ("seed", "fault", "faults", "faults_fired", "ops", "entries"):
        value = s.get(name)
        if isinstance(value, list | tuple):
            value = "; ".join(map(str, value))
        ET.SubElement(props, "property", name=name, value=_x(value))
    status = s.get("status")
    replay = f"replay: {s.get('replay', '')}"
    if status == "fail":
        lines = [*cause_lines(s), *(
            f"{v.get('kind')} {v.get('entry')}: "
            f"{_unprefixed(str(v.get('detail')), str(v.get('entry')))}"
            for v in s.get("violations") or [])]
        _child(case, "failure", violation_summary(s), "violations",
               "\n".join([*lines, *_observed(s), replay]))
    elif status == "no_fault_fired":
        _child(case, "failure", _NO_FAULT, "no_fault_fired",
               "\n".join([*_observed(s), replay]))
    elif status != "pass":  # "error", or a status this version does not know
        first = (s.get("observations") or [f"status {status!r}"])[0]
        _child(case, "error", f"harness error: {first}", str(status),
               "\n".join([*_observed(s), replay]))
    if s.get("description"):
        ET.SubElement(case, "system-out").text = _x(s["description"])
    return case


_NO_FAULT = ("no fault fired: the scenario tested nothing (the shim saw none of the target's "
             "I/O, or no call matched the fault's trigger)")


def _child(case: ET.Element, tag: str, message: str, type_: str, text: str) -> None:
    ET.SubElement(case, tag, message=_x(message), type=_x(type_)).text = _x(text)


def _observed(s: Mapping[str, Any]) -> list[str]:
    return [f"observed: {o}" for o in s.get("observations") or []]


def _x(value: Any) -> str:
    """Text safe for XML 1.0: ElementTree escapes <&>" but passes control characters."""
    text = "" if value is None else str(value)
    return _XML_ILLEGAL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


# -- Markdown -----------------------------------------------------------------------------


def markdown(run: Any) -> str:
    """A CI step summary: verdict line, table of scenarios, then each failure's details."""
    return "\n".join(_md_run(r) for r in runs_of(run))


def write_markdown(run: Any, path: str | Path) -> Path:
    """Write `markdown` to ``path``."""
    path = _ready(path)
    path.write_text(markdown(run), encoding="utf-8")
    return path


def _md_run(run: Mapping[str, Any]) -> str:
    scenarios = list(run.get("scenarios", []))
    out = [f"## harness: `{run.get('target')}`", "", _verdict_md(run, scenarios), "",
           "| scenario | fault | status | faults fired | ops | file calls | entries "
           "| violations |",
           "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for s in scenarios:
        # "ops" numbers what the details cite ("at op 905"); file calls are among them.
        cells = [s.get("name"), s.get("fault"), _status_md(s.get("status")),
                 s.get("faults_fired"), s.get("history_ops", ""), s.get("ops"),
                 s.get("entries"), len(s.get("violations") or [])]
        out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    for s in scenarios:
        if s.get("status") != "pass" or s.get("outside_promises"):
            out += ["", *_md_details(s)]
    return "\n".join(out) + "\n"


def _verdict_md(run: Mapping[str, Any], scenarios: list) -> str:
    bad = [s for s in scenarios if s.get("status") != "pass"]
    total = run.get("violations_total", sum(len(s.get("violations") or []) for s in scenarios))
    seed = run.get("seed")
    seed = f"seed {seed}" if seed is not None else "each scenario's own seed"
    if scenarios and not bad:
        every = "the one scenario" if len(scenarios) == 1 else f"all {len(scenarios)} scenarios"
        return f"**PASS** :white_check_mark: {every} passed ({seed})"
    which = ("the one scenario" if len(scenarios) == 1
             else f"{len(bad)} of {len(scenarios)} scenarios")
    return f"**FAIL** :x: {which} did not pass, {count(total, 'violation')} ({seed})"


def _status_md(status: Any) -> str:
    word = STATUS_WORDS.get(status, str(status).upper())
    return word if status == "pass" else f"**{word}**"


def _md_details(s: Mapping[str, Any]) -> list[str]:
    out = [f"### {_md(s.get('name'))}: {_md(STATUS_WORDS.get(s.get('status'), s.get('status')))}"]
    if s.get("description"):
        out += ["", _md(s["description"])]
    if s.get("error"):
        out += ["", f"**Error:** {_md(s['error'])}"]
    violations = s.get("violations") or []
    if violations:
        out += ["", violation_summary(s), "", "Causes:", ""]
        out += [f"- {_md(line)}" for line in cause_lines(s)[:_MAX_LISTED]]
        # Every entry's own story, folded: the causes above are what a reader acts on.
        out += ["", f"<details><summary>{count(len(violations), 'violation')}, one by one"
                "</summary>", ""]
        for v in violations[:_MAX_LISTED]:
            kind, entry, detail = (_md(v.get(k)) for k in ("kind", "entry", "detail"))
            out.append(f"- **{kind}** `{entry}`: {_unprefixed(detail, entry)}")
        if len(violations) > _MAX_LISTED:
            out.append(f"- ... and {len(violations) - _MAX_LISTED} more (see the JSON report)")
        out += ["", "</details>"]
    elif s.get("status") == "no_fault_fired":
        out += ["", _md(_NO_FAULT)]
    out += _md_outside(s)
    if s.get("observations"):
        out += ["", "Observations:", ""] + [f"- {_md(o)}" for o in s["observations"]]
    out += ["", "Replay:", "", "```sh", str(s.get("replay", "")), "```"]
    return out


def _unprefixed(detail: str, entry: str) -> str:
    """A detail without its ``entry eN:`` start when the line already names the entry."""
    prefix = f"entry {entry}: "
    return detail[len(prefix):] if detail.startswith(prefix) else detail


def _md_outside(s: Mapping[str, Any]) -> list[str]:
    """Findings outside the target's declared promises: shown, never failing the gate."""
    beyond = s.get("outside_promises") or []
    if not beyond:
        return []
    out = ["", f"Outside its promises ({len(beyond)}, not counted against it):", ""]
    for v in beyond[:_MAX_LISTED]:
        out.append(f"- {_md(v.get('kind'))} `{_md(v.get('entry'))}`: {_md(v.get('outside'))}")
    return out


def _md(value: Any) -> str:
    # GitHub renders inline HTML; a payload quoted in a detail must not become markup.
    text = " ".join(printable(value).split())
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cell(value: Any) -> str:
    return _md("" if value is None else value).replace("|", "\\|")


# -- prose --------------------------------------------------------------------------------


def explain(run: Any) -> str:
    """A few plain sentences per scenario: what was lost or stalled, and why."""
    paragraphs = []
    for r in runs_of(run):
        for s in r.get("scenarios", []):
            paragraphs.append(_explain_one(str(r.get("target")), s))
    return printable("\n\n".join(paragraphs))


def _explain_one(target: str, s: Mapping[str, Any]) -> str:
    head = (f"{target} / {s.get('name')} ({s.get('fault')}): "
            f"{count(int(s.get('faults_fired') or 0), 'fault')} fired over "
            f"{count(int(s.get('ops') or 0), 'file operation')}, "
            f"{count(int(s.get('entries') or 0), 'entry')}.")
    status = s.get("status")
    lines = [head]
    if status == "pass":
        counts = ", ".join(f"{k}={n}" for k, n in (s.get("counts") or {}).items() if n)
        lines.append("No violation: nothing lost, stuck, duplicated or corrupted"
                     + (f" ({counts})." if counts else "."))
    elif status == "no_fault_fired":
        lines.append("No fault fired, so this run proves nothing about the target.")
    elif status == "error":
        lines.append("The harness could not run this scenario.")
    violations = s.get("violations") or []
    if violations:
        by_kind: dict[str, list[str]] = {}
        for v in violations:
            by_kind.setdefault(str(v.get("kind")), []).append(str(v.get("entry")))
        parts = [_VERBS.get(kind, kind + ": {what}").format(what=_entries(keys))
                 for kind, keys in sorted(by_kind.items())]
        lines.append("It " + _and(parts) + ".")
        causes = cause_lines(s)  # why, once per cause
        lines += [f"  {c}" for c in causes[:4]]
        if len(causes) > 4:
            lines.append(f"  ... {count(len(causes) - 4, 'more cause')} in the report.")
    beyond = s.get("outside_promises") or []
    if beyond:
        kinds = Counter(str(v.get("kind")) for v in beyond)
        lines.append(f"Outside its promises (not counted against it): "
                     f"{', '.join(f'{k}={n}' for k, n in sorted(kinds.items()))}; "
                     f"{beyond[0].get('outside')}.")
    lines += [f"  observed: {o}" for o in s.get("observations") or []]
    if status != "pass":
        lines.append(f"  replay: {s.get('replay', '')}")
    return "\n".join(lines)


_VERBS = {
    "lost": "lost {what}",
    "stuck": "left {what} stuck after the final drain",
    "duplicate": "delivered {what} twice",
    "phantom": "handed out {what} that nobody enqueued",
    "corrupt": "returned {what} with corrupted bytes",
    "silent_error": "reported success for {what} although a fault hit the call",
    "unavailable": "could not be used once every fault was healed",
}


def _entries(keys: list[str]) -> str:
    shown = ", ".join(keys[:5]) + (f", +{len(keys) - 5} more" if len(keys) > 5 else "")
    return f"{len(keys)} {'entry' if len(keys) == 1 else 'entries'} ({shown})"


def _and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _ready(path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_all(run: Any, report_dir: str | Path, stem: str) -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.xml`` and ``<stem>.md`` under ``report_dir``."""
    base = Path(report_dir)
    return {
        "json": write_json(run, base / f"{stem}.json"),
        "junit": write_junit(run, base / f"{stem}.xml"),
        "markdown": write_markdown(run, base / f"{stem}.md"),
    }
