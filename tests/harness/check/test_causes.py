"""Every failure names its cause, once per cause, through the real ``harness run``.

The naive JSON store (tests/harness/naive_jsonstore.py) is the case that hid its cause: four
processors rewrite one file in place, 77 of its calls raise ``JSONDecodeError`` from its
own ``json.loads``, and entries go missing with no fault near them. The terminal must say
that in one line with the line of the store that raised; a power loss that drops many
entries is one line too; and the wording reads as English ("1 fault", "an ENOENT").
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.check.checker import check
from harness.check.history import DRAIN, History

REPO = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parents[1]  # tests/harness: its fixtures
STORE = "naive_jsonstore:open_queue"

POWER_CUT = """\
description = "One power cut late in the run: a store that never fsyncs loses what it held."
fault = "power_loss"
seed = 1

[workload]
entries = 40
processors = 1
roles = ["producer"]

[[faults]]
kind = "power_loss"
at_op = 400
"""


def harness(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(HERE)]))
    return subprocess.run([sys.executable, "-m", "harness", *args, "--progress", "off"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def loads_line() -> int:
    """The line of the store's ``json.loads``: where its JSONDecodeError is raised from."""
    text = (HERE / "naive_jsonstore.py").read_text().splitlines()
    return next(n for n, line in enumerate(text, 1) if "json.loads(" in line)


@pytest.fixture(scope="module")
def store_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict, str]:
    out = tmp_path_factory.mktemp("store")
    proc = harness("run", "--target", STORE, "--scenario", "concurrent-processors",
                   "--json", str(out / "run.json"), "--markdown", str(out / "run.md"))
    return (proc, json.loads((out / "run.json").read_text()),
            (out / "run.md").read_text())


def test_the_target_raising_is_named_with_its_line_in_one_grouped_line(store_run):
    proc, _, _ = store_run
    assert proc.returncode == 1
    where = rf"tests/harness/naive_jsonstore\.py:{loads_line()} in _load"
    grouped = [line for line in proc.stdout.splitlines()
               if re.match(r"    \d+ entries lost \(e\d+(, e\d+)*(, \.\.\. \d+ more)?\): ", line)]
    assert len(grouped) == 1, proc.stdout
    assert re.search(r"the target itself raised JSONDecodeError: Extra data\S* .*at "
                     rf"{where}, in \d+ calls \(\d+ claim, \d+ enqueue", grouped[0]), grouped[0]
    # no line per entry, and the store's own exception named where it stopped the drain
    assert not re.search(r"^    lost e\d+", proc.stdout, re.M), proc.stdout
    assert "no fault fired around it" not in proc.stdout
    assert re.search(rf"unavailable queue: .*JSONDecodeError: Extra data.* at {where}",
                     proc.stdout), proc.stdout


def test_the_json_keeps_every_detail_and_adds_the_causes(store_run):
    _, run, _ = store_run
    (s,) = run["scenarios"]
    lost = [v for v in s["violations"] if v["kind"] == "lost"]
    assert len(lost) > 1
    for v in lost:  # per entry, as before: the story, its ops, its faults
        assert v["detail"].startswith(f"entry {v['entry']}: enqueue returned ok at op ")
        assert set(v) >= {"kind", "entry", "detail", "ops", "faults"}
    (group,) = [c for c in s["causes"] if c["kind"] == "lost"]
    assert group["count"] == len(lost) and sorted(group["entries"]) == sorted(
        v["entry"] for v in lost)
    (top, *_) = s["target_errors"]
    assert top["error"].startswith("JSONDecodeError: Extra data")
    assert top["where"] == f"tests/harness/naive_jsonstore.py:{loads_line()} in _load"
    assert top["count"] == sum(top["calls"].values()) > 10


def test_the_markdown_summary_names_the_cause(store_run):
    _, run, md = store_run
    (group,) = [c for c in run["scenarios"][0]["causes"] if c["kind"] == "lost"]
    assert f"- {group['text']}" in md
    assert "JSONDecodeError: Extra data" in group["text"] and "_load" in group["text"]


