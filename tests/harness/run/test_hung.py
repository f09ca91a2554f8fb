"""Hung targets: ``--timeout`` (and a scenario's ``timeout``) ends a run whose target never
returns, and the verdict says what the target was doing: spinning, asleep in a call the
shim does not see, or polling inside one call until the op budget ran out.

The targets are in ``tests/harness/fixtures/hung.py``: each one's second enqueue never
returns. Timeouts here are short on purpose; the only timing in an assert is a generous
upper bound that keeps a broken harness from hanging the suite.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness import faults
from harness.run.runner import run_scenario
from harness.run.scenarios import Scenario, ScenarioError, Workload, load

REPO = Path(__file__).resolve().parents[3]
HUNG = "tests.harness.fixtures.hung"

TOML = """\
description = "two entries: the second enqueue never returns"
fault = "disk_full"
{extra}
[workload]
entries = 2
processors = 1
{workload}
[[faults]]
kind = "disk_full"
after_bytes = 1000000
"""


def _scenario(**workload) -> Scenario:
    return Scenario(name="hang", description="hang", fault="disk_full",
                    plan=faults.Plan((faults.DiskFull(after_bytes=10**6),)),
                    workload=Workload(entries=2, **workload), seed=1)


def _harness(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", "run", "--progress", "off",
                           "--report-dir", str(tmp_path / "reports"), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


def test_timeout_option_ends_a_spinning_target_as_stuck_saying_it_spins(tmp_path):
    scenario = tmp_path / "hang.toml"
    scenario.write_text(TOML.format(extra="", workload=""))
    proc = _harness(tmp_path, "--target", f"{HUNG}:spinning", "--scenario", str(scenario),
                    "--timeout", "2")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "stuck=1" in proc.stdout, proc.stdout
    line = next(x for x in proc.stdout.splitlines() if "stuck processor 0" in x)
    assert "still inside enqueue(e2) after the run's timeout of 2 s" in line, line
    assert "spinning" in line and "hung.py" in line, line


def test_a_scenario_timeout_applies_and_the_option_overrides_it(tmp_path):
    path = tmp_path / "hang.toml"
    path.write_text(TOML.format(extra="timeout = 1.5", workload=""))
    assert load(path).timeout == 1.5
    run = run_scenario(f"{HUNG}:spinning", load(path))
    assert "timeout of 1.5 s" in run.result.violations[-1].detail
    run = run_scenario(f"{HUNG}:spinning", load(path), timeout=1)
    assert "timeout of 1 s" in run.result.violations[-1].detail


@pytest.mark.parametrize("value", [0, -1, "10", True])
def test_a_bad_scenario_timeout_is_refused(tmp_path, value):
    path = tmp_path / "bad.toml"
    shown = f'"{value}"' if isinstance(value, str) else str(value).lower()
    path.write_text(TOML.format(extra=f"timeout = {shown}", workload=""))
    with pytest.raises(ScenarioError, match="'timeout'.*a number of seconds > 0"):
        load(path)


def test_a_spinning_thread_stops_once_its_run_gives_up():
    # The harness goes on after the run (more scenarios, stress examples): the target's
    # busy loop must not keep a CPU after its verdict.
    run = run_scenario(f"{HUNG}:spinning", _scenario(), timeout=1)
    assert run.status == "fail" and run.result.counts.get("stuck") == 1
    deadline = time.monotonic() + 30
    while (any(t.name == "harness-p0" for t in threading.enumerate())
           and time.monotonic() < deadline):
        time.sleep(0.05)
    assert not any(t.name == "harness-p0" for t in threading.enumerate())


def test_thread_mode_blocked_in_a_system_call_is_an_error_pointing_at_process_mode():
    try:
        run = run_scenario(f"{HUNG}:blocked", _scenario(), timeout=1)
    finally:
        _release_blocked()
    assert run.status == "error", run.to_dict()
    assert "asleep or blocked in a system call" in run.error
    assert "select.select" in run.error and "--mode process" in run.error


def _release_blocked() -> None:
    # the abandoned thread ends once its select returns: none is left in this worker
    from tests.harness.fixtures import hung

    hung.release()
    deadline = time.monotonic() + 30
    while (any(t.name == "harness-p0" for t in threading.enumerate())
           and time.monotonic() < deadline):
        time.sleep(0.05)
    assert not any(t.name == "harness-p0" for t in threading.enumerate())


@pytest.mark.parametrize("how, doing", [("spinning", "spinning"),
                                        ("blocked", "asleep or blocked in a system call"),
                                        ("polling", "polling")])
def test_process_mode_hangs_are_stuck_and_say_what_the_process_did(how, doing):
    run = run_scenario(f"{HUNG}:{how}", _scenario(), mode="process", timeout=2)
    assert run.status == "fail", run.to_dict()
    (v,) = [v for v in run.result.violations if v.entry == "processor 0"]
    assert v.kind == "stuck" and "inside enqueue(e2)" in v.detail and doing in v.detail


def test_a_sleeping_loop_is_not_called_file_calls(tmp_path):
    # In thread mode each time.sleep is a turn of the schedule, so a loop of sleeps spends
    # the op budget in a 2-entry run; the verdict says it slept, inside which call, where.
    run = run_scenario(f"{HUNG}:sleeping", _scenario(max_ops=3000), timeout=60)
    (v,) = [v for v in run.result.violations if v.entry == "processor 0"]
    assert v.kind == "stuck", v.detail
    assert "never returned from enqueue(e2)" in v.detail, v.detail
    assert "0 file calls and " in v.detail and "calls to time.sleep" in v.detail, v.detail
    assert "time.sleep(3600)" in v.detail, v.detail
