"""Nothing left behind: an interrupted run (soak, process or thread mode) leaves nothing.

Each test starts the harness in a subprocess with ``TMPDIR`` pointing at a fresh
directory and a unique marker in its command line (forked workers inherit it), waits
until it really has workers (and, for the process-mode run as root, its tmpfs), sends
the signal, and then looks at /proc and at the directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

DRIVER = """
import argparse, sys
what = sys.argv[2]
if what == "soak":
    from harness.run import soak
    parser = argparse.ArgumentParser()
    soak.configure(parser)
    raise SystemExit(soak.command(parser.parse_args(
        ["--target", "robust", "--processes", "4", "--duration", "120",
         "--kill-every", "0.3"])))
from harness import faults
from harness.run.runner import run_scenario
from harness.run.scenarios import Scenario, Workload
# a DiskFull that never fills: the run mounts its tmpfs and then runs for a long time
plan = faults.Plan(faults=(faults.DiskFull(after_bytes=10**9),))
sc = Scenario(name="long", description="long", fault="disk_full", plan=plan,
              workload=Workload(entries=200000, processors=2))
run_scenario("robust", sc, mode="thread" if what == "thread" else "process")
"""

# The command as a user runs it (the console script calls main() and exits with its code).
CLI = "import sys; from harness.cli import main; sys.exit(main(sys.argv[2:]))"

# A process-mode scenario long enough to be interrupted in the middle (the disk never fills).
LONG_PROCESS_RUN = """\
description = "a long process-mode run, to be interrupted"
fault = "disk_full"
mode = "process"

[workload]
entries = 200000
processors = 2

