"""Which errno each intercepted call can meet for each fault, in the order the kernel checks.

A verdict is only worth something if every error the harness injects is one the kernel
could have returned for that call in that state. This module is the one place that says
which those are (the table is also in docs/harness-design.md, "Errno table"), and the
shim and the armed plan consult it:

- `INJECTED`: for each fault kind that raises, the call kinds it may fail and the errnos
  it may use. A fault whose ``calls`` name a call outside its row is refused when it is
  built (`harness.faults`), because the kernel never answers that call that way: write(2)
  on an open descriptor never returns EACCES, fsync(2) never returns ENOSPC for a file
  that has no dirty pages left to allocate, and so on.
- `natural_error`: the error a call meets *before* any permission or space check. Linux
  resolves the path first (``filename_create``, ``lookup``), and only then asks
  ``may_create``/``may_delete`` (EACCES, EPERM) and allocates blocks (ENOSPC, EDQUOT).
  So mkdir of a directory that exists answers EEXIST on a full disk and in a read-only
  directory alike, unlink of a missing file ENOENT, open without O_CREAT of a missing
  file ENOENT. When a call is doomed that way the plan does not fire on it: the call runs
  and fails on its own, as it would on the real system.

Sources: mkdir(2), open(2), unlink(2), rename(2), write(2), fsync(2) (ERRORS sections,
and write(2): "If the underlying physical medium does not have room ... the call
returns the number of bytes written" before it fails with ENOSPC), and fs/namei.c
(``filename_create`` returns -EEXIST before ``vfs_mkdir`` calls ``may_create``;
``do_unlinkat`` looks the name up before ``may_delete``).
"""

from __future__ import annotations

import os
import stat as _stat
from collections.abc import Callable
from typing import Any

__all__ = ["INJECTED", "PATH_CALLS", "natural_error", "table_rows"]

# Calls that take a path (or two) and resolve it before any other check.
PATH_CALLS = ("open", "open_read", "open_write", "replace", "mkdir", "rmdir", "unlink",
              "listdir", "stat", "copy", "link", "symlink", "setattr")

_SPACE = ("ENOSPC", "EDQUOT")
_DENIED = ("EACCES", "EPERM")

INJECTED: dict[str, dict[str, tuple[str, ...]]] = {
    # A full disk refuses what needs new blocks or a new directory entry; an open of an
    # existing file (even O_TRUNC) and a truncate free or need nothing.
    "disk_full": {"write": _SPACE, "open": _SPACE, "mkdir": _SPACE, "copy": _SPACE,
                  "link": _SPACE, "symlink": _SPACE},
    # Denied by mode bits, an ACL, an LSM, or (Windows) another process holding the file:
    # only calls that resolve a path can meet it.
    "permission_denied": dict.fromkeys(PATH_CALLS, _DENIED),
    # fsync(2): "EIO An error occurred during synchronization"; also on a directory.
    "fsync_failure": {"fsync": ("EIO",), "dirsync": ("EIO",)},
}
"""fault kind -> {call kind: errnos it may inject} (``open`` covers open_read/open_write)."""


def table_rows() -> list[tuple[str, str, str]]:
    """(fault kind, call kind, errnos) rows, for the docs and for tests."""
    return [(fault, call, ", ".join(errs)) for fault, row in INJECTED.items()
            for call, errs in row.items()]


def natural_error(kind: str, path: str | None, path2: str | None, *, flags: int = 0,
                  lstat: Callable[[str], Any], dirname: Callable[[str], str]) -> str | None:
    """The errno name the kernel returns for this call before any fault could, or None.

    ``flags`` are open(2) flags (O_CREAT, O_EXCL); ``lstat`` is the original, unpatched
    ``os.lstat``. Only path resolution is looked at: existence and the parent directory.
    """
    if path is None:
        return None

    def exists(p: str) -> bool | None:
        try:
            lstat(p)
            return True
        except FileNotFoundError:
            return False
        except NotADirectoryError:
            return None
        except (OSError, ValueError):
            return True  # cannot tell: assume nothing dooms it

    def parent_ok(p: str) -> str | None:
        try:
            st = lstat(dirname(p))
        except FileNotFoundError:
            return "ENOENT"
        except NotADirectoryError:
            return "ENOTDIR"
        except (OSError, ValueError):
            return None
        return None if _stat.S_ISDIR(st.st_mode) else "ENOTDIR"

    here = exists(path)
    if here is None:
        return "ENOTDIR"
    if kind == "mkdir" or kind in ("link", "symlink"):
        target = path2 if kind in ("link", "symlink") and path2 is not None else path
        if kind != "mkdir":
            there = exists(target)
            if there:
                return "EEXIST"
            return parent_ok(target) or (None if kind == "symlink" or here else "ENOENT")
        return "EEXIST" if here else parent_ok(path)
    if kind == "open":
        if here:
            excl = os.O_CREAT | os.O_EXCL
            return "EEXIST" if flags & excl == excl else None
        return parent_ok(path) or (None if flags & os.O_CREAT else "ENOENT")
    if kind in ("replace", "copy"):
        if not here:
            return "ENOENT"
        return parent_ok(path2) if path2 is not None else None
    if kind in ("unlink", "rmdir", "listdir", "stat", "setattr"):
        return None if here else "ENOENT"
    return None

