"""The ``harness`` command: run scenarios against a target, reproduce the incident, list things.

Exit codes are the CI contract: 0 every scenario passed; 1 a violation, a scenario where
no fault fired, or a scenario the harness could not run; 2 bad usage or configuration
(a broken scenario file, an unknown target, a bad fault parameter). Configuration is
checked completely before the first scenario runs, so exit 2 means nothing ran.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness import _usage, report
from harness._help import EPILOGS as _EPILOGS
from harness._help import Help as _Help
from harness._incident import incident_expectations, passed, refused, side_by_side
from harness._infocmds import cmd_list, cmd_report
from harness.check.causes import cause_lines, scenario_facts
from harness.check.words import count
from harness.faults import FaultSpecError
from harness.faults.windows import PLATFORMS, refusals
from harness.report import html
from harness.report.progress import MODES, Progress
from harness.report.reportfiles import Claim, ReportPathError, claim, safe_name, stem_for
from harness.run import hung as _hung
from harness.run import scenarios
from harness.run.argtypes import at_least
from harness.run.reaper import interrupted, interruptible
from harness.run.scenarios import LAYERS, ScenarioError
from harness.run.scenarioset import describe
from harness.run.targets import TargetError, resolve

__all__ = ["main", "build_parser", "INCIDENT_TARGETS", "at_least"]

INCIDENT_TARGETS = ("legacy", "legacy-seedfix", "robust")
"""`harness reproduce incident` runs the incident scenario on these, in this order."""

_DEFAULT_REPORT_DIR = "reports"
_MAX_PRINTED = 10  # violations per scenario on the terminal; the reports carry all of them
_EPILOG = """\
exit codes: 0 all scenarios passed; 1 a violation, no fault fired, or a harness error;
2 bad usage or configuration (nothing ran); 130 (SIGINT) or 143 (SIGTERM) interrupted,
after every process it started was stopped and its temporary files removed.
In CI, append the Markdown report to the step summary:
  cat reports/run-robust-thread.md >> "$GITHUB_STEP_SUMMARY"
