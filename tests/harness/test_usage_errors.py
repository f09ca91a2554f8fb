"""Usage and environment errors, through the real ``harness`` command: exit 2, one line.

What a person sees when they mistype an option, name a target that does not import, give a
broken scenario file or ask for a report where nothing can be written: one line on stderr
naming the value, what was expected and what to do, nothing run, no traceback unless
``--debug``. A target whose constructor raises is a run that ends ERROR naming its message.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

MODULES = {
    "importbroken": "raise RuntimeError('config file /etc/jobs.ini is missing')\n",
    "needsdep": "import jobqueue_backend_that_is_not_installed\n",
    "typo": "def open_queue(directory:\n    pass\n",
    "notcallable": "limit = 3\n",
}

BAD_TOML = 'description = "broken"\nfault = "disk_full"\n[workload\nentries = 3\n'


def harness(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(HERE)]))
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    for name, text in MODULES.items():
        (tmp_path / f"{name}.py").write_text(text)
    (tmp_path / "bad.toml").write_text(BAD_TOML)
    (tmp_path / "adir").mkdir()
    return tmp_path


# argv -> words the one line must hold: the value, what was expected, what to do
BAD_INPUTS = [
    (["run", "--scenario", "disk-full", "--json", "/proc/x.json"],
     ["--json /proc/x.json", "cannot write there", "give a file path where you can write"]),
    (["run", "--scenario", "disk-full", "--junit", "adir"],
     ["--junit adir", "it is a directory", "give a file path"]),
    (["run", "--scenario", "disk-full", "--report-dir", "/proc/reports"],
     ["--report-dir /proc/reports", "cannot write there", "give a directory path"]),
    (["reproduce", "incident", "--json", "/proc/incident.json"],
     ["--json /proc/incident.json", "cannot write there"]),
    (["run", "--target", "nosuch"],
     ["target='nosuch'", "expected one of robust", "MODULE:CALLABLE", "harness list"]),
    (["run", "--target", "importbroken:open_queue"],
     ["target='importbroken:open_queue'", "RuntimeError: config file /etc/jobs.ini is missing",
      "importbroken.py:1", "fix the module", "--debug"]),
    (["run", "--target", "needsdep:open_queue"],
     ["No module named 'jobqueue_backend_that_is_not_installed'", "needsdep.py:1",
      "install it or fix the import"]),
    (["run", "--target", "typo:open_queue"],
     ["target='typo:open_queue'", "SyntaxError", "typo.py:1", "fix the module"]),
    (["run", "--target", "notcallable:limit"],
     ["'limit' is an int, expected a callable taking the queue directory"]),
    (["run", "--scenario", "bad.toml"],
     ["bad.toml, line 3", "not valid TOML", "fix the file and run again"]),
    (["run", "--seed", "-1"],
     ["argument --seed: '-1': expected an integer >= 0", "see 'harness run --help'"]),
    (["run", "--mode", "sideways"],
     ["argument --mode", "'sideways'", "choose from 'thread', 'process'", "harness run --help"]),
    (["run", "--progress", "loud"], ["argument --progress", "'loud'", "choose from"]),
    (["explore", "--fault", "power_loss", "--ops", "0"],
     ["argument --ops: '0': expected an integer >= 1", "harness explore --help"]),
]


@pytest.mark.parametrize("argv, words", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_on_stderr_and_exit_2(cwd, argv, words):
    proc = harness(*argv, cwd=cwd)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr  # no usage block, no traceback
    assert lines[0].startswith(f"harness {argv[0]}: error: ")
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert proc.stdout == ""  # nothing ran
    assert not (cwd / "reports").exists()  # and the output probe left nothing behind


def test_debug_shows_the_traceback_then_the_same_line(cwd):
    proc = harness("run", "--target", "importbroken:open_queue", "--debug", cwd=cwd)
    assert proc.returncode == 2
    assert "Traceback (most recent call last)" in proc.stderr
    assert re.search(r'File ".*importbroken\.py", line 1', proc.stderr)
    assert proc.stderr.splitlines()[-1].startswith("harness run: error: target=")


@pytest.mark.parametrize("command", ["run", "reproduce", "report", "list", "stress",
                                     "explore", "soak"])
def test_every_subcommand_takes_debug(cwd, command):
    proc = harness(command, "--help", cwd=cwd)
    assert proc.returncode == 0 and "--debug" in proc.stdout


def test_a_raising_constructor_is_an_error_naming_its_message_and_line(cwd):
    proc = harness("run", "--target", "naive_jsonstore:open_raising", "--scenario", "disk-full",
                   "--progress", "off", "--json", str(cwd / "run.json"), cwd=cwd)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("ERROR  disk-full"))
    error = lines[head + 1]  # the reason comes first, before anything else
    assert error.startswith("    error: the target could not be opened on a new, empty "
                            "directory"), error
    assert "RuntimeError: jobs database at " in error and "needs a schema migration" in error
    assert re.search(r"naive_jsonstore\.py:\d+ in open_raising", error), error
    assert "verdict: FAIL" in proc.stdout and "1 scenario (1 error)" in proc.stdout
