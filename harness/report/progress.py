"""Progress for long work (a whole ``run``, ``stress``, ``explore``, ``soak``): a bar or log lines.

One small API for every command that loops for a while::

    from harness.report.progress import Progress

    with Progress(total=len(scenarios), description="run legacy", unit="scenario") as bar:
        for sc in scenarios:
            result = do(sc)
            bar.update(1, **{result.status: 1})   # counts add up: fail=3 pass=9
            if result.status != "pass":
                bar.write(f"FAIL {sc.name}")      # a line that does not break the bar

- ``total`` may be None (unknown: a soak that runs until a deadline); the bar then
  shows counts and rate, no percentage or ETA.
- ``update(n=1, **counts)`` advances by ``n`` and adds each count to its running
  total; counts are shown sorted by name (``fail=3 pass=9``), so keep names short.
- ``elapsed=True`` adds the time so far to plain lines (an open-ended search has no ETA).
- ``write(line)`` prints a line to standard output without garbling the bar.
- ``counts`` and ``done`` read the running totals.

Where it shows: on a terminal (the progress stream is a TTY) a live tqdm bar with
counts, rate and ETA; otherwise (CI logs) a plain line at most every ``interval_s``
seconds (the first one after ``interval_s``, so a short job prints none), and a last
line when it closes if it printed any. ``mode`` forces ``"bar"``, ``"plain"`` or
``"off"``; the default, ``"auto"``, chooses from the stream. The bar and the plain lines
go to standard error, so standard output stays the command's own (reports, verdicts).
``clock`` is injectable so tests can drive the plain lines without sleeping.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO, Any

__all__ = ["MODES", "Progress"]

MODES = ("auto", "bar", "plain", "off")


class Progress:
    """A progress display for one loop; use as a context manager (see the module docstring)."""

    def __init__(self, total: int | None, description: str = "", *, unit: str = "item",
                 mode: str = "auto", stream: IO[str] | None = None,
                 interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 elapsed: bool = False) -> None:
        if mode not in MODES:
            raise ValueError(f"mode={mode!r}; expected one of {', '.join(MODES)}")
        if total is not None and total < 0:
            raise ValueError(f"total={total!r}; expected None or an int >= 0")
        self.total = total
        self.description = description
        self.unit = unit
        self.counts: dict[str, int] = {}
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._interval = interval_s
        self._clock = clock
        self._started = clock()
        self._last_line = self._started
        self._lines = 0
        self._bar: Any = None
        if mode == "auto":
            mode = "bar" if _isatty(self._stream) else "plain"
        self.mode = mode
        self.elapsed = elapsed  # plain lines say how long it has run (an open-ended search)

    # -- context manager

    def __enter__(self) -> Progress:
        if self.mode == "bar":
            from tqdm import tqdm  # imported here: a CI run never needs it

            self._bar = tqdm(total=self.total, desc=self.description, unit=f" {self.unit}",
                             file=self._stream, dynamic_ncols=True, leave=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Finish the display (the bar's last state, or a closing plain line)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.mode == "plain" and self._lines:
            self._emit(final=True)
            self._lines = 0

    # -- the loop's side

    def update(self, n: int = 1, **counts: int) -> None:
        """Advance by ``n`` and add ``counts`` to the running totals."""
        self.done += n
        for name, value in counts.items():
            self.counts[name] = self.counts.get(name, 0) + value
        if self._bar is not None:
            if counts or self.counts:
                self._bar.set_postfix_str(self._counts_text(), refresh=False)
            self._bar.update(n)
        elif self.mode == "plain" and self._clock() - self._last_line >= self._interval:
            self._emit()

    def write(self, line: str) -> None:
        """Print ``line`` on standard output, above the bar if there is one."""
        if self._bar is not None:
            self._bar.write(line, file=sys.stdout)
        else:
            print(line, flush=True)

    # -- text

    def _counts_text(self) -> str:
        return " ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))

    def line(self, *, final: bool = False) -> str:
        """The plain line for now: ``run legacy: 5/13 scenario (38%), 2.5/s, ETA 3s, fail=4``."""
        now = self._clock()
        elapsed = max(now - self._started, 1e-9)
        rate = self.done / elapsed
        parts = [f"{self.done}/{self.total}" if self.total is not None else str(self.done)]
        parts[0] += f" {self.unit}"
        if self.total:
            parts[0] += f" ({100 * self.done // self.total}%)"
        parts.append(f"{rate:.1f}/s" if rate >= 0.1 else f"{60 * rate:.1f}/min")
        if final:
            parts.append(f"done in {_duration(elapsed)}")
        elif self.total is not None and rate > 0:
            parts.append(f"ETA {_duration(max(self.total - self.done, 0) / rate)}")
        elif self.elapsed:
            parts.append(f"{_duration(elapsed)} elapsed")
        if self.counts:
            parts.append(self._counts_text())
        head = f"{self.description}: " if self.description else ""
        return head + ", ".join(parts)

    def _emit(self, *, final: bool = False) -> None:
        self._last_line = self._clock()
        self._lines += 1
        print(self.line(final=final), file=self._stream, flush=True)


def _isatty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or file-like stream without a tty
        return False


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