Report names carry the command, target and mode; a run started while another one holds
those names writes NAME-2.* instead (the last line lists the files written).
"""

_SCENARIO_DIR_HELP = ("a folder of your own *.toml scenarios (default: the built-in set "
                      "shipped with the harness; ./scenarios is never read unless named here)")

_REPRODUCE_EPILOG = """\
exit codes: 0 reproduced (legacy lost or stalled entries and robust passed); 1 not
reproduced (the verdict line says which expectation failed); 2 bad configuration.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (``prog`` fixed so ``python -m harness`` reads the same)."""
    parser = _usage.Parser(  # its errors are one line; its subparsers share the class
        prog="harness", epilog=_EPILOG, formatter_class=_Help,
        description="Fault-injection harness: prove a file-backed queue loses nothing.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run scenarios against a target", epilog=_EPILOG,
                         formatter_class=_Help)
    run.add_argument("--target", default="robust",
                     help="robust, legacy, legacy-seedfix, MODULE:CALLABLE or exec:COMMAND "
                          "(a program speaking docs/exec-targets.md) (default: robust)")
    run.add_argument("--scenario", dest="scenarios", metavar="NAME", nargs="+",
                     action="extend", help="scenario names, paths of scenario .toml files "
                     "(format: docs/scenarios.md), or 'all' (default: all)")
    _common(run, report_help=(
        "write JSON, JUnit and Markdown here as run-<target>-<mode>.json, .xml and .md "
        f"(default: {_DEFAULT_REPORT_DIR}/); --json, --junit and --markdown move one format "
        "each, --html adds the page"))
    run.add_argument("--mode", choices=("thread", "process"), default=None,
                     help="thread: processors are threads under one seeded schedule; "
                     "process: real processes, real SIGKILL and kernel faults, not "
                     "deterministic in order (default: each scenario's own mode)")
    _platform(run)
    run.add_argument("--layer", choices=LAYERS, default=None,
                     help="shim: the Python shim in each process sees the calls made "
                     "through Python; fuse: a FUSE mount below every process sees every "
                     "file call, C and other languages included (process mode; needs "
                     "root, /dev/fuse, fuse3) (default: each scenario's own)")
    run.add_argument("--junit", metavar="PATH", help="write the JUnit XML report here")
    run.add_argument("--markdown", metavar="PATH", help="write the Markdown summary here")
    run.add_argument("--html", metavar="PATH",
                     help="write the HTML report (summary and a timeline per failure) here")
    run.add_argument("--timeout", type=at_least(0, float, strict=True), metavar="SECONDS",
                     help="seconds one run of a scenario may take, and again its final "
                     "drain; a processor still inside a queue call then is reported with "
                     "what it was doing (default: the scenario's 'timeout', else "
                     f"{_hung.DEFAULT_TIMEOUT_S:g})")
    _progress(run)

    html_rep = sub.add_parser("report", help="rebuild reports from a saved run JSON",
                              description="Rebuild HTML, JUnit or Markdown reports from the "
                              "JSON a 'harness run' wrote (nothing is run again).",
                              epilog=_EPILOGS["report"], formatter_class=_Help)
    html_rep.add_argument("run_json", metavar="RUN.json", type=Path, help="a run's JSON report")
    html_rep.add_argument("--html", metavar="PATH", help="write the HTML report here")
    html_rep.add_argument("--junit", metavar="PATH", help="write the JUnit XML report here")
    html_rep.add_argument("--markdown", metavar="PATH", help="write the Markdown summary here")

    rep = sub.add_parser("reproduce", help="reproduce the incident on legacy, "
                         "legacy-seedfix and robust side by side", epilog=_REPRODUCE_EPILOG,
                         formatter_class=_Help)
    rep.add_argument("what", choices=["incident"], help="what to reproduce")
    _platform(rep)
    _common(rep, report_help=(
        "write reproduce-incident-<mode>.json, .xml and .md here (default: "
        f"{_DEFAULT_REPORT_DIR}/; --json moves only the JSON)"))
    _progress(rep)

    for name, help_text in (("stress", "search random workloads, fault plans and "
                                       "interleavings with hypothesis; shrink what fails"),
                            ("explore", "try one fault at every op of a workload, "
                                        "exhaustively")):
        importlib.import_module(f"harness.search.{name}").add_arguments(
            sub.add_parser(name, help=help_text, epilog=_EPILOGS[name], formatter_class=_Help))

    soak = sub.add_parser("soak", help="producers and consumers on real processes, SIGKILLed "
                          "at random, then drained and checked", epilog=_EPILOGS["soak"],
                          formatter_class=_Help)
    importlib.import_module("harness.run.soak").configure(soak)

    lst = sub.add_parser("list", help="list scenarios, fault kinds and built-in targets",
                         epilog=_EPILOGS["list"], formatter_class=_Help)
    lst.add_argument("--scenario-dir", metavar="DIR", type=Path, help=_SCENARIO_DIR_HELP)
    for command in sub.choices.values():
        _usage.add_debug(command)
    return parser


def _common(p: argparse.ArgumentParser, *, report_help: str) -> None:
    p.add_argument("--seed", type=_seed, help="override every scenario's seed (an int >= 0; "
                   "default: each scenario's own)")
    p.add_argument("--json", metavar="PATH", help="write the JSON report here")
    p.add_argument("--report-dir", metavar="DIR", help=report_help)
    p.add_argument("--scenario-dir", metavar="DIR", type=Path, help=_SCENARIO_DIR_HELP)


def _progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", choices=MODES, default="auto",
                   help="progress on stderr: auto is a live bar on a terminal and a plain "
                   "line every 10 s otherwise (CI logs); off shows none")


def _platform(p: argparse.ArgumentParser) -> None:
    p.add_argument("--platform", choices=PLATFORMS, default=None, help="windows: Windows' "
                   "file semantics (deleting or replacing a file another handle holds open "
                   "raises PermissionError [WinError 32/5]...) (default: each scenario's own)")


_seed = at_least(0)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``harness`` and ``python -m harness``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 by itself on bad usage
    command = {"run": _cmd_run, "reproduce": _cmd_reproduce, "list": cmd_list,
               "report": cmd_report,
               "stress": lambda a: importlib.import_module("harness.search.stress").main(a),
               "explore": lambda a: importlib.import_module("harness.search.explore").main(a),
               "soak": lambda a: importlib.import_module("harness.run.soak").command(a),
               }[args.command]
    prog, debug = f"harness {args.command}", getattr(args, "debug", False)
    try:
        # (run and reproduce then claim their report names; see harness.report.reportfiles)
        _usage.check_outputs(args, getattr(args, "report_dir", None))
        with interruptible():  # SIGINT and SIGTERM unwind through every cleanup
            return command(args)
    except (ScenarioError, TargetError, FaultSpecError, ReportPathError,
            _usage.UsageError) as exc:
        return _usage.report(prog, exc, debug=debug)
    except BrokenPipeError:  # `harness list | head`: the reader has all it wanted
        return _usage.reader_gone()
    except KeyboardInterrupt as exc:  # Interrupted too: each run cleaned up as it unwound
        # (explore does not register its sandboxes with harness.run.reaper: no such claim)
        return interrupted(f"harness {args.command}", exc,
                           cleaned=args.command in ("run", "reproduce"))
    except Exception as exc:  # noqa: BLE001 - a bug: one line, the traceback with --debug
        return _usage.report(prog, exc, debug=debug, code=1)


# -- run ----------------------------------------------------------------------------------


def _cmd_run(args: argparse.Namespace) -> int:
    chosen = _load(args.scenarios or ["all"], args.scenario_dir)
    _resolve_target(args.target)
    used = scenarios.scenario_set(args.scenario_dir, chosen)
    if args.layer == "fuse" and args.mode == "thread":
        raise _usage.UsageError("--layer fuse runs in process mode only (its kill is a "
                                "SIGKILL of the calling process); drop --mode thread")
    stem = stem_for(f"run-{safe_name(args.target)}", chosen,
                    "process" if args.layer == "fuse" else args.mode, args.platform)
    if args.layer == "fuse":
        stem += "-fuse"
    with _claim(args, stem, junit=args.junit, md=args.markdown, page=args.html) as held:
        print(describe(used), flush=True)
        with Progress(total=len(chosen), description=f"run {args.target}", unit="scenario",
                      mode=args.progress) as bar:
            printer = _Printer(bar)
            run = _runner().run_suite(args.target, chosen, seed=args.seed,
                                      progress=printer.progress,
                                      # only when asked: a runner without modes still works
                                      **({"mode": args.mode} if args.mode else {}),
                                      **({"timeout": args.timeout} if args.timeout else {}),
                                      **({"layer": args.layer} if args.layer else {}),
                                      **({"platform": args.platform} if args.platform else {}))
        printer.finish(run)
        run["scenario_set"] = used
        ok = passed(run)
        print(_verdict(run, ok))
        _write(run, held)
    return 0 if ok else 1


class _Printer:
    """Prints each scenario's line as the runner finishes it (and any it did not announce)."""

    def __init__(self, bar: Progress | None = None) -> None:
        self.done: set[str] = set()
        self.bar = bar

    def progress(self, name: str, scenario: dict) -> None:
        if name not in self.done:
            self.done.add(name)
            if self.bar is not None:
                self.bar.write(_scenario_lines(scenario))
                self.bar.update(1, **{str(scenario.get("status")): 1})
            else:
                print(_scenario_lines(scenario), flush=True)

    def finish(self, run: dict) -> None:
        self.bar = None  # the bar is closed by now: plain prints

        for s in run.get("scenarios", []):
            self.progress(s.get("name"), s)


