"""The harness judged from outside: independently written queues, correct and buggy.

Every CORRECT queue (tests/quality/queues/correct_*.py) must come through every
scenario of harness/scenarios_data/ (and of its windows/, whose platform is Windows: their
directory fsyncs ask platform.system(), as portable code does) with status "pass": no
violation, and a fault that fired. None
of them needs a "no_fault_fired" exemption: every scenario's fault reaches every design
here (all of them write, fsync, rename/replace or list inside q/, and every one opens
files for reading), so "no_fault_fired" would itself be a finding. Designs without
checksums declare it (``open_queue.promises = {"damage": False}``, harness.check.promises):
what damage at rest does to them is listed outside their promises, and pinned to be found
there (`NOT_PROMISED`), never silently passed.

Every BUGGY queue (bug_*.py, each one correct design with ONE thing changed) must be
caught: at least one violation somewhere, and, more strictly, in the scenario a person
would point at for that bug, with the violation kind one would expect. Tests that fail
here are findings about the harness (a miss or a false alarm), kept failing on purpose:
see the report in the session log / the docstrings of the queue modules.

Each (queue, scenario) pair runs once per session (cached); the whole file takes well
under a minute on 2 cores.
"""

from __future__ import annotations

import functools
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.run.runner import run_scenario_runs
from harness.run.scenarios import default_dir, load_dir

ROOT = Path(__file__).resolve().parents[2]
QUEUES = Path(__file__).resolve().parent / "queues"
SCENARIOS = {sc.name: sc for sc in load_dir(default_dir())}
LINUX = sorted(SCENARIOS)
# platform = "windows": not in the default gate, which robust (POSIX-only) must pass
SCENARIOS.update({sc.name: sc for sc in load_dir(default_dir() / "windows")})
ALL = sorted(SCENARIOS)

CORRECT = sorted(p.stem for p in QUEUES.glob("correct_*.py"))
BUGGY = sorted(p.stem for p in QUEUES.glob("bug_*.py"))


def factory(module: str):
    return importlib.import_module(f"tests.quality.queues.{module}").open_queue


@functools.cache
def run(module: str, scenario: str) -> dict:
    # As the CLI does: every one of the scenario's seeds (its `runs`).
    return run_scenario_runs(f"tests.quality.queues.{module}:open_queue", SCENARIOS[scenario],
                             factory=factory(module))


def describe(d: dict) -> str:
    lines = [f"{d['name']}: status={d['status']} faults_fired={d['faults_fired']} "
             f"counts={ {k: v for k, v in d['counts'].items() if v} }"]
    lines += [f"  {v['kind']} {v['entry']}: {v['detail']}" for v in d["violations"][:5]]
    lines += [f"  observed: {o}" for o in d["observations"]]
    lines.append(f"  replay: {d['replay']}")
    return "\n".join(lines)


# Scenarios a correct design does not promise to pass (it declares so), and why: they pass on
# its promises, and what the harness found is listed outside them.
_NO_CHECKSUMS = ("no checksums: a flipped bit in a payload is handed out as data (corrupt), "
                 "or one in the JSON loses the whole file")
NOT_PROMISED: dict[tuple[str, str], str] = {
    ("correct_maildir", "corruption-at-rest"): _NO_CHECKSUMS,
    ("correct_snapshot", "corruption-at-rest"): _NO_CHECKSUMS,
    ("correct_snapshot_fixed_tmp", "corruption-at-rest"): _NO_CHECKSUMS,
}


# A correct design the scenario's own fault cannot reach: nothing there to act on (an honest
# "no fault fired", never a pass, and never a violation).
NOT_REACHED: dict[tuple[str, str], str] = {
    ("correct_log", "file-removed"): "its log is its only file (no lock file, no temp file)",
}


def test_every_scenario_is_loaded():
    assert len(LINUX) >= 13, LINUX
    assert {sc.name for sc in load_dir(default_dir())} == set(LINUX)
    assert {SCENARIOS[n].platform for n in set(ALL) - set(LINUX)} == {"windows"}


# -- correct queues: no false alarm anywhere ------------------------------------------


