"""Windows' file semantics on Linux (``--platform windows``): each rule, its error, its source.

A Python program on Windows meets refusals a Linux kernel never gives. The shim applies
the rules below to every intercepted call of a processor when the run's platform is
``"windows"``: the call is refused *before* it does anything, with the exception CPython
raises on Windows, recorded as an `FsOp` with outcome ``EACCES`` (or ``EEXIST``,
``EBADF``) and the fault label ``Windows semantics (WinError N: rule)``. These are the
platform's answers, not faults of the scenario: they are counted apart
(``Shim.platform_refusals``) and never make a run count as "a fault fired".

"Another handle" is any live descriptor or file object the shim tracks for any
processor, the caller's own included (a Windows process's own open handle blocks its own
delete or rename); a killed processor's handles are gone, as Windows closes a dead
process's handles. In process mode each worker reports its opens (after the open) and
closes (before the close) to the parent, which answers "is it held?" from the table of
every process's handles: that table is never larger than what is really open, so a
refusal is never invented, though a race may let one call through that Windows refused.

Rules (W1-W7) and sources:

W1. Delete (``os.unlink``/``os.remove``) of a file another handle holds open:
    ``PermissionError [WinError 32]`` (ERROR_SHARING_VIOLATION). DeleteFile opens the file
    for DELETE access, which an existing open must share (FILE_SHARE_DELETE); the C
    runtime, and so CPython's ``open()`` and ``os.open()``, share read and write only.
    Sources: Microsoft, "DeleteFile" remarks (it "fails if an application attempts to
    delete a file that is open for normal I/O"), CreateFile ``dwShareMode``
    (FILE_SHARE_DELETE); Eryk Sun, python-list 2017-03 "When will os.remove fail?" (no
    shared delete access: sharing violation, 32); Mercurial wiki "UnlinkingFilesOnWindows"
    (os.unlink/os.rename of a file opened with Python's open: Error 32).
W2. Delete of a read-only file (no owner write bit: Windows' read-only attribute, which
    is all ``os.chmod`` sets there): ``PermissionError [WinError 5]`` (ERROR_ACCESS_DENIED),
    checked after W1 (the delete disposition is set after the open). Source: Eryk Sun, as
    in W1 ("a read-only file ... setting the delete disposition fails with access denied").
W3. ``os.rename`` and ``os.replace`` of a source another handle holds open:
    ``PermissionError [WinError 32]``: CPython calls MoveFileExW, which opens the source for
    DELETE access. Sources: Eryk Sun on bpo-46003 (2021-12: "Existing opens of the source
    path must share delete access"); Microsoft, "Moving and Replacing Files" ("A file must
    also be closed before an application can move it").
W4. ``os.rename`` onto an existing name: ``FileExistsError [WinError 183]``
    (ERROR_ALREADY_EXISTS): CPython calls MoveFileExW without MOVEFILE_REPLACE_EXISTING.
    Source: CPython docs, os.rename ("On Windows, if dst exists a FileExistsError is always
    raised").
W5. ``os.replace`` (MoveFileExW with MOVEFILE_REPLACE_EXISTING) onto a file another handle
    holds open, or onto a read-only file: ``PermissionError [WinError 5]``. Sources: Eryk
    Sun on bpo-46003 ("existing opens of the destination path are not allowed, even if
    they share delete access"; the destination "cannot be ... a readonly file"); the same
    WinError 5 reported from os.replace in chia-blockchain PR #8589 and numba PR #2041
    ("replacing a file ... being read by another process raises a permission error").
    ``shutil.move`` runs as CPython's Lib/shutil.py does: ``os.rename`` (W3, W4), and when
    that raises, ``copy2`` onto the destination (CRT opens share read and write, so an
    open destination does not stop it) then ``os.unlink`` of the source (W1, W2).
    ``shutil.rmtree`` walks by name, as it does on Windows (no directory is opened).
W6. A directory cannot be opened: ``os.open`` and ``open()`` of a directory raise
    ``PermissionError [Errno 13] Permission denied`` (CPython opens through the C
    runtime's ``_wopen``, whose CreateFile lacks FILE_FLAG_BACKUP_SEMANTICS, the flag a
    directory handle needs; the CRT maps ERROR_ACCESS_DENIED to EACCES, so no winerror).
    So a directory is never fsynced. Sources: Microsoft, CreateFile ("To open a directory
    using CreateFile, specify the FILE_FLAG_BACKUP_SEMANTICS flag"); NicolasLM/bplustree
    issue #3 (``os.open(directory, os.O_RDONLY)``: "[Errno 13] Permission denied").
W7. ``os.fsync`` of a descriptor not open for writing: ``OSError [Errno 9]`` (EBADF).
    CPython's os.fsync calls the CRT's ``_commit``, i.e. FlushFileBuffers, which needs
    GENERIC_WRITE; ``_commit`` reports any failure as EBADF. Sources: CPython docs, os.fsync
    ("On Windows, calls the MS _commit() function"); Microsoft, FlushFileBuffers ("The
    handle must have the GENERIC_WRITE access right") and ``_commit`` (errno EBADF).

CPython turns both ERROR_ACCESS_DENIED and ERROR_SHARING_VIOLATION into errno EACCES (its
PC/errmap.h), so both are a `PermissionError`; the raised exception carries ``winerror``
and prints as Windows prints it: ``[WinError 32] The process cannot access the file
because it is being used by another process: 'q/a'``.

Durability: with no directory fsync possible (W6), a power loss under ``windows`` keeps
every name change made before it (the durability model's ``names="eager"``) while file
data is as of its last fsync (FlushFileBuffers). NTFS logs every metadata change in its
journal ($LogFile) and replays committed ones after a crash, so names come back as a
consistent whole; file data is not journaled (Windows Internals, 6th ed., ch. 12, "NTFS
recovery support"). The log itself is written lazily, so a real crash may undo the last
few name changes as one tail; that tail is not modelled (a Python program cannot force it).

Not modelled: LockFileEx/msvcrt.locking (``fcntl.flock`` is kept, with flock's semantics,
so POSIX locking code runs; Windows' byte-range locks would also refuse other handles'
reads and writes, ERROR_LOCK_VIOLATION 33); renaming a directory while a file in it is
open; delete-pending files (only opens that share delete access create them, and
CPython's never do); NTFS's case-insensitive names and the characters it forbids in
them; a target's own platform checks of ``os.name``/``sys.platform`` (read at import,
they stay POSIX) and the POSIX-only calls it may make (``os.fchmod``, ``O_NOFOLLOW``...).
``platform.system()`` answers ``"Windows"`` to a processor, so code that asks at call
time takes its Windows branch.
"""

