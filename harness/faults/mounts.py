"""Real file-system faults for process mode: a size-limited tmpfs, unprivileged workers, chmod.

The shim fakes ENOSPC and EACCES by raising them; these helpers let the kernel give them
instead. Each says plainly why it cannot, when it cannot (`tmpfs_refusal`,
`unprivileged_refusal`), so a run can report the variant as skipped rather than pretend.

- `Tmpfs`: a tmpfs mounted on the sandbox. `fill` remounts it with its size cut down to
  the pages in use, so the next allocation gets a real ENOSPC (or a real short write);
  `grow` gives the space back; `unmount` always runs (lazily if something still holds
  the mount), from the run's ``finally`` and so also on SIGINT/SIGTERM.
- `drop_dac_capabilities`: root ignores permission bits, so workers of a permission
  fault give up the capabilities that let it (they run unprivileged as far as the
  permission checks go), and `deny` takes the bits away for real.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import stat as _stat
import subprocess
import sys

__all__ = ["Tmpfs", "deny", "drop_dac_capabilities", "restore", "tmpfs_refusal",
           "unprivileged_refusal"]

_TMPFS_BYTES = 64 << 20  # plenty for a scenario's queue; the fault cuts it down on demand
_MOUNT_TIMEOUT_S = 20


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True,
                          timeout=_MOUNT_TIMEOUT_S, check=False)


def tmpfs_refusal() -> str | None:
    """Why a tmpfs cannot be mounted here, or None when it can be tried."""
    if os.geteuid() != 0:
        return "the harness is not root, and only root may mount a tmpfs"
    if shutil.which("mount") is None or shutil.which("umount") is None:
        return "no mount/umount command on PATH"
    return None


class Tmpfs:
    """A tmpfs on ``path`` (an empty directory) for one run; see the module docstring."""

    def __init__(self, path: str, size: int = _TMPFS_BYTES) -> None:
        self.path = path
        self.size = size
        self.mounted = False
        done = _mount("-t", "tmpfs", "-o", f"size={size},mode=0700", "harness-tmpfs", path)
        if done.returncode != 0:
            raise OSError(f"mount -t tmpfs on {path} failed: {done.stderr.strip()}")
        self.mounted = True

    def used(self) -> int:
        st = os.statvfs(self.path)
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    def fill(self) -> int:
        """Cut the size to what is in use (at least one page: size=0 means unlimited)."""
        size = max(self.used(), os.statvfs(self.path).f_frsize)
        done = _mount("-o", f"remount,size={size}", self.path)
        if done.returncode != 0:
            raise OSError(f"remount of {self.path} failed: {done.stderr.strip()}")
        return size

    def grow(self) -> None:
        _mount("-o", f"remount,size={self.size}", self.path)

    def unmount(self) -> None:
        if not self.mounted:
            return
        done = subprocess.run(["umount", self.path], capture_output=True, text=True,
                              timeout=_MOUNT_TIMEOUT_S, check=False)
        if done.returncode != 0:  # busy: detach now, the kernel frees it when let go
            subprocess.run(["umount", "-l", self.path], capture_output=True,
                           timeout=_MOUNT_TIMEOUT_S, check=False)
        self.mounted = False


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_CAP_VERSION_3 = 0x20080522
# CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER: what lets root ignore permission bits
_DAC_CAPS = (1 << 1) | (1 << 2) | (1 << 3)


def unprivileged_refusal() -> str | None:
    """Why workers cannot be made subject to permission bits here, or None when they can."""
    if not sys.platform.startswith("linux"):
        return "dropping capabilities needs Linux"
    return None


def drop_dac_capabilities() -> None:
    """Make the calling process obey permission bits, as an unprivileged user does.

    Why not setuid(nobody): Python itself may live where nobody cannot read (here
    under /root, mode 0700), and a worker must still import what the target loads
    lazily. Dropping the capabilities that override permission checks keeps the uid,
    so the interpreter's files stay readable, and makes chmod bind the worker.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    header = _CapHeader(_CAP_VERSION_3, 0)
    data = (_CapData * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget failed")
    for half in data:  # capability bits 0-31 sit in the first half
        half.effective &= ~_DAC_CAPS & 0xFFFFFFFF
        half.permitted &= ~_DAC_CAPS & 0xFFFFFFFF
        half.inheritable &= ~_DAC_CAPS & 0xFFFFFFFF
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


def deny(path: str, *, reads: bool) -> int:
    """Take permissions away on directory ``path``; returns its old mode for `restore`.

    Without write bits nobody creates, renames or unlinks in it; without read bits nobody
    lists it (opening a file in it by name still works: that needs only the x bit).
    """
    old = _stat.S_IMODE(os.stat(path).st_mode)
    os.chmod(path, old & 0o333 if reads else old & 0o555)
    return old


def restore(path: str, mode: int) -> None:
    with contextlib.suppress(FileNotFoundError):  # the target may have removed it since
        os.chmod(path, mode)
