"""Load fault-injection scenarios from TOML files, checking every key before anything runs.

A scenario is data: a workload, a fault plan and a seed (a ``*.toml`` file; the shipped
ones are in ``harness/scenarios_data/``, see `harness.run.scenarioset`). This module turns
one file into a frozen `Scenario` and refuses anything it does not understand, because
a typo that silently falls back to a default would make a run pass while testing
nothing. Every refusal is a `ScenarioError` whose message names the file, the key, the
value, what was expected and what to do, so the CLI can print it as is and exit 2.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.faults import FAULT_KINDS, Plan, fault_from_spec
from harness.faults.windows import PLATFORMS
from harness.run.scenarioset import BUILTIN_SET, builtin_dir, nested, scenario_set
from harness.run.shapes import ROLES

__all__ = [
    "CHECKS",
    "MODES",
    "PLATFORMS",
    "Scenario",
    "ScenarioError",
    "Workload",
    "BUILTIN_SET",
    "builtin_dir",
    "default_dir",
    "load",
    "load_dir",
    "nested",
    "scenario_set",
    "select",
]

MODES = ("thread", "process")
"""How the runner runs processors: threads under one shim, or real processes."""

LAYERS = ("shim", "fuse")
"""Where calls are seen: the Python shim in each process, or a FUSE mount below all of
them (process mode only: its kills are SIGKILLs of the calling process)."""

CHECKS = ("stale_locks", "retention")
"""Extra observations a scenario may ask the runner for (beyond the checker's verdicts)."""

_TOP_KEYS = ("description", "fault", "seed", "runs", "mode", "checks", "workload", "faults",
             "platform", "timeout", "layer")
_WORKLOAD_KEYS = ("entries", "processors", "payload_bytes", "hold", "max_ops", "roles",
                  "weights", "idle", "idle_after", "idle_for")
_FIX = "fix the file and run again"


class ScenarioError(Exception):
    """A scenario file (or a scenario name) the harness cannot use; the message is for users."""


@dataclass(frozen=True)
class Workload:
    """What the processors do: how many entries go through the queue, and how big they are;
    and its shape (`harness.run.shapes`): each processor's role and weight, and which ones
    idle, after how many calls, through what fraction of the others' calls."""

    entries: int = 20
    processors: int = 1
    payload_min: int = 0
    payload_max: int = 256
    hold: int = 2  # a claim may stay unacknowledged for up to this many further steps
    max_ops: int = 200_000
    roles: tuple[str, ...] = ()  # per processor; () : every one "both"
    weights: tuple[int, ...] = ()  # per processor; () : every one 1
    idle: tuple[int, ...] = ()  # processors that idle for long with their queue open
    idle_after: int = 1  # queue calls an idle processor makes before it idles
    idle_for: float = 0.9  # fraction of the others' calls it idles through

    def __post_init__(self) -> None:
        # The loader gives the friendlier message; this guards workloads built in code.
        if self.entries < 1 or self.processors < 1 or self.max_ops < 1 or self.hold < 0:
            raise ValueError(f"{self!r}: entries, processors and max_ops must be >= 1, "
                             "hold >= 0")
        if not 0 <= self.payload_min <= self.payload_max:
            raise ValueError(f"{self!r}: expected 0 <= payload_min <= payload_max")
        for name in ("roles", "weights", "idle"):  # a replay file gives lists
            object.__setattr__(self, name, tuple(getattr(self, name)))
        problem = _shape_problem(self.processors, self.roles, self.weights, self.idle,
                                self.idle_after, self.idle_for)
        if problem is not None:
            raise ValueError(f"{self!r}: {problem[0]} = {problem[1]!r}: expected {problem[2]}")


def _shape_problem(processors: int, roles: Any, weights: Any, idle: Any, idle_after: Any,
                  idle_for: Any) -> tuple[str, Any, str] | None:
    """The first shape key that is wrong, as (key, value, what was expected), or None."""
    n = f"{processors} (workload.processors)"
    if not isinstance(roles, (list, tuple)) or (roles and len(roles) != processors) or any(
            r not in ROLES for r in roles):
        return "roles", roles, f"a list of {n} roles, each one of {', '.join(ROLES)}"
    if roles and all(r == "consumer" for r in roles):
        return "roles", roles, "at least one 'producer' or 'both' (someone must enqueue)"
    if not isinstance(weights, (list, tuple)) or (weights and len(weights) != processors) or (
            not all(_is_int(w) and w >= 1 for w in weights)):
        return "weights", weights, f"a list of {n} positive integers (relative rates)"
    if (not isinstance(idle, (list, tuple)) or len(set(idle)) != len(idle)
            or not all(_is_int(p) and 0 <= p < processors for p in idle)):
        return "idle", idle, f"a list of distinct processor numbers from 0 to {processors - 1}"
    if len(idle) >= processors:
        return "idle", idle, "fewer idle processors than processors (the others' calls " \
                             "are what an idle one waits through)"
    if not _is_int(idle_after) or idle_after < 0:
        return "idle_after", idle_after, "an integer >= 0 (calls made before idling)"
    if (not isinstance(idle_for, (int, float)) or isinstance(idle_for, bool)
            or not 0 < idle_for <= 1):
        return "idle_for", idle_for, "a number in (0, 1]: the fraction of the other " \
                                     "processors' calls an idle processor waits through"
    return None


@dataclass(frozen=True)
class Scenario:
    """One scenario file, validated: run it with `harness.run.runner.run_suite`."""

    name: str
    description: str
    fault: str
    plan: Plan
    workload: Workload = field(default_factory=Workload)
    seed: int = 1
    runs: int = 1  # the scenario runs with seeds seed .. seed+runs-1
    mode: str = "thread"
    checks: tuple[str, ...] = ()
    source: str = ""
    platform: str = "linux"  # "windows": the shim applies Windows' file semantics
    timeout: float | None = None  # seconds a run may take (None: harness.run.hung's default)
    layer: str = "shim"  # "fuse": a FUSE mount below every process (process mode)


def default_dir() -> Path:
    """Where scenario names are looked up when no ``--scenario-dir`` is given: the shipped
    set, whatever the working directory holds."""
    return builtin_dir()


def load(path: str | Path) -> Scenario:
    """Read and validate one scenario file; raises `ScenarioError` naming what is wrong."""
    path = Path(path)
    where = _shown(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(f"{where}: no such scenario file; check the path")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{where}: cannot read the file ({exc}); check it and run again")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = _toml_line(exc, text)
        raise ScenarioError(f"{where}, line {line}: not valid TOML: {exc}; {_FIX}")
    return _build(path.stem, raw, where, str(path))


def load_dir(directory: str | Path) -> list[Scenario]:
    """Every ``*.toml`` in ``directory``, sorted by name; all problems reported at once."""
    files = _files(directory)
    scenarios, problems = [], []
    for file in files:
        try:
            scenarios.append(load(file))
        except ScenarioError as exc:
            problems.append(str(exc))
    if problems:
        head = f"{len(problems)} of {len(files)} scenario files are invalid:\n" if len(
            problems) > 1 else ""
        raise ScenarioError(head + "\n".join(problems))
    return sorted(scenarios, key=lambda s: s.name)


def select(names: Iterable[str], directory: str | Path) -> list[Scenario]:
    """The scenarios called ``names`` (``"all"``: every file of ``directory`` itself), in
    the order given.

    A name may also carry its subfolder (``windows/windows-concurrent``, see `nested`)
    or be the path of a ``.toml`` file anywhere. Only the files asked for are read, so
    one broken file does not block the others.
    """
    names = list(dict.fromkeys(names))  # drop repeats, keep order
    if not names or "all" in names:
        return load_dir(directory)
    top = {f.stem: f for f in _files(directory)}
    available = {**nested(directory), **top}
    chosen, unknown = [], []
    for name in names:
        if name in available:
            chosen.append(available[name])
        elif name.endswith(".toml") and Path(name).is_file():
            chosen.append(Path(name))
        else:
            unknown.append(name)
    if unknown:
        raise ScenarioError(
            f"unknown scenario {', '.join(map(repr, unknown))} in {_shown(Path(directory))}; "
            f"available: {', '.join(sorted(top))} (or 'all')"
            + "".join(f", {name}" for name in nested(directory)) + "; "
            "pick one of those or pass --scenario-dir")
    return [load(f) for f in chosen]


# -- validation ---------------------------------------------------------------------------


def _files(directory: str | Path) -> list[Path]:
    directory = Path(directory)
    if not directory.is_dir():
        raise ScenarioError(
            f"{_shown(directory)}: no such scenario directory; check the --scenario-dir path "
            "(without it the built-in scenarios run)")
    files = sorted(directory.glob("*.toml"))
    if not files:
        raise ScenarioError(f"{_shown(directory)}: no *.toml scenario files in it; add one")
    return files


def _build(name: str, raw: dict[str, Any], where: str, source: str) -> Scenario:
    def bad(key: str, value: Any, expected: str) -> ScenarioError:
        return ScenarioError(f"{where}: key {key!r} = {_show(value)}: expected {expected}; {_FIX}")

    _no_unknown_keys(raw, _TOP_KEYS, "", where)
    for key in ("description", "fault", "faults"):
        if key not in raw:
            raise ScenarioError(f"{where}: key {key!r} is missing; add it ({_hint(key)})")

    description = raw["description"]
    if not isinstance(description, str) or not description.strip():
        raise bad("description", description, "a non-empty string saying what it reproduces")
    fault = raw["fault"]
    if fault not in FAULT_KINDS:
        raise bad("fault", fault, f"one of {', '.join(FAULT_KINDS)}")
    seed = raw.get("seed", 1)
    if not _is_int(seed) or seed < 0:
        raise bad("seed", seed, "an integer >= 0")
    runs = raw.get("runs", 1)
    if not _is_int(runs) or not 1 <= runs <= 1000:
        raise bad("runs", runs, "an integer from 1 to 1000 (seeds seed .. seed+runs-1)")
    mode = raw.get("mode", "thread")
    if mode not in MODES:
        raise bad("mode", mode, f"one of {', '.join(MODES)}")
    platform = raw.get("platform", "linux")
    if platform not in PLATFORMS:
        raise bad("platform", platform, f"one of {', '.join(PLATFORMS)} (whose file "
                  "semantics the shim applies)")
    timeout = raw.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(
            timeout, (int, float)) or not timeout > 0):
        raise bad("timeout", timeout, "a number of seconds > 0 (how long one run's workload, "
                  "and again its final drain, may take)")
    layer = raw.get("layer", "shim")
    if layer not in LAYERS:
        raise bad("layer", layer, f"one of {', '.join(LAYERS)}")
    if layer == "fuse" and mode == "thread" and "mode" in raw:
        raise bad("mode", mode, "'process' with layer = \"fuse\" (a FUSE layer's kill is a "
                  "SIGKILL of the calling process), or no mode at all")
    if layer == "fuse":
        mode = "process"
    checks = raw.get("checks", [])
    if not isinstance(checks, list) or any(c not in CHECKS for c in checks):
        raise bad("checks", checks, f"a list drawn from {list(CHECKS)}")

    workload = _workload(raw.get("workload", {}), where, bad)
    plan = _plan(raw["faults"], where, bad)
    if fault not in plan.kinds:
        raise bad("fault", fault, f"a kind among the [[faults]] tables ({', '.join(plan.kinds)})"
                  " because 'fault' names the primary fault of the plan")
    return Scenario(name=name, description=description.strip(), fault=fault, plan=plan,
                    workload=workload, seed=seed, runs=runs, mode=mode,
                    checks=tuple(checks), source=source, platform=platform,
                    timeout=None if timeout is None else float(timeout), layer=layer)


def _workload(table: Any, where: str, bad) -> Workload:
    if not isinstance(table, dict):
        raise bad("workload", table, "a [workload] table")
    _no_unknown_keys(table, _WORKLOAD_KEYS, "workload.", where)
    values: dict[str, int] = {}
    for key in ("entries", "processors", "max_ops"):
        if key in table:
            value = table[key]
            if not _is_int(value) or value < 1:
                raise bad(f"workload.{key}", value, "a positive integer")
            values[key] = value
    if "hold" in table:
        value = table["hold"]
        if not _is_int(value) or value < 0:
            raise bad("workload.hold", value, "an integer >= 0 (steps a claim stays unacked)")
        values["hold"] = value
    if "payload_bytes" in table:
        value = table["payload_bytes"]
        if (not isinstance(value, list) or len(value) != 2 or not all(map(_is_int, value))
                or not 0 <= value[0] <= value[1]):
            raise bad("workload.payload_bytes", value,
                      "[min, max] with integers 0 <= min <= max (body bytes per entry)")
        values["payload_min"], values["payload_max"] = value
    shape = {"roles": table.get("roles", []), "weights": table.get("weights", []),
             "idle": table.get("idle", []), "idle_after": table.get("idle_after", 1),
             "idle_for": table.get("idle_for", 0.9)}
    problem = _shape_problem(values.get("processors", 1), **shape)
    if problem is not None:
        key, value, expected = problem
        raise bad(f"workload.{key}", value, expected)
    values.update({k: v for k, v in shape.items() if k in table})
    return Workload(**values)


def _plan(tables: Any, where: str, bad) -> Plan:
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise bad("faults", tables, "one or more [[faults]] tables, each with a 'kind'")
    faults = []
    for number, table in enumerate(tables, start=1):
        try:
            faults.append(fault_from_spec(table))
        except (ValueError, TypeError) as exc:  # FaultSpecError is a ValueError
            # TOML puts every key after a [[faults]] header into that table: say so.
            strays = [k for k in table if k in _TOP_KEYS]
            hint = (f" ({', '.join(strays)}: a top-level key must come before the first "
                    "[[faults]] table)") if strays else ""
            raise ScenarioError(
                f"{where}: key 'faults[{number}]' (the [[faults]] table number {number}, "
                f"kind = {_show(table.get('kind'))}): {exc}{hint}; {_FIX}")
    try:
        return Plan(faults=tuple(faults))
    except ValueError as exc:  # e.g. two concurrent_processors tables
        raise ScenarioError(f"{where}: key 'faults': {exc}; {_FIX}")


def _no_unknown_keys(table: Mapping[str, Any], accepted: tuple[str, ...], prefix: str,
                     where: str) -> None:
    unknown = [k for k in table if k not in accepted]
    if unknown:
        names = ", ".join(repr(prefix + k) for k in unknown)
        raise ScenarioError(
            f"{where}: unknown key {names}; accepted keys{' in [workload]' if prefix else ''}: "
            f"{', '.join(accepted)}; {_FIX} (a typo would otherwise fall back to a default)")


def _hint(key: str) -> str:
    return {
        "description": 'description = "what this reproduces and why it matters"',
        "fault": f"fault = one of {', '.join(map(repr, FAULT_KINDS))}",
        "faults": '[[faults]] tables, e.g. [[faults]] kind = "disk_full"',
    }[key]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # TOML true is not a count


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _shown(path: Path) -> str:
    """The path as the user would type it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


_LINE = re.compile(r"at line (\d+)")


def _toml_line(exc: tomllib.TOMLDecodeError, text: str) -> int:
    # Python 3.11's TOMLDecodeError has no lineno attribute; the message carries it,
    # except at "end of document", which is the last line.
    match = _LINE.search(str(exc))
    return int(match.group(1)) if match else max(1, len(text.splitlines()))
