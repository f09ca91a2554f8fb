"""``harness soak``: real producers and consumers, SIGKILLed at random, then drained and checked.

Durations are short; the assertions are on counts the run reports (kills, restarts,
entries, verdicts), never on how fast anything went.
"""

from __future__ import annotations

import argparse
import json

import pytest

from harness.check.history import History
from harness.run import soak


def short(target: str, **kw):
    args = dict(processes=4, duration=3.0, kill_every=0.3, seed=7)
    args.update(kw)
    return soak.soak(target, **args)


def test_robust_survives_sigkills_with_no_violation():
    run = short("robust")
    assert run["kills"] >= 3 and run["restarts"] == run["kills"]
    assert run["entries"] > 0
    assert run["status"] == "pass", (run["violations"][:3], run["observations"])
    assert run["violations_total"] == 0
    assert run["counts"]["delivered"] + run["counts"].get("recovered", 0) > 0


def test_legacy_loses_entries_under_real_processes():
    run = short("legacy")
    assert run["status"] == "fail"
    assert run["violations_total"] > 0
    assert {v["kind"] for v in run["violations"]} & {"lost", "duplicate", "stuck",
                                                      "silent_error"}
    assert run["replay"] == ("harness soak --target legacy --processes 4 --duration 3 "
                             "--kill-every 0.3 --seed 7")


def test_no_kill_is_not_a_pass():
    run = short("robust", duration=0.5, kill_every=5.0, processes=2)
    assert run["kills"] == 0
    assert run["status"] == "no_fault_fired"


def test_command_writes_the_json_and_exits_like_run(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    soak.configure(parser)
    out = tmp_path / "soak.json"
    code = soak.command(parser.parse_args(
        ["--target", "robust", "--processes", "2", "--duration", "1.5", "--kill-every", "0.3",
         "--json", str(out)]))
    data = json.loads(out.read_text())
    assert code == (0 if data["status"] == "pass" else 1)
    for key in ("violations_total", "violations", "status", "replay", "kills", "restarts",
                "entries", "entries_per_s"):
        assert key in data
    assert isinstance(data["kills"], int) and isinstance(data["entries_per_s"], float)
    assert "verdict:" in capsys.readouterr().out


@pytest.mark.parametrize("bad", [["--processes", "0"], ["--duration", "-1"],
                                 ["--kill-every", "x"]])
def test_bad_arguments_are_usage_errors(bad):
    parser = argparse.ArgumentParser()
    soak.configure(parser)
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(bad)
    assert exc.value.code == 2


def test_merged_records_keep_real_time_order():
    s = soak._Soak.__new__(soak._Soak)
    s.records = [(30, 0, 1, "op", "ok", "enqueue", "e1", {"id": "1"}, None),
                 (10, 1, 1, "op", "invoke", "enqueue", "e1", {"payload": b"e1|x"}, None),
                 (20, 2, 2, "op", "invoke", "claim", None, None, None)]
    h = s.history()
    assert isinstance(h, History)
    assert [(o.process, o.type, o.f) for o in h.ops()] == [
        (1, "invoke", "enqueue"), (2, "invoke", "claim"), (1, "ok", "enqueue")]
