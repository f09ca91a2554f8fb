"""Usage and environment errors: one line on stderr and exit 2, the traceback only with --debug.

A person who mistyped an option, named a target that does not import, or asked for a
report where nothing can be written wants one sentence: the value, what was expected,
what to do. `Parser` gives argparse's errors that shape (argparse prints the whole usage
first); `check_outputs` tries every output path before anything runs, so an unwritable
``--json`` is not found after a long run; `report` prints an error the command raised.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

__all__ = ["Parser", "UsageError", "add_debug", "check_outputs", "one_line", "reader_gone",
           "report"]


class UsageError(Exception):
    """Bad usage or an environment that cannot work (exit 2); the message is user-ready."""


def one_line(text: object) -> str:
    """``text`` on one line: a message quoting a file's lines must not break the format."""
    return " ".join(str(text).split())


class Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line (argparse's subparsers share the class)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {one_line(message)}; see '{self.prog} --help'\n")


def add_debug(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true",
                        help="on an error, print the full traceback too (for a bug report)")


def report(prog: str, exc: BaseException, *, debug: bool, code: int = 2) -> int:
    """Print ``exc`` as ``<prog>: error: <message>`` (its traceback first with --debug)."""
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    message = one_line(exc) or type(exc).__name__
    if code == 2 and exc.__cause__ is not None and not debug:
        message += " (--debug shows the traceback)"  # the target's, worth a look
    if code != 2:  # not the user's mistake: say what it was and how to see more
        message = (f"unexpected {type(exc).__name__}: {message} (a bug in the harness; "
                   + ("the traceback is above)" if debug else
                      "run again with --debug for the traceback)"))
    print(f"{prog}: error: {message}", file=sys.stderr)
    return code


def reader_gone() -> int:
    """stdout's reader closed the pipe: no message (nobody reads it), and stdout pointed
    at /dev/null so that Python's flush at exit does not raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 1


def _probe(path: Path, *, directory: bool) -> str | None:
    """Why nothing can be written at ``path`` (None if it can): made, then removed again
    with every directory made for it, so a run that stops later leaves nothing behind."""
    missing = []
    parent = path if directory else path.parent
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    made: list[Path] = []
    try:
        for d in reversed(missing):
            d.mkdir()
            made.append(d)
        if directory:
            if not path.is_dir():
                return "it is not a directory"
            fd, probe = None, path / f".harness-probe-{os.getpid()}"
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
            os.unlink(probe)
        elif path.is_dir():
            return "it is a directory"
        else:
            existed = path.exists()
            with open(path, "a", encoding="utf-8"):
                pass
            if not existed:
                path.unlink()
    except OSError as exc:
        return exc.strerror or str(exc)
    finally:
        for d in reversed(made):
            try:
                d.rmdir()
            except OSError:  # someone else put something there meanwhile: theirs now
                pass
    return None


def check_outputs(args: argparse.Namespace, report_dir: object = None) -> None:
    """Raise UsageError naming the first output of the command that cannot be written:
    its ``--json``/``--junit``/``--markdown``/``--html`` files and ``report_dir``."""
    files = [(f"--{name}", getattr(args, name, None), False)
             for name in ("json", "junit", "markdown", "html")]
    for option, value, directory in [*files, ("--report-dir", report_dir, True)]:
        if value is None:
            continue
        why = _probe(Path(value), directory=directory)
        if why is not None:
            kind = "a directory" if directory else "a file"
            raise UsageError(f"{option} {value}: cannot write there ({why}); give "
                             f"{kind} path where you can write")
