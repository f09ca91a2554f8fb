"""``--platform windows``: each rule of harness._windows on the real disk and under pyfakefs,
in thread mode and process mode, and the option, the scenario key and the reproduction."""

from __future__ import annotations

import contextlib
import errno
import os
import platform
import random
import shutil
from pathlib import Path

import pytest

from harness import cli, runner
from harness.actions import PowerCut
from harness.durability import DurabilityModel
from harness.faults import ConcurrentProcessors, KillMidWrite, Plan
from harness.history import History
from harness.processes import run_scenario as run_processes
from harness.scenarios import Scenario, ScenarioError, Workload, load
from harness.shim import ProcessorKilled, ShimError, installed

REPO = Path(__file__).resolve().parents[2]
WINDOWS_SCENARIO = REPO / "scenarios" / "windows" / "windows-concurrent.toml"
SHARING = "[WinError 32] The process cannot access the file because it is being used by " \
          "another process"


@contextlib.contextmanager
def windows(sandbox, **kw):
    history = History()
    with installed(sandbox=sandbox, history=history, platform="windows", **kw) as shim:
        yield shim, history


def put(sandbox, rel, data=b"old"):
    path = os.path.join(sandbox, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


def read(path):
    with open(path, "rb") as f:
        return f.read()


def last(history):
    return history.fs_ops()[-1]


def refused(history):
    return [r for r in history.fs_ops() if r.outcome != "ok"]


# -- W1, W2: delete ----------------------------------------------------------------------


def test_delete_of_a_file_another_processor_holds_open_is_winerror_32(sandbox):
    path = put(sandbox, "q/a")
    with windows(sandbox) as (shim, h):
        with shim.processor(1):
            held = open(path, "rb")  # noqa: SIM115 - held across the other's call
        with shim.processor(2), pytest.raises(PermissionError) as info:
            os.unlink(path)
        exc = info.value
        assert (exc.winerror, exc.errno) == (32, errno.EACCES)
        assert str(exc) == f"{SHARING}: {path!r}"
        assert os.path.exists(path)
        rec = last(h)
        assert (rec.call, rec.process, rec.outcome) == ("unlink", 2, "EACCES")
        assert rec.fault.startswith("Windows semantics (WinError 32: delete of a file")
        with shim.processor(1):
            held.close()
        with shim.processor(2):
            os.remove(path)  # nobody holds it now
    assert not os.path.exists(path)
    # the platform's answer, not a fault of the scenario
    assert shim.faults_fired == 0 and shim.platform_refusals == 1


def test_a_processors_own_handle_blocks_its_own_delete(sandbox):
    path = put(sandbox, "q/a")
    with windows(sandbox) as (shim, _h), shim.processor(1):
        fd = os.open(path, os.O_RDONLY)
        with pytest.raises(PermissionError) as info:
            os.remove(path)
        os.close(fd)
        os.remove(path)
    assert info.value.winerror == 32


def test_the_same_calls_pass_on_linux(sandbox):
    path = put(sandbox, "q/a")
    other = put(sandbox, "q/b")
    with installed(sandbox=sandbox, history=History()) as shim, shim.processor(1):
        with open(path, "rb"), open(other, "rb"):
            os.replace(other, path)
            os.unlink(path)
        assert platform.system() == "Linux"
    assert shim.platform_refusals == 0 and not os.path.exists(path)


def test_delete_of_a_read_only_file_is_winerror_5_after_the_sharing_check(sandbox):
    path = put(sandbox, "q/a")
    os.chmod(path, 0o444)
    with windows(sandbox) as (shim, _h), shim.processor(1):
        with pytest.raises(PermissionError) as alone:
            os.unlink(path)
        with open(path, "rb"), pytest.raises(PermissionError) as held:
            os.unlink(path)
    assert alone.value.winerror == 5 and str(alone.value).startswith("[WinError 5] Access is")
    assert held.value.winerror == 32  # the open for delete access fails first
    assert os.path.exists(path)


# -- W3-W5: rename and replace ------------------------------------------------------------


@pytest.mark.parametrize("name", ["rename", "replace"])
def test_rename_or_replace_of_a_source_another_handle_holds_is_winerror_32(sandbox, name):
    src, dst = put(sandbox, "q/tmp", b"new"), os.path.join(sandbox, "q", "state")
    with windows(sandbox) as (shim, h):
        with shim.processor(1):
            held = open(src, "rb")  # noqa: SIM115
        with shim.processor(2), pytest.raises(PermissionError) as info:
            getattr(os, name)(src, dst)  # looked up now: the shim patched it
        with shim.processor(1):
            held.close()
    assert info.value.winerror == 32
    assert str(info.value) == f"{SHARING}: {src!r} -> {dst!r}"
    assert os.path.exists(src) and not os.path.exists(dst)
    (rec,) = refused(h)
    assert rec.fault.startswith("Windows semantics (WinError 32: rename of a file")


def test_os_rename_onto_an_existing_name_is_winerror_183(sandbox):
    src, dst = put(sandbox, "q/tmp", b"new"), put(sandbox, "q/state", b"old")
    with windows(sandbox) as (shim, h), shim.processor(1), pytest.raises(FileExistsError) as e:
        os.rename(src, dst)
    assert (e.value.winerror, e.value.errno) == (183, errno.EEXIST)
    assert str(e.value).startswith("[WinError 183] Cannot create a file when that file")
    assert read(dst) == b"old" and read(src) == b"new"
    assert last(h).outcome == "EEXIST"


def test_os_replace_onto_a_target_another_handle_holds_is_winerror_5(sandbox):
    src, dst = put(sandbox, "q/tmp", b"new"), put(sandbox, "q/state", b"old")
    with windows(sandbox) as (shim, h):
        with shim.processor(1):
            reader = open(dst, "rb")  # noqa: SIM115
        with shim.processor(2), pytest.raises(PermissionError) as info:
            os.replace(src, dst)
        assert read(dst) == b"old" and read(src) == b"new"
        with shim.processor(1):
            reader.close()
        with shim.processor(2):
            os.replace(src, dst)  # closed: the replace goes through
    assert info.value.winerror == 5
    assert str(info.value) == f"[WinError 5] Access is denied: {src!r} -> {dst!r}"
    assert read(dst) == b"new" and not os.path.exists(src)
    (rec,) = refused(h)
    assert (rec.call, rec.path, rec.path2) == ("replace", "q/tmp", "q/state")
    assert rec.fault == ("Windows semantics (WinError 5: replace onto a file another "
                                "handle holds open)")


def test_os_replace_onto_a_read_only_target_is_winerror_5(sandbox):
    src, dst = put(sandbox, "q/tmp", b"new"), put(sandbox, "q/state", b"old")
    os.chmod(dst, 0o444)
    with windows(sandbox) as (shim, _h), shim.processor(1), pytest.raises(PermissionError) as e:
        os.replace(src, dst)
    assert e.value.winerror == 5 and read(dst) == b"old"


def test_shutil_move_onto_an_existing_file_copies_as_cpython_does_on_windows(sandbox):
    src, dst = put(sandbox, "q/tmp", b"new"), put(sandbox, "q/state", b"old")
    with windows(sandbox) as (shim, h), shim.processor(1):
        shutil.move(src, dst)  # os.rename refuses (183); shutil.move copies, then deletes
    assert read(dst) == b"new" and not os.path.exists(src)
    assert [(r.call, r.outcome) for r in h.fs_ops()] == [("replace", "ok")]
    assert shim.windows.copied == 1 and shim.platform_refusals == 0


def test_shutil_move_of_a_source_another_handle_holds_copies_then_fails_to_delete(sandbox):
    src, dst = put(sandbox, "q/tmp", b"new"), os.path.join(sandbox, "q", "state")
    with windows(sandbox) as (shim, h):
        with shim.processor(1):
            writer = open(src, "ab")  # noqa: SIM115 - another processor still writes it
        with shim.processor(2), pytest.raises(PermissionError) as info:
            shutil.move(src, dst)
        with shim.processor(1):
            writer.close()
    assert info.value.winerror == 32 and str(info.value) == f"{SHARING}: {src!r}"
    assert read(dst) == b"new" and read(src) == b"new"  # copied, source left behind
    (rec,) = refused(h)
    assert (rec.call, rec.path, rec.path2) == ("replace", "q/tmp", "q/state")
    assert "shutil.move's delete (after its copy)" in rec.fault


# -- W6, W7: directories and fsync -------------------------------------------------------


def test_a_directory_cannot_be_opened_so_never_fsynced(sandbox):
    q = os.path.dirname(put(sandbox, "q/a"))
    with windows(sandbox) as (shim, h), shim.processor(1):
        with pytest.raises(PermissionError) as raw:
            os.open(q, os.O_RDONLY)
        with pytest.raises(PermissionError) as builtin:
            open(q, "rb")  # noqa: SIM115 - raises
    for exc in (raw.value, builtin.value):
        assert (exc.errno, exc.strerror, exc.filename) == (errno.EACCES, "Permission denied", q)
        assert not hasattr(exc, "winerror")  # through the C runtime: an errno only
    assert [r.fault for r in h.fs_ops()] == [
        "Windows semantics (EACCES: a directory cannot be opened)"] * 2
    assert not [fd for fd, info in shim._fds.items() if info.is_dir]


def test_fsync_needs_a_descriptor_open_for_writing(sandbox):
    path = put(sandbox, "q/a")
    with windows(sandbox) as (shim, h), shim.processor(1):
        fd = os.open(path, os.O_RDONLY)
        with pytest.raises(OSError) as info:
            os.fsync(fd)
        os.close(fd)
        with open(path, "rb") as f, pytest.raises(OSError):
            os.fsync(f.fileno())
        with open(path, "ab") as f:
            os.fsync(f.fileno())
    assert info.value.errno == errno.EBADF
    assert [r.outcome for r in h.fs_ops() if r.call == "fsync"] == ["EBADF", "EBADF", "ok"]


# -- whose handles count ------------------------------------------------------------------


def test_a_killed_processors_handles_no_longer_block(sandbox):
    path = put(sandbox, "q/a")
    with windows(sandbox) as (shim, _h):
        with shim.processor(1):
            open(path, "rb")  # noqa: SIM115 - never closed: its processor dies
        shim.kill(1, "test")
        with shim.processor(2):
            os.unlink(path)  # Windows closed the dead process's handles
    assert not os.path.exists(path)


def test_rmtree_walks_by_name_and_meets_the_open_file(sandbox):
    put(sandbox, "q/d/a")
    inner = put(sandbox, "q/d/e/b")
    with windows(sandbox) as (shim, h), shim.processor(1):
        with open(inner, "rb"), pytest.raises(PermissionError) as info:
            shutil.rmtree(os.path.join(sandbox, "q", "d"))
        shutil.rmtree(os.path.join(sandbox, "q", "d"))
    assert info.value.winerror == 32 and not os.path.exists(os.path.join(sandbox, "q", "d"))
    assert not [r for r in h.fs_ops() if r.call == "open" and r.outcome != "ok"]


def test_platform_system_answers_windows_to_a_processor_only(sandbox):
    with windows(sandbox) as (shim, _h):
        assert platform.system() == "Linux"
        with shim.processor(1):
            assert platform.system() == "Windows"
    assert platform.system() == "Linux"


def test_an_unknown_platform_is_refused(sandbox):
    with (pytest.raises(ShimError, match="platform='mac'; expected one of linux, windows"),
          installed(sandbox=sandbox, history=History(), platform="mac")):
        pass


# -- durability: names as of the call --------------------------------------------------------


class _Once:
    def __init__(self, kind, action):
        self.kind, self.action = kind, action

    def decide(self, call):
        if self.action is not None and call.kind == self.kind:
            action, self.action = self.action, None
            return action
        return None


@pytest.mark.parametrize("fsynced, left", [(True, b"new"), (False, b"")])
def test_a_power_loss_keeps_names_made_before_it(sandbox, fsynced, left):
    """No directory can be fsynced: the rename survives (NTFS journals names), the data
    only as fsynced."""
    put(sandbox, "q/queue.json", b"old")
    j = lambda *p: os.path.join(sandbox, *p)  # noqa: E731
    plan = _Once("stat", PowerCut(fault="PowerLoss()", kind="power_loss"))
    with windows(sandbox, plan=plan, rng=random.Random(2)) as (shim, _h):
        shim.model = DurabilityModel(sandbox, shim.real)
        shim.model.snapshot_all()
        with shim.processor(1), pytest.raises(ProcessorKilled):
            with open(j("q", "queue.json.tmp"), "wb") as f:
                f.write(b"new")
                f.flush()
                if fsynced:
                    os.fsync(f.fileno())
            os.replace(j("q", "queue.json.tmp"), j("q", "queue.json"))
            os.stat(j("q", "queue.json"))  # the power goes here
    assert sorted(os.listdir(j("q"))) == ["queue.json"] and read(j("q", "queue.json")) == left


# -- runs: thread mode and process mode ------------------------------------------------------


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
    assert run.platform_refusals == 3 and run.faults_fired == 0
    assert run.result.valid and run.result.counts["delivered"] == 3
    assert run.status == "no_fault_fired"
    d = run.to_dict()
    assert d["platform"] == "windows" and d["platform_refusals"] == 3
    assert "3x EACCES (WinError 5) on replace q/state.tmp" in d["observations"]
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
    code = cli.main(["reproduce", "incident", "--platform", "windows", "--scenario-dir",
                     str(REPO / "scenarios"), "--report-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    assert "Windows semantics: the calls Windows refused" in out
    assert "EACCES (WinError 32) on unlink q/queue.json" in out
    assert "replay: harness run --target legacy --scenario incident --seed 1 --platform " \
           "windows" in out
    assert "[WinError 5] Access is denied: queue.json.tmp -> queue.json" in out
    assert out.rstrip().splitlines()[-1].startswith(
        "verdict: REPRODUCED: under Windows semantics the legacy design met")
