"""Tests for harness.run.scenarios: the shipped files load, and every malformed file is refused
with a message that names the file, the key and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.faults import FAULT_KINDS, Plan
from harness.run.runner import scenario_arg
from harness.run.scenarios import (
    Scenario,
    ScenarioError,
    Workload,
    default_dir,
    load,
    load_dir,
    scenario_set,
    select,
)

REPO_SCENARIOS = Path(__file__).resolve().parents[3] / "harness" / "scenarios_data"

NAMED = {
    "disk-full", "disk-full-persistent", "permission-denied", "missing-directory",
    "missing-directory-mid-save", "killed-mid-write", "power-loss", "power-loss-torn",
    "concurrent-processors", "incident", "stale-locks", "delivered-retention",
    "fsync-failure", "power-loss-holes",
}

VALID = """\
description = "Disk fills up during the temp-file write."
fault = "disk_full"
seed = 7
[workload]
entries = 12
processors = 2
payload_bytes = [8, 64]
[[faults]]
kind = "disk_full"
after_bytes = 2048
"""


def _write(tmp_path: Path, text: str, name: str = "sample") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


# -- the shipped scenarios ----------------------------------------------------------------


def test_every_shipped_scenario_loads():
    loaded = load_dir(REPO_SCENARIOS)
    names = {s.name for s in loaded}
    assert names >= NAMED, f"missing scenario files: {sorted(NAMED - names)}"
    assert [s.name for s in loaded] == sorted(names)
    for s in loaded:
        assert s.description and s.fault in s.plan.kinds
        assert Path(s.source).name == f"{s.name}.toml"


def test_every_fault_kind_has_a_scenario():
    primary = {s.fault for s in load_dir(REPO_SCENARIOS)}
    assert set(FAULT_KINDS) <= primary


def test_named_scenarios_have_their_checks():
    by_name = {s.name: s for s in load_dir(REPO_SCENARIOS)}
    assert "stale_locks" in by_name["stale-locks"].checks
    assert "retention" in by_name["delivered-retention"].checks
    assert by_name["incident"].workload.processors >= 2


# -- a valid file -------------------------------------------------------------------------


def test_load_builds_a_frozen_scenario(tmp_path):
    s = load(_write(tmp_path, VALID, "disk-full"))
    assert isinstance(s, Scenario) and isinstance(s.plan, Plan)
    assert (s.name, s.fault, s.seed, s.mode, s.checks) == ("disk-full", "disk_full", 7,
                                                           "thread", ())
    assert s.workload == Workload(entries=12, processors=2, payload_min=8, payload_max=64)
    assert s.plan.kinds == ("disk_full",)
    with pytest.raises(AttributeError):
        s.seed = 3  # type: ignore[misc]


def test_defaults_when_optional_keys_are_absent(tmp_path):
    text = 'description = "x"\nfault = "disk_full"\n[[faults]]\nkind = "disk_full"\n'
    s = load(_write(tmp_path, text))
    assert s.workload == Workload() and s.seed == 1 and s.mode == "thread"


# -- malformed files ----------------------------------------------------------------------

BROKEN = {
    # name: (file text, fragments the message must contain)
    "toml-syntax": (VALID.replace("seed = 7", "seed = "), ["line 3", "not valid TOML"]),
    "unknown-top-key": ('sede = 3\n' + VALID, ["'sede'", "accepted keys", "description"]),
    "unknown-workload-key": (VALID.replace("entries = 12", "entires = 12"),
                             ["'workload.entires'", "payload_bytes"]),
    "wrong-type": (VALID.replace("seed = 7", 'seed = "seven"'), ["'seed'", "'seven'",
                                                                  "integer"]),
    "negative-entries": (VALID.replace("entries = 12", "entries = -3"),
                         ["key 'workload.entries' = -3", "positive integer"]),
    "bool-entries": (VALID.replace("entries = 12", "entries = true"),
                     ["'workload.entries' = True"]),
    "bad-payload": (VALID.replace("[8, 64]", "[64, 8]"), ["'workload.payload_bytes'"]),
    "bad-mode": ('mode = "fiber"\n' + VALID, ["'mode' = 'fiber'", "thread, process"]),
    "bad-check": ('checks = ["leaks"]\n' + VALID, ["'checks'", "stale_locks"]),
    "unknown-fault-kind": (VALID.replace('fault = "disk_full"', 'fault = "meteor"'),
                           ["'fault' = 'meteor'", "disk_full"]),
    "fault-not-in-plan": (VALID.replace('fault = "disk_full"', 'fault = "power_loss"'),
                          ["'fault' = 'power_loss'", "[[faults]]"]),
    "missing-description": (VALID.replace('description = "Disk fills up during the '
                                          'temp-file write."\n', ""), ["'description'",
                                                                       "missing"]),
    "no-faults": (VALID.split("[[faults]]")[0], ["'faults'", "missing"]),
    "bad-fault-parameter": (VALID + '[[faults]]\nkind = "disk_full"\nafter_bytes = -5\n',
                            ["faults[2]", "after_bytes"]),
    "unknown-fault-parameter": (VALID.replace("after_bytes = 2048", "after_byts = 2048"),
                                ["faults[1]", "after_byts"]),
    "top-key-after-faults": (VALID + 'mode = "process"\n',
                             ["faults[1]", "before the first [[faults]]"]),
    "two-concurrency-tables": (VALID.replace("disk_full", "concurrent_processors")
                               .replace("after_bytes = 2048", "processors = 2")
                               + '[[faults]]\nkind = "concurrent_processors"\n',
                               ["'faults'", "ConcurrentProcessors"]),
    "fault-table-kind": (VALID.replace('kind = "disk_full"', 'kind = "meteor"'),
                         ["faults[1]", "meteor"]),
    # workload shapes: each wrong value names its key, the value and what is accepted
    "roles-too-few": (VALID.replace("processors = 2", 'processors = 2\nroles = ["both"]'),
                      ["'workload.roles' = ['both']", "2 (workload.processors) roles",
                       "producer, consumer, both"]),
    "roles-unknown": (VALID.replace("processors = 2",
                                    'processors = 2\nroles = ["both", "reader"]'),
                      ["'workload.roles'", "'reader'", "producer, consumer, both"]),
    "roles-no-producer": (VALID.replace("processors = 2",
                                        'processors = 2\nroles = ["consumer", "consumer"]'),
                          ["'workload.roles'", "someone must enqueue"]),
    "weights-zero": (VALID.replace("processors = 2", "processors = 2\nweights = [1, 0]"),
                     ["'workload.weights' = [1, 0]", "positive integers"]),
    "weights-not-a-list": (VALID.replace("processors = 2", "processors = 2\nweights = 3"),
                           ["'workload.weights' = 3", "a list of 2"]),
    "idle-out-of-range": (VALID.replace("processors = 2", "processors = 2\nidle = [2]"),
                          ["'workload.idle' = [2]", "from 0 to 1"]),
    "idle-everyone": (VALID.replace("processors = 2", "processors = 2\nidle = [0, 1]"),
                      ["'workload.idle' = [0, 1]", "fewer idle processors"]),
    "idle-after-negative": (VALID.replace("processors = 2",
                                          "processors = 2\nidle = [0]\nidle_after = -1"),
                            ["'workload.idle_after' = -1", "integer >= 0"]),
    "idle-for-zero": (VALID.replace("processors = 2", "processors = 2\nidle = [0]\nidle_for = 0"),
                      ["'workload.idle_for' = 0", "(0, 1]"]),
    "idle-for-above-one": (VALID.replace("processors = 2",
                                         "processors = 2\nidle = [0]\nidle_for = 1.5"),
                           ["'workload.idle_for' = 1.5", "fraction"]),
    "idle-for-bool": (VALID.replace("processors = 2",
                                    "processors = 2\nidle = [0]\nidle_for = true"),
                      ["'workload.idle_for' = True"]),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_malformed_file_names_file_and_key(tmp_path, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    text, fragments = BROKEN[case]
    path = _write(tmp_path, text, case)
    with pytest.raises(ScenarioError) as info:
        load(path)
    message = str(info.value)
    assert message.startswith(f"{case}.toml"), message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_message_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scenarios").mkdir()
    path = _write(tmp_path / "scenarios", VALID.replace("entries = 12", "entries = -3"),
                  "disk-full")
    with pytest.raises(ScenarioError, match=r"^scenarios/disk-full\.toml: key "
                       r"'workload\.entries' = -3: expected a positive integer; fix the file"):
        load(path)


def test_missing_file(tmp_path):
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load(tmp_path / "nope.toml")


def test_load_dir_reports_every_broken_file(tmp_path):
    _write(tmp_path, VALID, "good")
    _write(tmp_path, VALID.replace("seed = 7", "seed = -1"), "bad-seed")
    _write(tmp_path, VALID + "x = 1\n", "bad-key")
    with pytest.raises(ScenarioError) as info:
        load_dir(tmp_path)
    message = str(info.value)
    assert "2 of 3 scenario files" in message
    assert "bad-seed.toml" in message and "bad-key.toml" in message


def test_load_dir_missing_or_empty(tmp_path):
    with pytest.raises(ScenarioError, match="no such scenario directory"):
        load_dir(tmp_path / "absent")
    with pytest.raises(ScenarioError, match=r"no \*\.toml"):
        load_dir(tmp_path)


# -- select and default_dir ---------------------------------------------------------------


def test_select_all_and_by_name(tmp_path):
    for name in ("b", "a", "c"):
        _write(tmp_path, VALID, name)
    assert [s.name for s in select(["all"], tmp_path)] == ["a", "b", "c"]
    assert [s.name for s in select(["c", "a", "c"], tmp_path)] == ["c", "a"]


def test_select_reads_only_the_named_files(tmp_path):
    _write(tmp_path, VALID, "good")
    _write(tmp_path, "not toml at all [", "broken")
    assert [s.name for s in select(["good"], tmp_path)] == ["good"]


def test_select_unknown_name_lists_available(tmp_path):
    _write(tmp_path, VALID, "disk-full")
    _write(tmp_path, VALID, "power-loss")
    with pytest.raises(ScenarioError) as info:
        select(["disk-ful"], tmp_path)
    message = str(info.value)
    assert "'disk-ful'" in message and "disk-full, power-loss" in message


def test_select_accepts_a_toml_path(tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    path = _write(other, VALID, "custom")
    _write(tmp_path, VALID, "x")
    assert [s.name for s in select([str(path)], tmp_path)] == ["custom"]


def test_default_dir_is_the_shipped_set_whatever_the_working_directory(tmp_path,
                                                                        monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert default_dir().resolve() == REPO_SCENARIOS
    assert scenario_set(None) == {"set": "built-in", "directory": str(default_dir())}
    (tmp_path / "scenarios").mkdir()
    _write(tmp_path / "scenarios", VALID, "mine")
    assert default_dir().resolve() == REPO_SCENARIOS  # a stray folder changes nothing
    assert scenario_set(None)["ignored"] == str(tmp_path / "scenarios")  # but it is named
    assert scenario_set("scenarios") == {"set": "--scenario-dir",
                                         "directory": str((tmp_path / "scenarios").resolve())}
    by_path = select([str(tmp_path / "scenarios" / "mine.toml"), "power-loss"], default_dir())
    assert scenario_set(None, by_path)["files"] == [str(tmp_path / "scenarios" / "mine.toml")]


def test_a_subfolder_scenario_is_selected_by_folder_and_name_and_not_by_all(tmp_path):
    _write(tmp_path, VALID, "top")
    (tmp_path / "extra").mkdir()
    _write(tmp_path / "extra", VALID, "deep")
    assert [s.name for s in select(["all"], tmp_path)] == ["top"]
    assert [s.name for s in select(["extra/deep", "top"], tmp_path)] == ["deep", "top"]
    with pytest.raises(ScenarioError, match=r"available: top \(or 'all'\), extra/deep;"):
        select(["deep"], tmp_path)


def test_a_replay_names_a_shipped_scenario_by_name_and_a_users_by_path(tmp_path,
                                                                       monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert scenario_arg(load(REPO_SCENARIOS / "power-loss.toml")) == "power-loss"
    windows = load(REPO_SCENARIOS / "windows" / "windows-concurrent.toml")
    assert scenario_arg(windows) == "windows/windows-concurrent"
    assert [s.name for s in select([scenario_arg(windows)], default_dir())] == [
        "windows-concurrent"]
    (tmp_path / "mine").mkdir()
    own = load(_write(tmp_path / "mine", VALID, "power-loss"))  # same name as a shipped one
    assert scenario_arg(own) == "mine/power-loss.toml"


# -- workload shapes ----------------------------------------------------------------------


def test_a_shaped_workload_loads_with_every_key(tmp_path):
    text = VALID.replace("processors = 2", 'processors = 3\nroles = ["producer", "both", '
                         '"consumer"]\nweights = [1, 2, 3]\nidle = [0]\nidle_after = 2\n'
                         "idle_for = 0.75")
    wl = load(_write(tmp_path, text)).workload
    assert (wl.roles, wl.weights, wl.idle, wl.idle_after, wl.idle_for) == (
        ("producer", "both", "consumer"), (1, 2, 3), (0,), 2, 0.75)


def test_the_shipped_idle_scenario_keeps_one_processor_idle():
    wl = load(REPO_SCENARIOS / "idle-processor.toml").workload
    assert wl.idle and wl.processors > len(wl.idle) and 0 < wl.idle_for <= 1


@pytest.mark.parametrize("bad", [dict(roles=("both",)), dict(weights=(1, -1)),
                                 dict(idle=(0, 1)), dict(idle=(5,)), dict(idle_for=0.0),
                                 dict(roles=("consumer", "consumer"))])
def test_a_workload_built_in_code_refuses_a_bad_shape(bad):
    with pytest.raises(ValueError, match="expected"):
        Workload(processors=2, **bad)


def test_a_workload_from_a_replay_file_takes_lists():
    wl = Workload(processors=2, roles=["both", "consumer"], weights=[2, 1], idle=[1])
    assert (wl.roles, wl.weights, wl.idle) == (("both", "consumer"), (2, 1), (1,))
    assert hash(wl) == hash(Workload(processors=2, roles=("both", "consumer"),
                                     weights=(2, 1), idle=(1,)))


def test_the_long_scenarios_load_and_stay_out_of_the_default_set():
    long = load_dir(REPO_SCENARIOS / "long")
    assert long and all(s.workload.entries >= 1000 and s.workload.idle for s in long)
    assert not {s.name for s in long} & {s.name for s in load_dir(REPO_SCENARIOS)}