def _scenario_lines(s: dict) -> str:
    """``PASS  name (fault): facts``; a non-pass adds its violations and replay command."""
    status = s.get("status")
    word = report.STATUS_WORDS.get(status, str(status).upper())
    if status == "fail":
        word += " " + report.violation_summary(s)
    facts = f"{scenario_facts(s)}, {float(s.get('duration_s') or 0):.2f}s"
    lines = [f"{word}  {s.get('name')} ({s.get('fault')}): {facts}"]
    if status != "pass":
        if s.get("error"):
            lines.append(f"    error: {s['error']}")
        # one line per cause, not per entry; an ERROR's violations are no verdict
        causes = cause_lines(s) if status != "error" else []
        lines += [f"    {c}" for c in causes[:_MAX_PRINTED]]
        if len(causes) > _MAX_PRINTED:
            lines.append(f"    ... and {len(causes) - _MAX_PRINTED} more causes in the reports")
        lines += [f"    observed: {o}" for o in s.get("observations") or []
                  if o != s.get("error")]
        lines.append(f"replay: {s.get('replay', '')}")
    return report.printable("\n".join(lines))


def _verdict(run: dict, ok: bool) -> str:
    statuses = [s.get("status") for s in run.get("scenarios", [])]
    counts = ", ".join(f"{statuses.count(k)} {report.STATUS_WORDS[k].lower()}"
                       for k in report.STATUS_WORDS if statuses.count(k))
    return (f"verdict: {'PASS' if ok else 'FAIL'} target {run.get('target')}: "
            f"{count(len(statuses), 'scenario')} ({counts or 'none ran'}), "
            f"{count(run.get('violations_total', 0), 'violation')}")


