"""What `harness reproduce incident` concludes from its runs: pure functions of the run dicts.

Kept apart from the CLI, which only prints them: which expectations failed (legacy must
lose or stall entries, robust must pass, or under Windows semantics legacy must meet
refusals), the side-by-side table of violation kinds, and what Windows refused.
"""

from __future__ import annotations

from harness import report
from harness.check.words import count
from harness.faults.windows import refusals, refused_lines

__all__ = ["KINDS_SHOWN", "incident_expectations", "passed", "refused", "side_by_side"]


def passed(run: dict) -> bool:
    """Did every scenario of the run pass (and was there at least one)?"""
    statuses = [s.get("status") for s in run.get("scenarios", [])]
    return bool(statuses) and all(st == "pass" for st in statuses)


def refused(runs: dict[str, dict]) -> str:
    """Under --platform windows: what Windows refused, per target, and the incident's 5."""
    lines = [*refused_lines(runs),
             "The incident's '[WinError 5] Access is denied: queue.json.tmp -> queue.json' is "
             "os.replace/os.rename onto a queue.json another process holds open; the legacy "
             "model deletes it first (WinError 32 while a reader holds it) and moves with "
             "shutil.move, which catches os.rename's error and copies."]
    return report.printable("\n".join(lines))


def incident_expectations(runs: dict[str, dict], windows: bool = False) -> list[str]:
    """Which of 'legacy has violations' and 'robust has none' failed, in words; under
    Windows semantics robust (a POSIX design: it opens and flocks its directory, which
    Windows refuses) is shown, not expected to pass, and legacy must meet refusals."""
    failed = []
    legacy, robust = runs["legacy"], runs["robust"]
    if not _violations(legacy):
        failed.append(f"expected legacy to lose or stall entries, it had no violation "
                      f"(status {_statuses(legacy)}); try another --seed or more entries")
    if windows:
        if not refusals(legacy):
            failed.append("expected Windows to refuse some of legacy's calls, none was")
        print(f"robust under Windows semantics: {_statuses(robust)} (persistence is "
              "POSIX-only: its commit lock is an flock on a descriptor of the queue "
              "directory, and Windows cannot open a directory)")
    elif _violations(robust) or not passed(robust):
        failed.append(f"expected robust to pass, it had "
                      f"{count(_violations(robust), 'violation')} (status "
                      f"{_statuses(robust)}); see its replay command above")
    seedfix = _violations(runs["legacy-seedfix"])
    print(f"the shipped fix (legacy-seedfix): {count(seedfix, 'violation')}"
          + (" - the check-then-act race survives it." if seedfix else
             " in this run (its race is timing-dependent; other seeds may show it)."))
    return failed


KINDS_SHOWN = ("lost", "stuck", "duplicate", "corrupt", "phantom", "silent_error",
                "unavailable")


def side_by_side(runs: dict[str, dict]) -> str:
    """One row per target: its status and how many entries of each violation kind."""
    rows = [("target", "status", *KINDS_SHOWN)]
    for target, run in runs.items():
        kinds = [v.get("kind") for s in run.get("scenarios", []) for v in s.get("violations")
                 or []]
        rows.append((target, _statuses(run), *(str(kinds.count(k)) for k in KINDS_SHOWN)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


def _violations(run: dict) -> int:
    return sum(len(s.get("violations") or []) for s in run.get("scenarios", []))


def _statuses(run: dict) -> str:
    return ", ".join(str(s.get("status")) for s in run.get("scenarios", [])) or "none ran"
