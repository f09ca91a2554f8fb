"""Static rules: stdlib only, every OS call in _os.py, no fixed temp-file names."""

import ast
import pathlib
import re
import sys

import persistence

PKG = pathlib.Path(persistence.__file__).parent
# Every module but legacy.py, the incident's design kept to reproduce it.
OURS = sorted(p.name for p in PKG.glob("*.py") if p.name != "legacy.py")


def _tree(name):
    return ast.parse((PKG / name).read_text(), name)


def test_only_standard_library_imports():
    for name in OURS:
        for node in ast.walk(_tree(name)):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                mods = [node.module]
            else:
                continue
            for mod in mods:
                top = mod.split(".")[0]
                assert top in sys.stdlib_module_names, f"{name} imports {mod}"


# _liveness.py holds _os.py's overflow (its liveness-lock calls), under the same rules.
OS_MODULES = ("_os.py", "_liveness.py")


def test_os_and_fcntl_calls_only_in_os_module():
    for name in OURS:
        if name in OS_MODULES:
            continue
        for node in ast.walk(_tree(name)):
            if isinstance(node, ast.Import | ast.ImportFrom):
                mods = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert "fcntl" not in mods, f"{name} imports fcntl"
                assert "mmap" not in mods and "shutil" not in mods
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = node.func.value
                pure = node.func.attr in ("fspath", "fsdecode", "fsencode")  # no I/O
                if isinstance(owner, ast.Name) and owner.id in ("os", "fcntl") and not pure:
                    raise AssertionError(f"{name}:{node.lineno} calls {owner.id}.{node.func.attr}")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "open", f"{name}:{node.lineno} uses builtins.open"


def test_os_module_uses_attribute_lookups_and_allowed_calls():
    allowed = {"open", "read", "write", "close", "fsync", "lseek", "ftruncate", "fstat", "stat",
               "replace", "unlink", "mkdir", "makedirs", "listdir", "rmdir", "getpid", "flock",
               "lstat", "fchmod", "geteuid", "posix_fallocate", "register_at_fork", "dup2",
               "fcntl", "pread", "readlink"}
    for node in (n for name in OS_MODULES for n in ast.walk(_tree(name))):
        if isinstance(node, ast.ImportFrom):
            assert node.module not in ("os", "fcntl"), "from-imports defeat the shim"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id in ("os", "fcntl"):
                assert node.func.attr in allowed, node.func.attr


def test_no_fixed_temp_file_name():
    pattern = re.compile(r"""["'][^"'\s]*\.(tmp|temp)["']|["']\.tmp-["']\s*\+""")
    for name in OURS:
        text = (PKG / name).read_text()
        assert not pattern.search(text), f"{name} has a fixed temp name"
    # and at run time: two temp names in one process differ
    from persistence.journal import temp_name

    assert temp_name("/d") != temp_name("/d")


# The helpers _store.py imports take its Store as an argument and name its type through
# _storelike.StoreLike (importing _store back made a cycle): keep the three in step.
HELPERS = ("_publish.py", "_recovery.py", "_vanished.py")


def test_store_like_lists_what_the_helpers_use_and_store_has_it():
    import inspect

    from persistence._state import State
    from persistence._store import Store
    from persistence._storelike import StoreLike

    methods = {n for n, v in vars(StoreLike).items()
               if inspect.isfunction(v) and not n.startswith("_")}
    declared = set(StoreLike.__annotations__) | methods
    used = {node.attr for name in HELPERS for node in ast.walk(_tree(name))
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id == "store"}
    assert used == declared
    store = Store("/nonexistent", "token", State(), 0, 0)  # no I/O until open()
    for member in sorted(declared):
        assert hasattr(store, member), member
    for member in sorted(methods):
        assert inspect.signature(getattr(Store, member)) == inspect.signature(
            getattr(StoreLike, member)), member
