"""Helpers for the standalone reproductions: a small real tmpfs (root), a child process.

No harness import: everything here is the kernel's own behaviour.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile

__all__ = ["small_tmpfs", "fill", "run_child"]


@contextlib.contextmanager
def small_tmpfs(size: str = "1m", nr_inodes: int | None = None):
    """Mount a size-limited tmpfs (needs root and mount); yield its path; unmount."""
    where = tempfile.mkdtemp(prefix="repro-tmpfs-")
    opts = f"size={size}" + (f",nr_inodes={nr_inodes}" if nr_inodes else "")
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", where], check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        os.rmdir(where)
        sys.exit(f"needs root and mount(8) for a real full file system: {exc}")
    try:
        yield where
    finally:
        subprocess.run(["umount", where], check=False)
        os.rmdir(where)


def fill(path: str, leave: int) -> None:
    """Write a filler file at ``path`` until fewer than ``leave`` bytes stay free."""
    st = os.statvfs(os.path.dirname(path))
    free = st.f_bavail * st.f_frsize
    with open(path, "wb") as f:
        f.write(b"\0" * max(0, free - leave))


def run_child(code: str, *, timeout: float | None = None, **kw) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (a real process of its own)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, **kw)