from __future__ import annotations

import errno as _errno
import os
import stat as _stat
from typing import Any

__all__ = ["LABEL", "PLATFORMS", "Rules", "WindowsFileExistsError", "WindowsPermissionError",
           "refusal", "refusals", "refused_lines", "shown"]

PLATFORMS = ("linux", "windows")
"""The platforms a run can emulate: Linux (the machine's own semantics) or Windows."""

LABEL = "Windows semantics"
"""The start of the fault label on every call the Windows rules refused."""

ERROR_ACCESS_DENIED = 5
ERROR_SHARING_VIOLATION = 32
ERROR_ALREADY_EXISTS = 183
_TEXT = {ERROR_ACCESS_DENIED: "Access is denied",
         ERROR_SHARING_VIOLATION: ("The process cannot access the file because it is being "
                                   "used by another process"),
         ERROR_ALREADY_EXISTS: "Cannot create a file when that file already exists"}
_WRITABLE = os.O_WRONLY | os.O_RDWR


class _WinError:
    """Printed as CPython prints an OSError that carries a winerror."""

    winerror: int

    def __str__(self) -> str:
        text = f"[WinError {self.winerror}] {self.strerror}"
        if self.filename2 is not None:
            return f"{text}: {self.filename!r} -> {self.filename2!r}"
        return f"{text}: {self.filename!r}" if self.filename is not None else text


