"""Report names that a concurrent run never takes over: claimed before a run, kept to its end.

Two runs started in one directory used to write the same ``run-<target>.json``, and the
one that finished last replaced the other's report (a failing run's report was replaced
by a passing one). Now a run claims its names before it starts: an ``flock`` on a hidden
lock file beside each report (``.run-robust-thread.json.lock``), held until its reports
are written. A name another live run holds is skipped for the next free one (``-2``, ``-3``,
...), so concurrent runs keep every report, while a run started after another one ended
reuses the plain name and replaces that earlier report, which is what a re-run is for.
The kernel drops an ``flock`` when its process dies, SIGKILL included, so a crashed run
never keeps a name; its lock file stays behind, hidden and harmless, for the next run.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["Claim", "ReportPathError", "claim", "safe_name", "stem_for"]

_MAX_TRIES = 1000  # names -2 .. -1000: more concurrent runs than that in one directory is a bug


class ReportPathError(Exception):
    """A report location the run cannot write (the message is one line for the user)."""


class Claim:
    """The report paths one run holds: ``paths[fmt]``; ``release()`` once they are written."""

    def __init__(self) -> None:
        self.paths: dict[str, Path] = {}
        self.moved: list[str] = []  # "NAME (held by another run) -> NAME used instead"
        self._locks: list[tuple[int, Path]] = []

    def release(self) -> None:
        # Unlink while still holding the lock: a run that opened the old file and locks it
        # after us sees it is no longer the file at that name, and tries again.
        for fd, lock in self._locks:
            try:
                os.unlink(lock)
            except FileNotFoundError:
                pass
            finally:
                os.close(fd)
        self._locks.clear()

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def claim(stem: str, report_dir: str | Path | None, explicit: Mapping[str, str | Path | None],
          suffixes: Mapping[str, str]) -> Claim:
    """Hold a path for every format of ``explicit``: its own path if one is given, else
    ``<report_dir>/<stem>.<suffix>`` (all formats of one run share one free stem, so its
    files stay together). A path may become ``<name>-N``; raises `ReportPathError`."""
    held = Claim()
    try:
        for fmt, path in explicit.items():
            if path is not None:
                path = Path(path)
                base = _hold(held, path.parent, path.stem, [path.suffix], path.suffix)
                held.paths[fmt] = base.with_name(base.name + path.suffix)
        rest = [fmt for fmt, path in explicit.items() if path is None]
        if rest and report_dir is not None:
            free = _hold(held, Path(report_dir), stem, [suffixes[f] for f in rest], ".*")
            for fmt in rest:
                held.paths[fmt] = free.with_name(free.name + suffixes[fmt])
        held.paths = {fmt: held.paths[fmt] for fmt in explicit if fmt in held.paths}
    except BaseException:
        held.release()
        raise
    return held


def _hold(held: Claim, directory: Path, stem: str, suffixes: list[str], shown: str) -> Path:
    """Lock ``<stem>[-N]<suffix>`` for every suffix, at the first N free for all of them;
    returns ``<directory>/<stem>[-N]``. Each file has its own lock, so an explicit path
    and another run's default name cannot meet either. (``shown`` ends the names in
    `Claim.moved`: ``.*`` for a stem of several formats.)"""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportPathError(f"cannot create the report directory {directory}: "
                              f"{exc.strerror or exc}; pick another with --report-dir or "
                              "the report's path")
    for n in range(1, _MAX_TRIES + 1):
        name = f"{stem}{'' if n == 1 else f'-{n}'}"
        got = Claim()
        for suffix in suffixes:
            lock = directory / f".{name}{suffix}.lock"
            fd = _lock(lock)
            if fd is None:
                got.release()  # one of them is another run's: try the next N for all
                break
            got._locks.append((fd, lock))
        else:
            held._locks += got._locks
            if n > 1:
                held.moved.append(f"{directory / stem}{shown} -> {directory / name}{shown}")
            return directory / name
    raise ReportPathError(f"{directory}: {_MAX_TRIES} runs hold reports named {stem}-N; "
                          "wait for them or pick another --report-dir")


def _lock(lock: Path) -> int | None:
    """A descriptor holding an exclusive flock on ``lock``, or None if another run has it."""
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise ReportPathError(f"cannot write reports in {lock.parent}: "
                                  f"{exc.strerror or exc}; pick another with --report-dir "
                                  "or the report's path")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError as exc:  # a filesystem without flock: say so rather than race
            os.close(fd)
            raise ReportPathError(f"cannot lock {lock} ({exc.strerror or exc}); write "
                                  "reports on a local filesystem with --report-dir")
        try:
            mine = os.stat(lock)
        except FileNotFoundError:
            mine = None
        here = os.fstat(fd)
        if mine is not None and (mine.st_ino, mine.st_dev) == (here.st_ino, here.st_dev):
            return fd
        os.close(fd)  # its holder removed it between our open and our lock: try again


def stem_for(command: str, chosen: Sequence[Any], mode: str | None, platform: str | None) -> str:
    """``<command>-<mode>``, plus ``-windows`` for Windows semantics: the report names."""
    modes = {mode} if mode else {getattr(s, "mode", "thread") for s in chosen}
    platforms = {platform} if platform else {getattr(s, "platform", "linux") for s in chosen}
    stem = f"{command}-{modes.pop() if len(modes) == 1 else 'mixed'}"
    if platforms != {"linux"}:
        stem += f"-{platforms.pop() if len(platforms) == 1 else 'mixed-platforms'}"
    return stem


def safe_name(target: str) -> str:
    """A target as a file-name part: ``pkg.mod:make`` -> ``pkg.mod-make``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", target).strip("-.") or "target"