# One test per run, asserting everything about it: xdist spreads tests over workers, and
# each worker would otherwise run the same scenarios again for its own test.
@pytest.mark.parametrize("scenario", ALL)
@pytest.mark.parametrize("module", CORRECT)
def test_correct_queue_passes_and_drains_after_heal(module, scenario):
    """No false alarm, and the queue works again once the faults are healed: the drain
    never fails (a design without checksums may not drain damaged bytes: outside its
    promise)."""
    d = run(module, scenario)
    if (module, scenario) not in NOT_PROMISED:
        assert not [o for o in d["observations"] if o.startswith("final drain")], describe(d)
    if (module, scenario) in NOT_REACHED:
        assert d["status"] in ("pass", "no_fault_fired") and not d["violations"], describe(d)
        return
    assert d["status"] == "pass", describe(d)
    assert not d["violations"], describe(d)


@pytest.mark.parametrize("scenario", ALL)
@pytest.mark.parametrize("module", CORRECT)
def test_correct_queue_passes_in_process_mode(module, scenario):
    """Real processes, SIGKILL, kernel EACCES and ENOSPC: still no false alarm."""
    d = run_scenario_runs(f"tests.quality.queues.{module}:open_queue", SCENARIOS[scenario],
                          factory=factory(module), mode="process")
    if (module, scenario) in NOT_REACHED:
        assert d["status"] in ("pass", "no_fault_fired") and not d["violations"], describe(d)
        return
    assert d["status"] == "pass", describe(d)


# bug -> (scenarios a person expects to catch it, violation kinds expected there).
# "caught" means: in at least one of the listed scenarios, a violation of a listed kind.
EXPECTED: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {
    # durability: a power loss must expose missing fsyncs
    "bug_no_fsync": (("power-loss", "power-loss-torn"), frozenset({"lost", "corrupt"})),
    "bug_no_dirsync": (("power-loss", "power-loss-torn"), frozenset({"lost"})),
    # the rename reached the disk before the data: only a file system that may persist
    # names first (power-loss-eager) shows it
    "bug_rename_before_fsync": (("power-loss-eager",),
                                frozenset({"lost", "corrupt", "stuck"})),
    # the window is between an ack and the next fsync: any power-loss scenario may hit it
    "bug_ack_not_durable": (("power-loss", "power-loss-torn", "power-loss-eager",
                             "delivered-retention", "concurrent-power-loss"),
                            frozenset({"duplicate"})),
    "bug_ack_not_durable_snapshot": (("power-loss", "power-loss-torn"),
                                     frozenset({"duplicate"})),
    # torn writes: a kill mid-write or a torn power cut must expose in-place rewrites and
    # unframed records
    "bug_inplace_rewrite": (("killed-mid-write", "power-loss-torn", "large-payloads"),
                            frozenset({"lost", "corrupt", "stuck"})),
    "bug_no_checksum": (("killed-mid-write", "power-loss-torn", "large-payloads"),
                        frozenset({"lost", "corrupt", "stuck"})),
    # recovery after a crash
    "bug_no_requeue": (("killed-mid-write", "power-loss", "stale-locks"),
                       frozenset({"stuck", "lost"})),
    "bug_recover_deletes_processing": (("killed-mid-write", "power-loss", "stale-locks",
                                        "concurrent-power-loss"), frozenset({"lost"})),
    # caught by the final drain's recover in any scenario: three where a person looks first
    "bug_recover_requeues_delivered": (("killed-mid-write", "stale-locks", "power-loss"),
                                       frozenset({"duplicate"})),
    "bug_delete_then_move": (("killed-mid-rename", "killed-mid-write", "incident",
                              "stale-locks"), frozenset({"lost", "stuck"})),
    "bug_excl_lockfile": (("stale-locks", "incident"), frozenset({"lost", "stuck"})),
    # concurrency
    "bug_racy_claim": (("concurrent-processors",), frozenset({"duplicate", "lost"})),
    "bug_fixed_tmp": (("concurrent-processors", "incident"),
                      frozenset({"corrupt", "lost", "phantom", "duplicate"})),
    "bug_ack_first_processing": (("incident", "stale-locks", "concurrent-processors",
                                  "concurrent-power-loss", "killed-mid-write"),
                                 frozenset({"lost", "duplicate"})),
    # errors
    "bug_swallow_enospc": (("disk-full", "disk-full-persistent"),
                           frozenset({"silent_error", "lost"})),
    "bug_read_error_empty": (("permission-denied-read", "permission-denied-listdir"),
                             frozenset({"lost", "silent_error"})),
    # damage at rest and files removed by others
    "bug_damage_as_torn_tail": (("corruption-at-rest",), frozenset({"lost", "duplicate"})),
    "bug_lockfile_deadlock": (("file-removed",), frozenset({"stuck", "unavailable"})),
    "bug_lockfile_split": (("file-removed",), frozenset({"lost", "duplicate"})),
    # an fsync that failed with EIO, retried and trusted: its dropped pages are lost at
    # the next power loss, the state file comes back as zeros
    "bug_fsync_retry_trusted": (("fsync-failure",),
                                frozenset({"silent_error", "lost", "stuck"})),
    # a handle idle across two generation moves republishes its stale state: only a
    # processor that idles for long (idle-processor) shows it
    "bug_stale_after_idle": (("idle-processor",), frozenset({"lost", "duplicate"})),
    # plain logic bugs
    "bug_nonunique_ids": (("concurrent-processors", "killed-mid-write"), frozenset({"lost"})),
    "bug_short_read": (("large-payloads",), frozenset({"corrupt", "stuck"})),
    # Windows semantics: os.replace onto a file a handle holds open is refused
    "bug_replace_open": (("windows-concurrent",), frozenset({"stuck", "lost"})),
}


