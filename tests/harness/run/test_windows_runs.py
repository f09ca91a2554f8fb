"""Runs under ``--platform windows``: refusals counted apart from faults, another process's
handle seen through the parent in process mode, the scenario key, the CLI option and
``harness reproduce incident --platform windows``."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from harness import cli
from harness.faults import ConcurrentProcessors, KillMidWrite, Plan
from harness.run import runner
from harness.run.processes import run_scenario as run_processes
from harness.run.scenarios import Scenario, ScenarioError, Workload, load

REPO = Path(__file__).resolve().parents[3]
WINDOWS_SCENARIO = REPO / "harness" / "scenarios_data" / "windows" / "windows-concurrent.toml"


def read(path):
    with open(path, "rb") as f:
        return f.read()


class HeldQueue:
    """A working queue (one file per entry: e/ pending, c/ claimed) that also keeps q/state
    open for its lifetime and replaces it on every enqueue, swallowing the refusal (as a
    cache would): on Windows every one of those replaces is refused, on Linux none."""

    def __init__(self, directory):
        self.pending, self.claimed = (os.path.join(directory, d) for d in ("e", "c"))
        for d in (self.pending, self.claimed):
            os.makedirs(d, exist_ok=True)
        self.path = os.path.join(directory, "state")
        if not os.path.exists(self.path):
            with open(self.path, "wb"):
                pass
        self.file = open(self.path, "rb")  # noqa: SIM115 - held on purpose

    def enqueue(self, payload):
        name = os.urandom(8).hex()
        with open(os.path.join(self.pending, name), "wb") as f:
            f.write(payload)
        with open(self.path + ".tmp", "wb") as f:
            f.write(name.encode())
        with contextlib.suppress(PermissionError):
            os.replace(self.path + ".tmp", self.path)
        return name

    def claim(self, worker):
        for name in sorted(os.listdir(self.pending)):
            payload = read(os.path.join(self.pending, name))
            os.rename(os.path.join(self.pending, name), os.path.join(self.claimed, name))
            return name, payload
        return None

    def ack(self, entry_id):
        os.unlink(os.path.join(self.claimed, entry_id))

    def recover(self):
        for name in os.listdir(self.claimed):
            os.rename(os.path.join(self.claimed, name), os.path.join(self.pending, name))

    def close(self):
        self.file.close()


def _scenario(plan, processors=1, entries=3, platform="windows"):
    return Scenario(name="w", description="d", fault=plan.kinds[0], plan=plan,
                    workload=Workload(entries=entries, processors=processors),
                    platform=platform)


def test_refusals_alone_are_not_a_fault_that_fired():
    sc = _scenario(Plan(faults=(KillMidWrite(at_op=10**6),)))
    run = runner.run_scenario("held", sc, factory=HeldQueue)
    # three entries and the final drain's liveness probe: four replaces refused
    assert run.platform_refusals == 4 and run.faults_fired == 0
    assert run.result.valid and run.result.counts["delivered"] == 3
    assert run.status == "no_fault_fired"
    d = run.to_dict()
    assert d["platform"] == "windows" and d["platform_refusals"] == 4
    assert "3x EACCES (WinError 5) on replace q/state.tmp" in d["observations"]  # not the drain
    linux = runner.run_scenario("held", sc, factory=HeldQueue, platform="linux")
    assert linux.platform_refusals == 0 and "platform" not in linux.to_dict()
    assert linux.to_dict()["replay"].endswith("--seed 1 --platform linux")


class OthersHeldQueue:
    """Each handle holds its own q/held.<token>; recover() (run alone, while every other
    processor is parked between two calls, holding its file) tries to delete the others'.
    Entries go nowhere: only the deletes are looked at."""

    def __init__(self, directory):
        os.makedirs(directory, exist_ok=True)
        self.dir = directory
        self.mine = os.path.join(directory, f"held.{os.urandom(8).hex()}")
        self.file = open(self.mine, "ab")  # noqa: SIM115 - held on purpose

    def enqueue(self, payload):
        self.file.write(payload)
        self.file.flush()
        return "x"

    def claim(self, worker):
        return None

    def ack(self, entry_id):
        pass

    def recover(self):
        for name in sorted(os.listdir(self.dir)):
            path = os.path.join(self.dir, name)
            if name.startswith("held.") and path != self.mine:
                with contextlib.suppress(OSError):
                    os.unlink(path)

    def close(self):
        self.file.close()


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_another_processors_handle_blocks_a_delete_in_both_modes(mode):
    """In process mode the refusing worker never opened the file: only the parent's table
    of every process's handles can refuse it."""
    plan = Plan(faults=(ConcurrentProcessors(processors=3, switch_probability=0.01),
                        KillMidWrite(at_op=1)))
    sc = _scenario(plan, processors=3, entries=30)
    run = (runner.run_scenario if mode == "thread" else run_processes)(
        "others-held", sc, factory=OthersHeldQueue)
    assert run.error is None, run.error
    refused = [r for r in run.history.fs_ops() if r.call == "unlink" and r.outcome == "EACCES"]
    assert refused and all(r.path.startswith("q/held.") for r in refused)
    assert all("WinError 32: delete of a file another handle holds open" in r.fault
               for r in refused)
    assert run.platform_refusals == len(refused)


