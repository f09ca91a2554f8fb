"""The shim's file objects: `open` rebuilt so Python's buffer sits above the interception.

Why not hand back the object the original ``open`` returns: Python's buffer must sit
*above* the interception, as in a real process, so a ``write`` reaches the shim (and
the disk) only when the buffer flushes, and a killed processor's unflushed buffer never
lands. So we open the file with the original ``open`` in binary, unbuffered mode, wrap
it in `ShimRawFile` (every readinto/write/truncate/seek/close is intercepted), then stack
the standard ``io`` buffered and text layers on top exactly as ``io.open`` does.

The wrappers that route ``open`` here, and the patching itself, live in `_patches`.
"""

from __future__ import annotations

import io
import os
import warnings
from typing import Any

__all__ = ["ShimRawFile", "open_file"]

# open(2) flags of each mode letter, as far as path resolution cares (harness.faults.errnos)
_OPEN_FLAGS = {"r": 0, "w": os.O_CREAT, "a": os.O_CREAT, "x": os.O_CREAT | os.O_EXCL}


class ShimRawFile(io.RawIOBase):
    """The raw layer: delegates to the unbuffered underlying file, through the shim.

    When its processor is killed the wrapper is marked dead (the shim buries its
    descriptor: the real file is released, the number kept until uninstall, when the
    shim closes it): from then on writes are swallowed (a dead process's user-space
    buffer never reaches the disk, even when the garbage collector flushes it later)
    and close is a no-op, so unwinding and finalisers stay silent.

    A write that an injected error failed is remembered (bytes, fault, the thread's
    call count): when the buffered layer retries exactly those bytes with no other
    call in between (``TextIOWrapper.close`` flushes, then its buffer's close flushes
    again) the shim is told it is a repeat, so one injected error counts once.
    """

    def __init__(self, shim: Any, under: Any, path: str, process: int,
                 closefd: bool = True) -> None:
        super().__init__()
        self.closefd = closefd
        self._shim = shim
        self._under = under
        self._path = path
        self._process = process
        self._dead = False
        self._failed: tuple[bytes, str, int] | None = None  # see the class docstring
        self.name = getattr(under, "name", path)
        self.mode = getattr(under, "mode", "rb")
        # cached: a dead wrapper must still answer these without touching the file
        self._readable = under.readable()
        self._writable = under.writable()
        self._seekable = under.seekable()

    # -- plumbing ---------------------------------------------------------------

    def _op(self, kind: str, perform, **kw):
        return self._shim._file_op(self, kind, perform, **kw)

    def _refuse_dead(self):
        self._shim._check_caller_alive()
        raise ValueError("I/O operation on a file of a killed processor")

    def _die(self) -> None:
        """Called by the shim when the owning processor is killed (it buries the fd)."""
        self._dead = True

    # -- io.RawIOBase -----------------------------------------------------------

    def readable(self) -> bool:
        return self._readable

    def writable(self) -> bool:
        return self._writable

    def seekable(self) -> bool:
        return self._seekable

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._under.fileno()

    def readinto(self, buffer) -> int:
        if self._dead:
            self._refuse_dead()
        view = memoryview(buffer).cast("B")

        def perform() -> int:
            data = self._under.read(len(view)) or b""
            view[: len(data)] = data
            return len(data)

        return self._op("read", perform, nbytes=len(view), count=lambda n: n)

    def readall(self) -> bytes:
        if self._dead:
            self._refuse_dead()
        return self._op("read", lambda: self._under.read() or b"", count=len)

    def write(self, data) -> int:
        payload = bytes(data)
        if self._dead:
            return len(payload)  # discarded: see the class docstring
        failed, self._failed = self._failed, None
        repeat = None
        if failed is not None and failed[0] == payload and failed[2] == self._shim._seq():
            repeat = failed[1]
        try:
            return self._op(
                "write",
                lambda: self._shim._wrote(self.fileno(), self._under.write(payload)),
                nbytes=len(payload),
                writes=True,
                prefix=lambda keep: self._shim._wrote(self.fileno(),
                                                      self._under.write(payload[:keep])),
                count=lambda n: n,
                repeat=repeat,
            )
        except OSError as exc:
            fault = getattr(exc, "_shim_fault", None)
            if fault is not None:
                self._failed = (payload, fault, self._shim._seq())
            raise

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if self._dead:
            return 0
        return self._op("seek", lambda: self._under.seek(offset, whence))

    def tell(self) -> int:
        if self._dead:
            return 0
        return self._under.tell()

    def truncate(self, size: int | None = None) -> int:
        if self._dead:
            self._refuse_dead()
        target = self._under.tell() if size is None else size

        def perform() -> int:
            result = self._under.truncate(size)
            self._shim._truncated(self.fileno(), target)
            return result
        return self._op("truncate", perform, nbytes=target, writes=True)

    def flush(self) -> None:
        # FileIO.flush is a no-op too; the recorded "flush" is the buffered layer's
        return None

    def close(self) -> None:
        if self.closed:
            return
        try:
            if not self._dead:
                self._shim._file_close(self)
        finally:
            super().close()


