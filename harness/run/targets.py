"""Resolve a `--target` to a factory that opens one queue on a directory.

The target contract (the harness's public promise, also in the README): a callable
that takes the queue's directory (a ``str``; it may not exist yet) and returns an
object with ``enqueue(payload: bytes) -> str``, ``claim(worker: str) ->
tuple[str, bytes] | None``, ``ack(entry_id: str) -> None``, ``recover() -> None``,
``close() -> None`` and, optionally, ``states() -> dict[str, str]``. ``exec:COMMAND``
is a program outside Python speaking the contract as JSON lines (`harness.run._exectarget`).

Optionally, the module that defines the callable may define ``repair(directory: str)``:
what an operator runs on a queue that refuses to open after damage at rest (the robust
queue's `persistence.salvage`). When the final drain's open, recover or claim raised, the
drain calls it once (recorded as a ``repair`` op), then opens the queue again and drains
it: a queue that reports damage and offers a way past it is not "stuck". `repair_for`
finds it.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from harness.check.words import article, raised_at, short_path
from harness.run._exectarget import exec_factory

__all__ = ["BUILTIN", "REQUIRED_METHODS", "TargetError", "resolve", "check_queue", "repair_for"]

BUILTIN: dict[str, str] = {
    "robust": "persistence.open_queue: journal + CRC framing, fsync and directory fsync, "
              "flock between processes (this project's core)",
    "legacy": "persistence.legacy.open_legacy: the incident's design (fixed temp name, "
              "delete-then-move, no fsync, no lock, errors swallowed)",
    "legacy-seedfix": "the incident's design plus the fix that shipped (temp-file "
                      "existence checks, directory created before the write)",
}

REQUIRED_METHODS = ("enqueue", "claim", "ack", "recover", "close")


class TargetError(Exception):
    """A target that cannot be resolved or does not honour the contract; message is user-ready."""


def _robust(directory: str) -> Any:
    import persistence

    return persistence.open_queue(directory)


def _legacy(directory: str) -> Any:
    from persistence.legacy import open_legacy

    return open_legacy(directory)


def _legacy_seedfix(directory: str) -> Any:
    from persistence.legacy import open_legacy

    return open_legacy(directory, seed_fix=True)


def _robust_repair(directory: str) -> Any:
    import persistence

    return persistence.salvage(directory)


_REPAIRS: dict[str, Callable[[str], Any]] = {"robust": _robust_repair}

_FACTORIES: dict[str, Callable[[str], Any]] = {
    "robust": _robust,
    "legacy": _legacy,
    "legacy-seedfix": _legacy_seedfix,
}


def _import(name: str) -> Any:
    # `harness` run as a console script does not have the working directory on sys.path
    # (`python -m harness` does): look there too, as pytest does for its rootdir.
    try:
        return importlib.import_module(name)
    except ImportError:
        here = os.getcwd()
        if here in sys.path:
            raise
        sys.path.insert(0, here)
        return importlib.import_module(name)


def resolve(spec: str) -> Callable[[str], Any]:
    """A built-in name, ``exec:COMMAND`` or ``MODULE:CALLABLE`` -> the factory; TargetError
    otherwise."""
    if spec in _FACTORIES:
        return _FACTORIES[spec]
    if spec.startswith("exec:"):
        try:
            return exec_factory(spec[len("exec:"):])
        except ValueError as exc:
            raise TargetError(f"target={spec!r}: {exc}") from None
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise TargetError(
            f"target={spec!r}: expected one of {', '.join(BUILTIN)}, MODULE:CALLABLE "
            "(e.g. mypkg.queue:open_queue) or exec:COMMAND; run 'harness list' for the "
            "built-in targets")
    try:
        obj: Any = _import(module_name)
    except ImportError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise TargetError(
                f"target={spec!r}: cannot import module {module_name!r} ({exc}); check the "
                "name and that it is on PYTHONPATH (the working directory is searched "
                "too)") from exc
        raise TargetError(_broken(spec, module_name, exc, "install it or fix the import")
                          ) from exc
    except Exception as exc:  # noqa: BLE001 - any error in the module's own code
        raise TargetError(_broken(spec, module_name, exc, "fix the module")) from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TargetError(
                f"target={spec!r}: module {module_name!r} has no attribute {attr!r}; "
                "expected a callable taking the queue directory") from None
    if not callable(obj):
        kind = type(obj).__name__
        raise TargetError(f"target={spec!r}: {attr!r} is {article(kind)} {kind}, "
                          "expected a callable taking the queue directory")
    return obj


def _broken(spec: str, module_name: str, exc: BaseException, fix: str) -> str:
    """Importing the target's module raised: what, and where in the module."""
    where, message = raised_at(exc), str(exc)
    if isinstance(exc, SyntaxError) and exc.filename:  # its str repeats file and line
        where, message = f"{short_path(exc.filename)}:{exc.lineno}", str(exc.msg)
    at = f" at {where}" if where else ""
    return (f"target={spec!r}: importing module {module_name!r} raised "
            f"{type(exc).__name__}: {message}{at}; {fix}")


def check_queue(queue: Any, spec: str) -> None:
    """Raise TargetError when an opened queue lacks a method of the contract."""
    missing = [m for m in REQUIRED_METHODS if not callable(getattr(queue, m, None))]
    if missing:
        kind = type(queue).__name__
        raise TargetError(
            f"target={spec!r} returned {article(kind)} {kind} without "
            f"{', '.join(missing)}: the contract needs {', '.join(REQUIRED_METHODS)} "
            "(states() optional); see the README's 'Target contract'")


def repair_for(spec: str, factory: Callable[[str], Any] | None) -> Callable[[str], Any] | None:
    """The target's ``repair(directory)``: a built-in's, else a callable named ``repair`` in
    the module that defines ``factory``; None when there is none."""
    if spec in _REPAIRS and factory is _FACTORIES.get(spec):
        return _REPAIRS[spec]
    module = sys.modules.get(getattr(factory, "__module__", None) or "")
    repair = getattr(module, "repair", None)
    return repair if callable(repair) else None