# -- reproduce incident -------------------------------------------------------------------


def _cmd_reproduce(args: argparse.Namespace) -> int:
    chosen = _load(["incident"], args.scenario_dir)
    for target in INCIDENT_TARGETS:
        _resolve_target(target)
    used = scenarios.scenario_set(args.scenario_dir, chosen)
    # JUnit and Markdown always go to the report dir here: --json only moves the JSON.
    with _claim(args, stem_for("reproduce-incident", chosen, None, args.platform), junit=None,
                md=None, page=None) as held:
        print(describe(used), flush=True)
        return _reproduce(args, chosen, used, held)


def _reproduce(args: argparse.Namespace, chosen: list, used: dict, held: Claim) -> int:
    suite = _runner().run_suite
    runs = {}
    with Progress(total=len(INCIDENT_TARGETS), description="reproduce incident", unit="run",
                  mode=args.progress) as bar:
        for target in INCIDENT_TARGETS:
            bar.write(f"running the incident scenario on {target} ...")
            runs[target] = suite(target, chosen, seed=args.seed,
                                 **({"platform": args.platform} if args.platform else {}))
            bar.update(1)
    windows = (args.platform or chosen[0].platform) == "windows"
    print()
    print(report.explain(list(runs.values())))
    print()
    print(side_by_side(runs))
    print()
    if windows:
        print(refused(runs) + "\n")
    _write({"targets": runs, "scenario_set": used}, held)
    failed = incident_expectations(runs, windows=windows)
    if failed:
        print("verdict: NOT REPRODUCED: " + "; ".join(failed))
        return 1
    if windows:
        print("verdict: REPRODUCED: under Windows semantics the legacy design met "
              f"{refusals(runs['legacy'])} refused calls and lost or stalled entries.")
        return 0
    print("verdict: REPRODUCED: the legacy design lost or stalled entries under the "
          "incident's conditions, and robust delivered every one.")
    return 0


# -- shared -------------------------------------------------------------------------------


def _load(names: list[str], directory: Path | None) -> list:
    return scenarios.select(names, directory or scenarios.default_dir())


def _runner() -> Any:
    # Imported when needed: `list` and bad-config paths must work without the runner's
    # dependencies, and tests replace sys.modules["harness.run.runner"].
    return importlib.import_module("harness.run.runner")


def _resolve_target(spec: str) -> Callable:
    # Resolve before running anything, so an unknown target is exit 2 with nothing run.
    return resolve(spec)


_WRITERS = {"json": report.write_json, "junit": report.write_junit,
            "markdown": report.write_markdown, "html": html.write_html}
_SUFFIXES = {"json": ".json", "junit": ".xml", "markdown": ".md"}


def _claim(args: argparse.Namespace, stem: str, *, junit: str | None, md: str | None,
           page: str | None) -> Claim:
    """Hold every report's path before the run (see `harness.report.reportfiles`): JSON, JUnit
    and Markdown always, each at its explicit path or as ``<report dir>/<stem>.<ext>``;
    the HTML page when asked for. An explicit path moves one format, it drops none."""
    explicit = {"json": args.json, "junit": junit, "markdown": md,
                **({"html": page} if page else {})}
    return claim(stem, args.report_dir or _DEFAULT_REPORT_DIR, explicit, _SUFFIXES)


def _write(run: Any, held: Claim) -> list[Path]:
    """Write each held format and print the ``reports:`` line (and any name that was taken)."""
    written = [_WRITERS[fmt](run, path) for fmt, path in held.paths.items()]
    print("reports: " + ", ".join(str(p) for p in written))
    for moved in held.moved:
        print(f"reports: {moved} (another run in progress holds the first name)")
    return written