def test_every_bug_has_an_expectation():
    assert set(EXPECTED) == set(BUGGY)


@pytest.mark.parametrize("module", BUGGY)
def test_buggy_queue_is_caught_where_expected_and_fails_the_gate(module):
    """Caught in a scenario a person would expect, with a violation of an expected kind,
    and that scenario's verdict (what a CI gate reads) is fail."""
    scenarios, kinds = EXPECTED[module]
    results = {sc: run(module, sc) for sc in scenarios}
    hits = [sc for sc, d in results.items() for v in d["violations"] if v["kind"] in kinds]
    assert hits, (f"{module}: expected a violation of kind {sorted(kinds)} in one of "
                  f"{list(scenarios)}\n" + "\n".join(map(describe, results.values())))
    assert {results[sc]["status"] for sc in hits} == {"fail"}, "\n".join(
        describe(results[sc]) for sc in hits)


def test_replace_open_is_caught_only_on_windows():
    """Correct on Linux (a replaced file stays readable through its old handle): every
    Linux scenario passes it; only Windows' refusal (WinError 5) shows the bug."""
    linux = [run("bug_replace_open", sc) for sc in LINUX]
    assert {d["status"] for d in linux} == {"pass"}, "\n".join(
        describe(d) for d in linux if d["status"] != "pass")
    d = run("bug_replace_open", "windows-concurrent")
    assert d["violations"], describe(d)
    assert any("(WinError 5)" in o for o in d["observations"]), describe(d)


def test_fsync_retry_trusted_is_caught_where_its_correct_base_passes():
    """One change from correct_snapshot (it raises on EIO): retrying the fsync and trusting
    the retry. The scenario pairs FsyncFailure with a later PowerLoss; the base passes it."""
    assert run("correct_snapshot", "fsync-failure")["status"] == "pass"
    d = run("bug_fsync_retry_trusted", "fsync-failure")
    assert d["status"] == "fail", describe(d)
    around = {f.split("(")[0] for v in d["violations"] for f in v["faults"]}
    assert {"FsyncFailure", "PowerLoss"} <= around, describe(d)


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_a_stale_handle_after_idling_is_caught_and_its_correct_twin_passes(mode):
    """The planted bug is one method of a correct design (`GenerationQueue`): the idle
    scenario tells them apart in both modes (every correct_* queue passing it is part of
    the tests above)."""
    sc = SCENARIOS["idle-processor"]
    bug = run_scenario_runs("tests.quality.queues.bug_stale_after_idle:open_queue", sc,
                            factory=factory("bug_stale_after_idle"), mode=mode)
    assert {v["kind"] for v in bug["violations"]} & {"lost", "duplicate"}, describe(bug)
    from tests.quality.queues.bug_stale_after_idle import open_correct_queue

    twin = run_scenario_runs("tests.quality.queues.bug_stale_after_idle:open_correct_queue",
                             sc, factory=open_correct_queue, mode=mode)
    assert twin["status"] == "pass", describe(twin)


# -- through the real CLI ------------------------------------------------------------


# Two scenarios are enough for the exit code: every scenario's verdict on these queues is
# checked in-process above.
def _cli(target: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "harness", "run", "--target", target, "--scenario",
         "concurrent-processors", "killed-mid-write",
         "--report-dir", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_cli_correct_queue_exits_0(tmp_path):
    proc = _cli("tests.quality.queues.correct_snapshot:open_queue", tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "PASS" in proc.stdout


def test_cli_buggy_queue_exits_1(tmp_path):
    proc = _cli("tests.quality.queues.bug_nonunique_ids:open_queue", tmp_path)
    assert proc.returncode == 1, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "FAIL" in proc.stdout
