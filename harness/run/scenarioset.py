"""Which scenario set a run uses: the one shipped in the package, or a folder asked for.

The shipped scenarios live inside the package (``harness/scenarios_data/``) and are read
through `importlib.resources`, so a wheel carries them and ``harness`` behaves the same
from any directory. A project's own folder is used only when a run passes
``--scenario-dir``: nothing is picked up from the working directory, because a stray
``scenarios/`` folder there once replaced the whole gate with one unrelated file, and
the run passed. Every run names its set (`scenario_set`) in its output and its JSON.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.resources
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["BUILTIN_SET", "builtin_dir", "describe", "nested", "scenario_set"]

BUILTIN_SET = "built-in"
"""The name runs and reports give the scenarios shipped with the harness."""

_DATA = "scenarios_data"  # harness/scenarios_data/: *.toml, plus windows/ and long/
_extracted = contextlib.ExitStack()  # only used when the package is not plain files
atexit.register(_extracted.close)


def builtin_dir() -> Path:
    """The shipped scenarios as a directory: ``*.toml`` (what ``all`` runs) and the
    subfolders ``windows/`` and ``long/`` (run by name, e.g. ``windows/windows-concurrent``)."""
    resource = importlib.resources.files("harness").joinpath(_DATA)
    if isinstance(resource, Path):
        return resource
    # A zipped install: the loader reads paths (replays, reports name them), so extract
    # once for the life of the process.
    return _extracted.enter_context(importlib.resources.as_file(resource))


def scenario_set(directory: str | Path | None, chosen: Iterable[Any] = ()) -> dict[str, Any]:
    """Which set a run uses, for its JSON and its terminal line: ``{"set": "built-in" or
    "--scenario-dir", "directory": absolute path}``; plus ``"files"``, the ``chosen``
    scenarios named by a path outside it, and ``"ignored"`` when the working directory
    holds a ``scenarios/`` folder the run did not use (say so: it is not read)."""
    if directory is None:
        info: dict[str, Any] = {"set": BUILTIN_SET, "directory": str(builtin_dir())}
    else:
        info = {"set": "--scenario-dir", "directory": str(Path(directory).resolve())}
    root = Path(info["directory"]).resolve()
    files = [str(Path(s.source).resolve()) for s in chosen if getattr(s, "source", "")
             and not Path(s.source).resolve().is_relative_to(root)]
    if files:
        info["files"] = files
    here = Path.cwd() / "scenarios"
    # (the repository's own scenarios/ is a link to the built-in set: not "ignored")
    if (directory is None and here.is_dir() and any(here.glob("*.toml"))
            and here.resolve() != root):
        info["ignored"] = str(here)
    return info


def nested(directory: str | Path) -> dict[str, Path]:
    """Scenario files one folder down (``windows/windows-concurrent``: its file), which
    ``all`` leaves out and a name with its folder selects."""
    directory = Path(directory)
    if not directory.is_dir():
        return {}
    return {f"{f.parent.name}/{f.stem}": f for f in sorted(directory.glob("*/*.toml"))}


def describe(info: dict[str, str]) -> str:
    """The run's line about its set: ``scenarios: built-in set (DIR)``, and the reason a
    ``scenarios/`` folder in the working directory was not used, with the flag that uses it."""
    which = "built-in set" if info.get("set") == BUILTIN_SET else "--scenario-dir"
    line = f"scenarios: {which} ({info.get('directory')})"
    if info.get("files"):
        line += f", and by path: {', '.join(info['files'])}"
    if info.get("ignored"):
        line += (f"; not {info['ignored']} (only --scenario-dir reads a folder of yours: "
                 "--scenario-dir scenarios)")
    return line
