"""Where the real modules are not the ones a target sees: pyfakefs, and ``from os import``.

Under pyfakefs a target's ``os`` is a fake module object, whose ``os.path`` and
``os.makedirs`` skip its own ``stat``/``mkdir`` and whose ``FakePath`` opens files
itself: the shim routes those through the patched calls. On the real disk, a target that
bound a function at import (``from os import fsync``) holds the original, which patching
``os`` does not reach: `rebind_imported_names` rebinds such names while the shim is in.
"""

from __future__ import annotations

import contextlib
import stat as _stat
import sys
import types
from typing import Any

__all__ = ["active_patcher", "fake_path_wrappers", "fake_pathlib_patches",
           "rebind_imported_names"]


def fake_path_wrappers(pathmod, osmod) -> dict[str, Any]:
    """pyfakefs's os.path and os.makedirs skip os.stat/os.mkdir; route them through."""
    def stat_or_none(path, stat_call):
        try:
            return stat_call(path)
        except (OSError, ValueError):
            return None

    def makedirs(name, mode=0o777, exist_ok=False):
        head, tail = pathmod.split(name)
        if not tail:
            head, tail = pathmod.split(head)
        if head and tail and stat_or_none(head, osmod.stat) is None:
            with contextlib.suppress(FileExistsError):
                makedirs(head, exist_ok=exist_ok)
        try:
            osmod.mkdir(name, mode)
        except OSError:
            st = stat_or_none(name, osmod.stat)
            if not exist_ok or st is None or not _stat.S_ISDIR(st.st_mode):
                raise

    def test(mode_test, stat_name="stat"):
        def check(path):
            st = stat_or_none(path, getattr(osmod, stat_name))
            return st is not None and mode_test(st.st_mode)
        return check
    return {"makedirs": (osmod, makedirs), "exists": (pathmod, test(lambda m: True)),
            "lexists": (pathmod, test(lambda m: True, "lstat")),
            "isdir": (pathmod, test(_stat.S_ISDIR)), "isfile": (pathmod, test(_stat.S_ISREG)),
            "getsize": (pathmod, lambda path: osmod.stat(path).st_size)}


def fake_pathlib_patches() -> list:
    """pyfakefs's FakePath opens files itself; give it back pathlib's own methods, which
    go through ``io.open`` (patched) as they do on the real disk."""
    fake_path = getattr(sys.modules.get("pyfakefs.fake_pathlib"), "FakePath", None)
    if fake_path is None:
        return []
    real_path = next((c for c in fake_path.__mro__
                      if c.__module__ == "pathlib" and c.__name__ == "Path"), None)
    return [] if real_path is None else [
        (fake_path, name, vars(real_path)[name])
        for name in ("open", "read_bytes", "read_text", "write_bytes", "write_text")]


def active_patcher():
    """The running pyfakefs Patcher, if any (looked up, never imported: no dependency)."""
    module = sys.modules.get("pyfakefs.fake_filesystem_unittest")
    patcher = getattr(getattr(module, "Patcher", None), "PATCHER", None)
    return patcher if patcher is not None and getattr(patcher, "is_patching", False) else None


# Modules whose names bound with `from os import ...` are the harness's or the test
# runner's own, not the target's: left alone.
_NOT_TARGETS = ("harness", "pyfakefs", "_pytest", "pytest", "pluggy", "hypothesis",
                "multiprocess", "dill", "xdist", "execnet")


def rebind_imported_names(plan, saved) -> None:
    """A target that did ``from os import fsync`` (femtoqueue does) holds the original
    function, which patching ``os`` does not reach: its fsyncs would escape the shim and
    the durability model would roll back data the kernel made durable (a false alarm).
    So every module outside the standard library and the harness gets such names rebound
    to the wrappers while the shim is installed; ``saved`` undoes it."""
    wrapper_of = {}
    for obj, name, fn in plan:
        if isinstance(obj, types.ModuleType) and obj.__name__ in ("os", "posix", "shutil",
                                                                   "fcntl", "time"):
            old = next((o for (m, n, _had, o) in saved if m is obj and n == name), None)
            if callable(old):
                wrapper_of[id(old)] = (old, fn)
    for modname, module in list(sys.modules.items()):
        top = modname.partition(".")[0]
        if (module is None or top in sys.stdlib_module_names or top.startswith(_NOT_TARGETS)
                or not isinstance(getattr(module, "__dict__", None), dict)):
            continue
        for key, value in list(vars(module).items()):
            hit = wrapper_of.get(id(value))
            if hit is not None and hit[0] is value:
                saved.append((module, key, True, value))
                setattr(module, key, hit[1])