def _flush_through_shim(buffered, flush) -> None:
    raw = buffered.raw
    if buffered.closed or not isinstance(raw, ShimRawFile) or raw._dead:
        return flush()
    # the flush is one intercepted call; the raw writes it causes are recorded inside it
    return raw._op("flush", flush)


class _Writer(io.BufferedWriter):
    def flush(self) -> None:
        _flush_through_shim(self, super().flush)


class _Random(io.BufferedRandom):
    def flush(self) -> None:
        _flush_through_shim(self, super().flush)


def _parse_mode(mode: str, buffering: int, encoding, errors, newline) -> tuple[str, bool]:
    """Validate like io.open; return (raw binary mode, binary?)."""
    chars = set(mode)
    if chars - set("axrwb+t") or len(mode) > len(chars):
        raise ValueError(f"invalid mode: {mode!r}")
    if "t" in chars and "b" in chars:
        raise ValueError("can't have text and binary mode at once")
    primary = [c for c in "xrwa" if c in chars]
    if len(primary) != 1:
        raise ValueError("must have exactly one of create/read/write/append mode")
    binary = "b" in chars
    if binary and encoding is not None:
        raise ValueError("binary mode doesn't take an encoding argument")
    if binary and errors is not None:
        raise ValueError("binary mode doesn't take an errors argument")
    if binary and newline is not None:
        raise ValueError("binary mode doesn't take a newline argument")
    if not binary and buffering == 0:
        raise ValueError("can't have unbuffered text I/O")
    return primary[0] + ("+" if "+" in chars else "") + "b", binary


def open_file(shim: Any, process: int, path: str, builtin_open, file, mode: str = "r",
              buffering: int = -1, encoding: str | None = None, errors: str | None = None,
              newline: str | None = None, closefd: bool = True, opener=None):
    """``io.open`` for an intercepted call: raw layer through the shim, io layers on top."""
    raw_mode, binary = _parse_mode(mode, buffering, encoding, errors, newline)
    if binary and buffering == 1:
        warnings.warn("line buffering (buffering=1) isn't supported in binary mode, "
                      "the default buffer size will be used", RuntimeWarning, stacklevel=3)
        buffering = -1

    def perform() -> ShimRawFile:
        if shim.windows is not None:
            shim.windows.open(path)  # a directory cannot be opened there
        under = builtin_open(file, raw_mode, buffering=0, closefd=closefd, opener=opener)
        with shim._own():
            raw = ShimRawFile(shim, under, path, process, closefd)
            shim._track_file(raw, path, process)
            if raw_mode[0] == "w":
                shim._truncated(raw.fileno(), 0)
        return raw

    writes = raw_mode[0] != "r" or "+" in raw_mode
    creates = raw_mode[0] in "wax" and shim._creates(path)  # looked before asking
    flags = _OPEN_FLAGS[raw_mode[0]]
    raw = shim._run(process, "open", path, perform, writes=writes, creates=creates,
                    flags=flags)
    try:
        line_buffering = buffering == 1
        if buffering in (1, -1):
            buffering = io.DEFAULT_BUFFER_SIZE
        if buffering == 0:
            return raw
        if "+" in raw_mode:
            buffer = _Random(raw, buffering)
        elif raw_mode[0] == "r":
            buffer = io.BufferedReader(raw, buffering)
        else:
            buffer = _Writer(raw, buffering)
        if binary:
            return buffer
        text = io.TextIOWrapper(buffer, encoding, errors, newline, line_buffering)
        text.mode = mode
        return text
    except BaseException:
        raw.close()
        raise