def test_many_entries_lost_to_one_power_loss_are_one_line(tmp_path):
    (tmp_path / "power-cut.toml").write_text(POWER_CUT)
    proc = harness("run", "--target", STORE, "--scenario", str(tmp_path / "power-cut.toml"),
                   "--report-dir", str(tmp_path / "reports"), cwd=tmp_path)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    (line,) = [x for x in lines if "never made durable" in x]
    found = re.match(r"    (\d+) entries lost \((e\d+, ){3}\.\.\. (\d+) more\): power lost; "
                     r"dropped q/ \(never made durable by an fsync of \./\) \(PowerLoss at op "
                     r"\d+\)$", line)
    assert found, line
    assert int(found.group(1)) >= 8 and int(found.group(3)) == int(found.group(1)) - 3
    assert "1 fault fired," in lines[1]  # after the line naming the scenario set
    assert "verdict: FAIL target naive_jsonstore:open_queue: 1 scenario (1 fail)" in proc.stdout


def test_the_op_count_covers_the_op_numbers_shown(store_run):
    proc, run, _ = store_run
    head = proc.stdout.splitlines()[1]  # after the line naming the scenario set
    ops = re.search(r", (\d+) ops \((\d+) file calls\), ", head)
    assert ops, head
    assert int(ops.group(1)) == run["scenarios"][0]["history_ops"]
    assert int(ops.group(2)) == run["scenarios"][0]["ops"]
    cited = [int(n) for n in re.findall(r"\bop (\d+)\b", proc.stdout)]
    cited += [o for v in run["scenarios"][0]["violations"] for o in v["ops"]]
    assert cited and max(cited) < int(ops.group(1))


def test_wording_an_errno_and_no_entry_named_twice(tmp_path):
    proc = harness("run", "--target", "legacy", "--scenario", "concurrent-power-loss",
                   "--json", str(tmp_path / "run.json"), "--junit", str(tmp_path / "run.xml"),
                   "--markdown", str(tmp_path / "run.md"))
    assert proc.returncode == 1
    reports = [(tmp_path / name).read_text() for name in ("run.json", "run.xml", "run.md")]
    # legacy swallows a failed rename (ENOENT, no fault of ours): the detail says so
    assert "an ENOENT error (no fault of ours)" in reports[0]
    for text in (proc.stdout, *reports):
        assert "a ENOENT" not in text
    for text in (proc.stdout, *reports[1:]):
        assert not re.search(r"\b(e\d+)`?: entry \1:", text), text


def test_an_enqueue_that_raised_ended_unknown_as_the_readme_says():
    # e1's enqueue raised (unknown outcome), yet it came out and was acked; the drain
    # then claims it again: a duplicate, whose story starts with that enqueue.
    h = History()
    h.op("invoke", 0, "enqueue", key="e1", value={"payload": b"e1|x"})
    h.op("info", 0, "enqueue", key="e1", value={"payload": b"e1|x"}, error="OSError: boom")
    h.op("invoke", 0, "claim")
    h.op("ok", 0, "claim", key="e1", value={"id": "1", "payload": b"e1|x"})
    h.op("invoke", 0, "ack", key="e1", value={"id": "1"})
    h.op("ok", 0, "ack", key="e1", value={"id": "1"})
    h.op("invoke", DRAIN, "claim")
    h.op("ok", DRAIN, "claim", key="e1", value={"id": "1", "payload": b"e1|x"})
    h.op("invoke", DRAIN, "ack", key="e1", value={"id": "1"})
    h.op("ok", DRAIN, "ack", key="e1", value={"id": "1"})
    (v,) = check(h).violations
    assert v.kind == "duplicate"
    assert "enqueue ended unknown at op 1 but it came out at op 3" in v.detail
    assert "ended info" not in v.detail