class WindowsPermissionError(_WinError, PermissionError):
    """PermissionError (errno EACCES) with the ``winerror`` Windows set (5 or 32)."""


class WindowsFileExistsError(_WinError, FileExistsError):
    """FileExistsError (errno EEXIST) with ``winerror`` 183."""


def refusal(winerror: int | None, path: str | None, path2: str | None, rule: str,
            errno: int = _errno.EACCES) -> OSError:
    """The exception for a refused call, tagged with its label (``_shim_platform``)."""
    if winerror is None:  # through the C runtime: an errno, no winerror (W6, W7)
        exc: OSError = OSError(errno, os.strerror(errno), path)
        label = f"{LABEL} ({_errno.errorcode[errno]}: {rule})"
    else:
        cls = WindowsFileExistsError if winerror == ERROR_ALREADY_EXISTS else (
            WindowsPermissionError)
        exc = cls(_errno.EEXIST if cls is WindowsFileExistsError else _errno.EACCES,
                  _TEXT[winerror], path, None, path2)
        exc.winerror = winerror  # type: ignore[attr-defined]  # POSIX OSError has no slot
        label = f"{LABEL} (WinError {winerror}: {rule})"
    exc._shim_platform = label  # type: ignore[attr-defined]
    return exc


def shown(outcome: str, fault: str | None) -> str:
    """An FsOp's outcome as reports print it: ``EACCES (WinError 32)`` for a refusal,
    ``EACCES (Windows: a directory cannot be opened)`` for one with no winerror."""
    if not fault or not fault.startswith(LABEL + " ("):
        return outcome
    what, _, rule = fault[len(LABEL) + 2:-1].partition(": ")
    return f"{outcome} ({what})" if what.startswith("WinError") else f"{outcome} (Windows: {rule})"


def refusals(run: Any) -> int:
    """Calls the platform refused over a run dict's scenarios."""
    return sum(int(s.get("platform_refusals") or 0) for s in run.get("scenarios", []))


def refused_lines(runs: dict[str, Any]) -> list[str]:
    """For people: per target, how many calls Windows refused and the refused-call lines."""
    lines = ["Windows semantics: the calls Windows refused (its behaviour, not a fault):"]
    for target, run in runs.items():
        lines.append(f"  {target}: {refusals(run)} refused")
        lines += [f"    {o}" for s in run.get("scenarios", []) for o in s.get("observations")
                  or [] if "(WinError" in o or "(Windows:" in o]
    return lines


