"""harness.report.progress: plain lines for logs (a fake clock), a tqdm bar on a terminal."""

from __future__ import annotations

import io

import pytest

from harness.report.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_come_at_most_every_interval_with_rate_eta_and_counts():
    clock, out = Clock(), io.StringIO()
    with Progress(total=10, description="stress", unit="run", mode="plain", stream=out,
                  interval_s=5, clock=clock) as bar:
        clock.now += 1
        bar.update(1, fail=1)           # 1 s in: too early for a line
        clock.now += 4
        bar.update(4, passed=4)         # 5 s in, 5 of 10 done: a line
        clock.now += 1
        bar.update(1, passed=1)         # 1 s after the last line: none
    lines = out.getvalue().splitlines()
    assert lines[0] == "stress: 5/10 run (50%), 1.0/s, ETA 5s, fail=1 passed=4"
    assert lines[1] == "stress: 6/10 run (60%), 1.0/s, done in 6s, fail=1 passed=5"
    assert len(lines) == 2 and bar.counts == {"fail": 1, "passed": 5} and bar.done == 6


def test_a_short_job_prints_nothing_and_an_unknown_total_has_no_eta():
    clock, out = Clock(), io.StringIO()
    with Progress(total=3, mode="plain", stream=out, clock=clock) as bar:
        bar.update(3)
    assert out.getvalue() == ""
    soak = Progress(total=None, description="soak", unit="cycle", mode="plain",
                    stream=out, interval_s=1, clock=clock)
    clock.now += 120
    soak.update(2)
    assert out.getvalue() == "soak: 2 cycle, 1.0/min\n"


def test_auto_picks_plain_when_the_stream_is_not_a_terminal():
    assert Progress(total=1, stream=io.StringIO()).mode == "plain"


def test_bar_mode_draws_a_tqdm_bar_and_write_goes_to_stdout(capsys):
    out = io.StringIO()
    with Progress(total=4, description="run legacy", unit="scenario", mode="bar",
                  stream=out) as bar:
        bar.update(1, fail=1)
        bar.write("FAIL disk-full")
    drawn = out.getvalue()
    assert "run legacy" in drawn and "1/4" in drawn and "fail=1" in drawn
    assert "FAIL disk-full" in capsys.readouterr().out


def test_off_prints_nothing_and_bad_arguments_are_refused(capsys):
    with Progress(total=2, mode="off") as bar:
        bar.update(2)
    assert capsys.readouterr().err == ""
    with pytest.raises(ValueError, match="mode"):
        Progress(total=1, mode="fancy")
    with pytest.raises(ValueError, match="total"):
        Progress(total=-1)
