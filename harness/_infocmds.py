"""What `harness report` and `harness list` do: rebuild reports from a run JSON, and list
the scenarios, fault kinds and built-in targets. Kept apart from the CLI's parser and the
run commands; both only read (a JSON, the scenario set, the fault classes)."""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from typing import Any

from harness import faults, report
from harness.report import html
from harness.run import scenarios
from harness.run.scenarioset import describe
from harness.run.targets import BUILTIN

__all__ = ["cmd_list", "cmd_report"]


# -- report -------------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    """Rebuild the asked-for formats from a run JSON; exit 2 when it cannot be read."""
    wanted = {"html": args.html, "junit": args.junit, "markdown": args.markdown}
    if not any(wanted.values()):
        print("harness report: error: nothing to write; give --html, --junit or --markdown",
              file=sys.stderr)
        return 2
    try:
        run = json.loads(args.run_json.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print(f"harness report: error: cannot read {args.run_json} as a run JSON ({exc})",
              file=sys.stderr)
        return 2
    if not isinstance(run, dict) or not ("scenarios" in run or "targets" in run):
        print(f"harness report: error: {args.run_json} is JSON but not a run report (no "
              "'scenarios' or 'targets'); give the JSON that 'harness run' wrote",
              file=sys.stderr)
        return 2
    writers = {"html": html.write_html, "junit": report.write_junit,
               "markdown": report.write_markdown}
    written = [writers[fmt](run, path) for fmt, path in wanted.items() if path]
    print("reports: " + ", ".join(str(p) for p in written))
    return 0


# -- list ---------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    directory = args.scenario_dir or scenarios.default_dir()
    found = scenarios.load_dir(directory)  # a broken file is exit 2 before any output
    more = {name: scenarios.load(path) for name, path in scenarios.nested(directory).items()}
    print(describe(scenarios.scenario_set(args.scenario_dir)))
    print("\nin --scenario all:")
    for s in found:
        print(f"  {s.name:<28} {s.fault:<22} {_first_sentence(s.description)}")
    if more:
        print("\nnot in 'all', run each by its name (--scenario FOLDER/NAME):")
    for name, s in more.items():
        print(f"  {name:<28} {s.fault:<22} {_first_sentence(s.description)}")
    print("\nfaults:")
    for kind, cls in _fault_classes(faults):
        print(f"  {kind:<22} {cls.__name__:<22} {_first_sentence(inspect.getdoc(cls) or '')}")
    print("\ntargets (or MODULE:CALLABLE returning a queue for a directory, or exec:COMMAND, a "
          "program speaking the contract as JSON lines: docs/exec-targets.md):")
    for name, description in BUILTIN.items():
        print(f"  {name:<16} {description}")
    return 0


def _fault_classes(faults: Any) -> list[tuple[str, type]]:
    by_kind = {getattr(obj, "kind", None): obj for obj in vars(faults).values()
               if inspect.isclass(obj)}
    return [(kind, by_kind[kind]) for kind in faults.FAULT_KINDS if kind in by_kind]


def _first_sentence(text: str) -> str:
    first = " ".join(text.replace("``", "").split()).split(". ")[0].rstrip(".")
    return first if len(first) <= 90 else first[:87] + "..."