class Rules:
    """Windows' answers for one shim: which calls it refuses, given the open handles.

    ``handles`` is None in thread mode (the shim's own descriptor table is every
    processor's) and, in process mode, the worker's line to the parent's table, with
    ``held(ident)``, ``opened(ident)`` and ``closed(ident)``.
    """

    def __init__(self, shim: Any, handles: Any = None) -> None:
        self._shim = shim
        self.handles = handles
        self.copied = 0  # shutil.move calls that fell back to copy2 + unlink (W5)

    # -- what is open -----------------------------------------------------------------

    def _lstat(self, path: str | None) -> os.stat_result | None:
        if path is None:
            return None
        try:
            return self._shim.real.lstat(path)
        except (OSError, ValueError):
            return None

    def _held(self, st: os.stat_result) -> bool:
        ident = (st.st_dev, st.st_ino)
        if self.handles is not None:
            return bool(self.handles.held(ident))
        shim = self._shim
        with shim._cond:
            live = [fd for fd, info in shim._fds.items() if not info.dead and not info.is_dir]
        for fd in live:
            try:
                other = shim.real.fstat(fd)
            except (OSError, ValueError):
                continue
            if (other.st_dev, other.st_ino) == ident:
                return True
        return False

    def note(self, fd: int, opened: bool) -> None:
        """Process mode: tell the parent a tracked descriptor was opened or will close."""
        if self.handles is None:
            return
        try:
            st = self._shim.real.fstat(fd)
        except (OSError, ValueError):
            return
        if not _stat.S_ISDIR(st.st_mode):
            (self.handles.opened if opened else self.handles.closed)((st.st_dev, st.st_ino))

    # -- the rules ----------------------------------------------------------------------

    def unlink(self, path: str) -> None:
        """W1, W2: raise what DeleteFileW answers, or return to let the call go on."""
        st = self._lstat(path)
        if st is None or _stat.S_ISDIR(st.st_mode):
            return  # the kernel's own answer (ENOENT, EISDIR) stands
        if self._held(st):
            raise refusal(ERROR_SHARING_VIOLATION, path, None,
                          "delete of a file another handle holds open")
        if not st.st_mode & _stat.S_IWUSR:
            raise refusal(ERROR_ACCESS_DENIED, path, None, "delete of a read-only file")

    def rename(self, src: str | None, dst: str | None, *, replace: bool) -> None:
        """W3-W5 for ``os.replace`` (``replace``) or ``os.rename``."""
        st = self._lstat(src)
        if st is None:
            return
        if _stat.S_ISREG(st.st_mode) and self._held(st):
            raise refusal(ERROR_SHARING_VIOLATION, src, dst,
                          "rename of a file another handle holds open")
        dst_st = self._lstat(dst)
        if dst_st is None or (dst_st.st_dev, dst_st.st_ino) == (st.st_dev, st.st_ino):
            return
        if not replace:
            raise refusal(ERROR_ALREADY_EXISTS, src, dst, "os.rename onto an existing name")
        if _stat.S_ISDIR(dst_st.st_mode):
            return  # a directory destination: the kernel refuses it on its own
        if self._held(dst_st):
            raise refusal(ERROR_ACCESS_DENIED, src, dst,
                          "replace onto a file another handle holds open")
        if not dst_st.st_mode & _stat.S_IWUSR:
            raise refusal(ERROR_ACCESS_DENIED, src, dst, "replace onto a read-only file")

    def move(self, src: str | None, dst: str | None, perform: Any) -> Any:
        """``shutil.move(src, dst)`` of a file as CPython runs it on Windows (W5)."""
        st, dst_st = self._lstat(src), self._lstat(dst)
        if (st is None or not _stat.S_ISREG(st.st_mode)
                or (dst_st is not None and _stat.S_ISDIR(dst_st.st_mode))):
            return perform()  # moving into a directory, or a directory: as on Linux
        try:
            self.rename(src, dst, replace=False)
        except OSError:  # shutil.move catches what os.rename raised, and copies instead
            pass
        else:
            return perform()
        shim = self._shim
        with shim._quiet():
            shim.real.copy2(src, dst)
        self.copied += 1
        try:
            self.unlink(src)
        except OSError as exc:
            exc._shim_platform = exc._shim_platform.replace(  # type: ignore[attr-defined]
                ": delete of", ": shutil.move's delete (after its copy) of")
            raise
        with shim._quiet():
            shim.real.unlink(src)
        return dst

    def open(self, path: str) -> None:
        """W6: a directory cannot be opened."""
        try:
            st = self._shim.real.stat(path)
        except (OSError, ValueError):
            return
        if _stat.S_ISDIR(st.st_mode):
            raise refusal(None, path, None, "a directory cannot be opened")

    def fsync(self, info: Any) -> None:
        """W7: fsync needs a descriptor open for writing."""
        if info.file is not None:
            writable = info.file.writable()
        else:
            writable = info.flags is None or bool(info.flags & _WRITABLE)
        if not writable:
            raise refusal(None, None, None, "fsync of a descriptor not open for writing",
                          _errno.EBADF)
