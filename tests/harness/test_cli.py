"""Tests for harness.cli: exit codes, printed lines and written reports, with a fake runner.

The runner's ``run_suite`` is replaced by one that returns
literal run dicts, so these tests pin the CLI's contract without running any fault.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness import cli
from harness.faults import FAULT_KINDS

REPO = Path(__file__).resolve().parents[2]

SCENARIO = """\
description = "{name}: a test scenario."
fault = "disk_full"
[workload]
entries = 5
[[faults]]
kind = "disk_full"
after_bytes = 64
"""


def _scenario(name: str, status: str, target: str = "robust", seed: int = 1) -> dict:
    violations = [{"kind": "lost", "entry": "e4", "detail": "entry 4 never came out",
                   "ops": [9], "faults": ["DiskFull(after_bytes=64)"]}] if status == "fail" else []
    return {
        "name": name, "fault": "disk_full", "faults": ["DiskFull(after_bytes=64)"],
        "faults_fired": 0 if status == "no_fault_fired" else 2, "ops": 50, "entries": 5,
        "status": status, "violations": violations, "counts": {}, "seed": seed,
        "observations": ["3x ENOSPC on write q/x"] if status != "pass" else [],
        "replay": f"harness run --target {target} --scenario {name} --seed {seed}",
        "description": "d", "duration_s": 0.01,
    }


class FakeRunner:
    """Stands in for harness.run.runner: returns each scenario with a preset status."""

    def __init__(self, statuses: dict[str, dict[str, str]] | None = None) -> None:
        self.statuses = statuses or {}  # target -> scenario name -> status
        self.calls: list[tuple[str, list[str], int | None]] = []

    def run_suite(self, target, scenarios, *, seed=None, progress=None):
        self.calls.append((target, [s.name for s in scenarios], seed))
        results = []
        for s in scenarios:
            d = _scenario(s.name, self.statuses.get(target, {}).get(s.name, "pass"), target,
                          s.seed if seed is None else seed)
            results.append(d)
            if progress:
                progress(s.name, d)
        total = sum(len(d["violations"]) for d in results)
        return {"target": target, "seed": seed, "violations_total": total,
                "status": "pass" if all(d["status"] == "pass" for d in results) else "fail",
                "scenarios": results}


@pytest.fixture
def sdir(tmp_path: Path) -> Path:
    d = tmp_path / "scenarios"
    d.mkdir()
    for name in ("alpha", "beta", "incident"):
        (d / f"{name}.toml").write_text(SCENARIO.format(name=name), encoding="utf-8")
    return d


@pytest.fixture
def fake(monkeypatch, tmp_path) -> FakeRunner:
    runner = FakeRunner()
    import harness.run.runner

    monkeypatch.setattr(harness.run.runner, "run_suite", runner.run_suite)
    monkeypatch.chdir(tmp_path)
    return runner


def _main(*argv: str) -> int:
    return cli.main(list(argv))


# -- run: exit codes ----------------------------------------------------------------------


def test_run_all_pass_exits_0_and_writes_reports(fake, sdir, tmp_path, capsys):
    assert _main("run", "--scenario-dir", str(sdir)) == 0
    out = capsys.readouterr().out
    assert fake.calls == [("robust", ["alpha", "beta", "incident"], None)]
    assert out.count("PASS  ") == 3 and "replay:" not in out
    assert out.splitlines()[0] == f"scenarios: --scenario-dir ({sdir})"
    assert "verdict: PASS" in out.splitlines()[-2]
    for suffix in ("json", "xml", "md"):
        assert (tmp_path / "reports" / f"run-robust-thread.{suffix}").exists()
    saved = json.loads((tmp_path / "reports" / "run-robust-thread.json").read_text())
    assert saved["scenario_set"] == {"set": "--scenario-dir", "directory": str(sdir)}


def test_run_with_a_violation_exits_1_and_prints_replay(fake, sdir, tmp_path, capsys):
    fake.statuses = {"legacy": {"beta": "fail"}}
    assert _main("run", "--target", "legacy", "--scenario", "alpha", "beta",
                 "--scenario-dir", str(sdir), "--seed", "9") == 1
    out = capsys.readouterr().out
    assert "FAIL 1 violation: lost=1  beta (disk_full)" in out
    assert "    lost e4: entry 4 never came out" in out
    assert "replay: harness run --target legacy --scenario beta --seed 9" in out.splitlines()
    assert "verdict: FAIL" in out
    run = json.loads((tmp_path / "reports" / "run-legacy-thread.json").read_text())
    assert run["violations_total"] == 1 and fake.calls[0][2] == 9


@pytest.mark.parametrize("status,word", [("no_fault_fired", "NO FAULT FIRED"),
                                         ("error", "ERROR")])
def test_run_no_fault_fired_or_error_exits_1(fake, sdir, capsys, status, word):
    fake.statuses = {"robust": {"alpha": status}}
    assert _main("run", "--scenario", "alpha", "--scenario-dir", str(sdir)) == 1
    out = capsys.readouterr().out.split("\n", 1)[1]  # after the scenario set's line
    assert out.startswith(f"{word}  alpha (disk_full)")
    assert "replay: harness run --target robust --scenario alpha --seed 1" in out


def test_run_prints_scenarios_the_runner_did_not_announce(fake, sdir, monkeypatch, capsys):
    quiet = FakeRunner({"robust": {"beta": "fail"}})

    def run_suite(target, scenarios, *, seed=None, progress=None):
        return quiet.run_suite(target, scenarios, seed=seed)  # never calls progress

    import harness.run.runner

    monkeypatch.setattr(harness.run.runner, "run_suite", run_suite)
    assert _main("run", "--scenario-dir", str(sdir)) == 1
    out = capsys.readouterr().out
    assert out.count("PASS  ") == 2 and out.count("FAIL 1 violation") == 1


# -- run: exit 2, nothing runs ------------------------------------------------------------


def test_malformed_scenario_dir_exits_2_and_runs_nothing(fake, sdir, capsys):
    (sdir / "beta.toml").write_text(SCENARIO.format(name="b").replace("entries = 5",
                                                                      "entries = -3"))
    assert _main("run", "--scenario-dir", str(sdir)) == 2
    err = capsys.readouterr().err
    assert "beta.toml: key 'workload.entries' = -3: expected a positive integer" in err
    assert fake.calls == []


def test_unknown_target_exits_2_with_the_message(fake, sdir, capsys):
    assert _main("run", "--target", "nosuch", "--scenario-dir", str(sdir)) == 2
    err = capsys.readouterr().err
    assert "target='nosuch'" in err and "robust" in err
    assert fake.calls == []


def test_unknown_scenario_exits_2_listing_the_available(fake, sdir, capsys):
    assert _main("run", "--scenario", "gamma", "--scenario-dir", str(sdir)) == 2
    err = capsys.readouterr().err
    assert "'gamma'" in err and "alpha, beta, incident" in err
    assert fake.calls == []


def test_bad_usage_exits_2(fake, capsys):
    with pytest.raises(SystemExit) as info:
        _main("run", "--seed", "many")
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        _main("run", "--seed", "-1")
    assert info.value.code == 2 and "expected an integer >= 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        _main("explode")
    assert info.value.code == 2


# -- run: where reports go ----------------------------------------------------------------


def test_explicit_paths_move_their_formats_and_drop_none(fake, sdir, tmp_path):
    out = tmp_path / "out"
    assert _main("run", "--scenario-dir", str(sdir), "--json", str(out / "r.json"),
                 "--junit", str(out / "r.xml")) == 0
    assert sorted(p.name for p in out.iterdir()) == ["r.json", "r.xml"]
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["run-robust-thread.md"]
    assert ET.parse(out / "r.xml").getroot().tag == "testsuite"


def test_report_names_carry_the_mode_and_the_platform(fake, sdir, tmp_path, monkeypatch):
    import harness.run.runner

    monkeypatch.setattr(harness.run.runner, "run_suite",
                        lambda target, chosen, **kw: fake.run_suite(target, chosen))
    assert _main("run", "--scenario-dir", str(sdir), "--mode", "process",
                 "--platform", "windows", "--report-dir", "r") == 0
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [
        "run-robust-process-windows.json", "run-robust-process-windows.md",
        "run-robust-process-windows.xml"]


def test_report_dir_and_module_target_make_a_safe_stem(fake, sdir, tmp_path, monkeypatch):
    pkg = tmp_path / "pkgs"
    pkg.mkdir()
    (pkg / "myq.py").write_text("def make(directory):\n    return None\n")
    monkeypatch.syspath_prepend(str(pkg))
    assert _main("run", "--target", "myq:make", "--scenario-dir", str(sdir),
                 "--report-dir", str(tmp_path / "r")) == 0
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [
        "run-myq-make-thread.json", "run-myq-make-thread.md", "run-myq-make-thread.xml"]


# -- reproduce incident -------------------------------------------------------------------


def test_reproduce_exits_0_when_legacy_fails_and_robust_passes(fake, sdir, tmp_path, capsys):
    fake.statuses = {"legacy": {"incident": "fail"}, "legacy-seedfix": {"incident": "fail"}}
    assert _main("reproduce", "incident", "--scenario-dir", str(sdir)) == 0
    out = capsys.readouterr().out
    assert [c[0] for c in fake.calls] == ["legacy", "legacy-seedfix", "robust"]
    assert all(c[1] == ["incident"] for c in fake.calls)
    assert "legacy / incident" in out and "lost 1 entry (e4)" in out
    assert "verdict: REPRODUCED" in out
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("target "))
    table = [line.split() for line in lines[start:start + 4]]
    assert table[0][:4] == ["target", "status", "lost", "stuck"]
    assert table[1][:4] == ["legacy", "fail", "1", "0"]
    assert table[3][:3] == ["robust", "pass", "0"]
    data = json.loads((tmp_path / "reports" / "reproduce-incident-thread.json").read_text())
    assert list(data["targets"]) == ["legacy", "legacy-seedfix", "robust"]
    assert data["scenario_set"] == {"set": "--scenario-dir", "directory": str(sdir)}
    root = ET.parse(tmp_path / "reports" / "reproduce-incident-thread.xml").getroot()
    assert root.tag == "testsuites" and len(root.findall("testsuite")) == 3
    assert (tmp_path / "reports" / "reproduce-incident-thread.md").exists()


def test_reproduce_exits_1_naming_the_failed_expectation(fake, sdir, tmp_path, capsys):
    fake.statuses = {"robust": {"incident": "fail"}}
    assert _main("reproduce", "incident", "--scenario-dir", str(sdir),
                 "--json", str(tmp_path / "i.json")) == 1
    out = capsys.readouterr().out
    assert "NOT REPRODUCED" in out
    assert "expected legacy to lose or stall entries" in out
    assert "expected robust to pass" in out
    assert json.loads((tmp_path / "i.json").read_text())["targets"]["robust"]["status"] == "fail"
    # JUnit and Markdown still go to the report dir: CI wants all three
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == [
        "reproduce-incident-thread.md", "reproduce-incident-thread.xml"]


def test_reproduce_without_incident_scenario_exits_2(fake, sdir, capsys):
    (sdir / "incident.toml").unlink()
    assert _main("reproduce", "incident", "--scenario-dir", str(sdir)) == 2
    assert "'incident'" in capsys.readouterr().err and fake.calls == []


# -- list and python -m -------------------------------------------------------------------


def test_list_prints_faults_targets_and_scenarios(fake, sdir, capsys):
    (sdir / "extra").mkdir()
    (sdir / "extra" / "deep.toml").write_text(SCENARIO.format(name="deep"), encoding="utf-8")
    assert _main("list", "--scenario-dir", str(sdir)) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"scenarios: --scenario-dir ({sdir})\n")
    assert "\nnot in 'all', run each by its name (--scenario FOLDER/NAME):\n  extra/deep " in out
    for kind in FAULT_KINDS:
        assert kind in out
    assert len(FAULT_KINDS) == 9 and "KillMidWrite" in out and "FileRemoved" in out
    assert "FsyncFailure" in out
    for name in ("robust", "legacy", "legacy-seedfix", "alpha", "incident"):
        assert name in out


def test_list_with_broken_scenarios_exits_2(fake, sdir, capsys):
    (sdir / "alpha.toml").write_text("fault = ")
    assert _main("list", "--scenario-dir", str(sdir)) == 2
    assert "alpha.toml, line 1" in capsys.readouterr().err


def test_python_dash_m_harness_help():
    proc = subprocess.run([sys.executable, "-m", "harness", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: harness")
    assert "reproduce" in proc.stdout and "exit codes" in proc.stdout