[[faults]]
kind = "disk_full"
after_bytes = 1000000000
"""

_WAIT_S = 20.0


def _marked(marker: str) -> list[int]:
    """Pids whose command line carries the marker (the harness and its forked workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _mounts_under(path: Path) -> list[str]:
    return [line for line in Path("/proc/mounts").read_text().splitlines()
            if str(path) in line]


def _leftovers(tmp_path: Path) -> list[Path]:
    return [p for p in tmp_path.iterdir() if p.name.startswith("harness-")]


def _start(tmp_path: Path, what: str | list[str]) -> tuple[subprocess.Popen, str]:
    """``what``: a DRIVER case, or the arguments of the ``harness`` command."""
    marker = f"cleanup-{uuid.uuid4().hex}"
    env = dict(os.environ, TMPDIR=str(tmp_path))
    argv = [DRIVER, marker, what] if isinstance(what, str) else [CLI, marker, *what]
    proc = subprocess.Popen([sys.executable, "-c", *argv], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, marker


def _wait_until(condition, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + _WAIT_S
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the harness ended early: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the harness never started its workers")
        time.sleep(0.05)


def _interrupt_and_check(tmp_path: Path, what: str | list[str], signum: int, *,
                         ready: Callable[[str], bool], settle: float = 0.0
                         ) -> tuple[int, str, str]:
    """Start ``what``, wait until ``ready(marker)`` (and ``settle`` seconds more), send
    ``signum``; then no marked process, no mount and no sandbox may be left. Returns the
    exit code, standard output and standard error."""
    proc, marker = _start(tmp_path, what)
    try:
        _wait_until(lambda: ready(marker), proc)
        time.sleep(settle)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0, (out, err)
    deadline = time.monotonic() + 5  # reaped means gone; allow the kernel its bookkeeping
    while _marked(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _marked(marker) == [], "a worker outlived the harness"
    assert _mounts_under(tmp_path) == []
    assert _leftovers(tmp_path) == []
    return proc.returncode, out, err


def _workers(marker: str) -> bool:
    return len(_marked(marker)) >= 3  # the harness and 2+ workers


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_soak_leaves_nothing_behind(tmp_path, signum):
    _interrupt_and_check(tmp_path, "soak", signum, ready=_workers)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_process_run_leaves_nothing_behind(tmp_path, signum):
    mounted = os.geteuid() == 0  # as root the run mounts its tmpfs first
    _interrupt_and_check(tmp_path, "run", signum, ready=lambda m: _workers(m) and (
        not mounted or bool(_mounts_under(tmp_path))))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_harness_run_exits_with_the_signal_code_and_one_line(tmp_path, signum):
    # `harness run --mode process` as a user runs it: Ctrl-C (or a CI runner's SIGTERM) ends
    # it with 130 (143), one line on stderr and no traceback, after the same cleanup.
    scenario = tmp_path / "long-process-run.toml"
    scenario.write_text(LONG_PROCESS_RUN)
    mounted = os.geteuid() == 0
    code, out, err = _interrupt_and_check(
        tmp_path, ["run", "--mode", "process", "--scenario", str(scenario), "--progress",
                   "off", "--report-dir", str(tmp_path / "reports")], signum,
        ready=lambda m: _workers(m) and (not mounted or bool(_mounts_under(tmp_path))))
    assert code == 128 + signum, (out, err)
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert signal.Signals(signum).name in lines[0] and "interrupted" in lines[0], err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_thread_run_leaves_no_sandbox(tmp_path, signum):
    # one process, no workers: ready once its sandbox exists, then well into the workload
    _interrupt_and_check(tmp_path, "thread", signum,
                         ready=lambda _m: bool(_leftovers(tmp_path)), settle=0.5)


def test_workers_die_with_a_harness_that_is_sigkilled(tmp_path):
    proc, marker = _start(tmp_path, "soak")
    try:
        _wait_until(lambda: _workers(marker), proc)
        proc.kill()  # no cleanup can run: the kernel must take the workers down
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while _marked(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _marked(marker) == []
    finally:
        for leftover in _leftovers(tmp_path):  # a SIGKILLed harness cannot tidy up
            subprocess.run(["rm", "-rf", str(leftover)], check=False)


def test_a_signal_during_a_cleanup_waits_for_its_end(tmp_path, monkeypatch):
    # Between two scenarios the interrupt may land inside the last one's cleanup: that
    # cleanup still finishes (its sandbox is gone), and the interrupt comes right after.
    from harness.run import reaper as _reaper
    monkeypatch.setattr(_reaper.tempfile, "tempdir", str(tmp_path))
    sandbox = _reaper.make_sandbox()
    done = []
    with (pytest.raises(_reaper.Interrupted) as caught, _reaper.interruptible(),
          _reaper.deferred()):
        os.kill(os.getpid(), signal.SIGINT)  # its handler runs here, and must not raise yet
        _reaper.remove_sandbox(sandbox)
        done.append(True)
    assert done and caught.value.signum == signal.SIGINT
    assert not os.path.exists(sandbox) and _reaper.sweep() == []


def test_sweep_removes_a_sandbox_whose_cleanup_never_ran(tmp_path, monkeypatch):
    from harness.run import reaper as _reaper
    monkeypatch.setattr(_reaper.tempfile, "tempdir", str(tmp_path))
    sandbox = _reaper.make_sandbox()
    Path(sandbox, "q").mkdir()
    assert _reaper.sweep() == [sandbox]
    assert not os.path.exists(sandbox) and _reaper.sweep() == []


def test_an_interrupt_raised_where_python_cannot_propagate_it_is_delivered_again(capsys):
    # found by the suite: SIGTERM landing inside hypothesis's gc callback printed
    # "Exception ignored ... Traceback" and the interrupt was lost (the handler had
    # already ignored further signals)
    import signal as _signal

    from harness.run import reaper as _reaper
    class Bomb:
        def __del__(self):
            _signal.raise_signal(_signal.SIGTERM)
            for _ in range(100):  # the Python-level handler runs here, inside __del__
                pass

    with pytest.raises(_reaper.Interrupted), _reaper.interruptible():
        Bomb()  # collected at once
        for _ in range(500):  # the interrupt comes back within moments (bounded wait)
            time.sleep(0.01)
    assert "Exception ignored" not in capsys.readouterr().err


@pytest.mark.parametrize("delay_ms", [0, 5, 20, 60, 150, 400])
def test_an_interrupted_thread_run_leaves_no_processor_running(tmp_path, monkeypatch, delay_ms):
    # Found by stress's Ctrl-C test: a processor outlived the run and re-created the
    # sandbox on the real disk once the shim was gone. Two causes: a processor killed by
    # the interrupt restarted (a kill models a crash, and a crashed processor comes back);
    # and the interrupt landing in Thread.join made Python 3.11 think the thread had ended.
    # Interrupted at any moment, a thread-mode run ends with no processor thread alive and
    # nothing left, then or a moment later.
    import threading

    from harness.run import reaper as _reaper
    from harness.run.runner import run_scenario
    from harness.run.scenarios import default_dir, select

    monkeypatch.setattr(_reaper.tempfile, "tempdir", str(tmp_path))
    scenario = select(["concurrent-processors"], default_dir())[0]
    timer = threading.Timer(delay_ms / 1000, os.kill, (os.getpid(), signal.SIGTERM))
    try:
        with pytest.raises(_reaper.Interrupted), _reaper.interruptible():
            timer.start()
            for seed in range(1000):  # until the signal comes
                run_scenario("legacy", scenario, seed=seed)
    finally:
        timer.cancel()
    # as every command does on an interrupt: a sandbox made just before the run's own
    # cleanup could begin is removed here
    _reaper.sweep()
    # by the kernel's list of this process's threads: after an interrupted join, Python
    # 3.11's own is_alive() can say False for a thread still running (bpo-45274)
    tasks = {int(t.name) for t in Path("/proc/self/task").iterdir()}
    alive = [t.name for t in threading.enumerate()
             if t.name.startswith("harness-") and t.native_id in tasks]
    assert alive == []
    time.sleep(0.3)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/fuse"),
                    reason="the FUSE layer needs root and /dev/fuse")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_fuse_run_unmounts_and_leaves_nothing_behind(tmp_path, signum):
    from harness.run._fusemount import refusal
    if refusal() is not None:
        pytest.skip(f"FUSE layer unavailable: {refusal()}")
    scenario = tmp_path / "long-process-run.toml"
    scenario.write_text(LONG_PROCESS_RUN)
    code, out, err = _interrupt_and_check(
        tmp_path, ["run", "--layer", "fuse", "--scenario", str(scenario), "--progress",
                   "off", "--report-dir", str(tmp_path / "reports")], signum,
        ready=lambda m: _workers(m) and any(" fuse" in line for line in _mounts_under(tmp_path)),
        settle=0.3)
    assert code == 128 + signum, (out, err)
    assert "Traceback" not in err, err