def test_process_mode_on_linux_lets_the_same_deletes_through():
    plan = Plan(faults=(ConcurrentProcessors(processors=3, switch_probability=0.01),
                        KillMidWrite(at_op=1)))
    run = run_processes("others-held", _scenario(plan, 3, 30, platform="linux"),
                        factory=OthersHeldQueue)
    assert run.error is None and run.platform_refusals == 0
    assert not [r for r in run.history.fs_ops() if r.outcome == "EACCES"]


# -- the scenario key, the option, the reproduction ------------------------------------------


SCENARIO = """\
description = "d"
fault = "disk_full"
{extra}
[[faults]]
kind = "disk_full"
"""


def test_the_scenario_key_defaults_to_linux_and_accepts_windows(tmp_path):
    for extra, expected in (("", "linux"), ('platform = "windows"', "windows")):
        path = tmp_path / "s.toml"
        path.write_text(SCENARIO.format(extra=extra), encoding="utf-8")
        assert load(path).platform == expected
    shipped = load(WINDOWS_SCENARIO)
    assert shipped.platform == "windows" and shipped.fault == "concurrent_processors"


@pytest.mark.parametrize("value", ['"mac"', '"Windows"', "1", "true"])
def test_a_bad_platform_value_is_refused_by_name(tmp_path, value):
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO.format(extra=f"platform = {value}"), encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        load(path)
    message = str(info.value)
    assert "key 'platform'" in message and "expected one of linux, windows" in message


def test_run_passes_the_platform_option_to_the_runner(monkeypatch, tmp_path, capsys):
    calls = []

    def run_suite(target, scenarios, *, seed=None, progress=None, **kw):
        calls.append(kw)
        return {"target": target, "seed": seed, "violations_total": 0, "status": "pass",
                "scenarios": []}

    monkeypatch.setattr(runner, "run_suite", run_suite)
    monkeypatch.chdir(tmp_path)
    args = ["run", "--scenario", str(WINDOWS_SCENARIO), "--report-dir", str(tmp_path)]
    cli.main([*args, "--platform", "windows"])
    cli.main(args)
    assert calls == [{"platform": "windows"}, {}]


def test_a_bad_platform_option_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["run", "--platform", "mac"])
    assert info.value.code == 2
    assert "invalid choice: 'mac' (choose from 'linux', 'windows')" in capsys.readouterr().err


def test_reproduce_incident_on_windows_shows_what_windows_refused(tmp_path, capsys):
    code = cli.main(["reproduce", "incident", "--platform", "windows",
                     "--report-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    assert "Windows semantics: the calls Windows refused" in out
    assert "EACCES (WinError 32) on unlink q/queue.json" in out
    assert "replay: harness run --target legacy --scenario incident --seed 1 --platform " \
           "windows" in out
    assert "[WinError 5] Access is denied: queue.json.tmp -> queue.json" in out
    assert out.rstrip().splitlines()[-1].startswith(
        "verdict: REPRODUCED: under Windows semantics the legacy design met")
