"""What the shim does to the disk and to processors when a fault fires, and its own bugs.

Mixed into `harness.intercept.shim.Shim` (which sets up ``_cond``, ``_dead``, ``_known``,
``history``, ``model``, ``real``, ``rng``, ``sandbox``, ``windows``, ``harness_errors``)
so that the call pipeline there stays short: a kill buries the processor's descriptors,
a power cut kills every processor and rolls the sandbox back through the durability model, a removed
directory goes with everything in it. `_own` marks the harness's own code: an exception
raised there is a `HarnessError`, never an error of the target's call.
"""

from __future__ import annotations

import contextlib
import os
import stat as _stat
from collections.abc import Iterator

from harness.check.history import NEMESIS
from harness.check.words import count
from harness.faults.actions import PowerCut, RemoveDirectory
from harness.intercept._shimfds import DeadlockError
from harness.intercept.shimerrors import HarnessError, ProcessorKilled, _mark

__all__ = ["Acts"]


class Acts:
    """Mixin for `Shim`: faults carried out, and the harness's own code kept apart."""

    @contextlib.contextmanager
    def _own(self) -> Iterator[None]:
        """The harness's own code: an exception in it is a `HarnessError` (a bug to fix),
        never an error of the target's call."""
        try:
            yield
        except (HarnessError, ProcessorKilled, DeadlockError):
            raise
        except Exception as exc:
            raise self._bug(exc) from exc

    def _bug(self, exc: BaseException) -> HarnessError:
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = (f" at {os.path.basename(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno}"
                 if tb is not None else "")
        message = f"{type(exc).__name__}: {exc}{where}"
        self.harness_errors.append(message)
        err = HarnessError(message)
        return _mark(err)  # type: ignore[return-value]

    # -- faults ---------------------------------------------------------------------

    def _kill(self, p: int, kind: str = "kill", fault: str = "", effect: str = "",
              record: bool = True) -> None:
        with self._cond:
            self._dead.add(p)
            self._bury(p)  # files and locks released, descriptor numbers kept (_shimfds)
        if record:
            self.history.fault(p, kind, fault, effect, crashed=(p,))

    def _power_cut(self, action: PowerCut) -> None:
        with self._cond:
            crashed = sorted(self._known)
        for q in crashed:
            self._kill(q, record=False)
        if self.model is None:
            sentences = ["no durability model: nothing rolled back"]
        else:
            with self._quiet():
                # names only when asked: models that know one flavour keep working
                names = "eager" if self.windows is not None else action.names  # `windows`
                eager = {"names": names} if names != "strict" else {}
                sentences = self.model.power_loss(self.rng, action.torn, **eager)
        effect = "power lost; " + ("; ".join(sentences) if sentences else "nothing to roll back")
        self.history.fault(NEMESIS, "power_loss", action.fault, effect, crashed=crashed)

    def _remove_directory(self, p: int, action: RemoveDirectory) -> None:
        target = self._path.normpath(self._path.join(self.sandbox, action.path))
        assert self._inside(target), f"refusing to remove {target!r}: outside the sandbox"
        rel = self._rel(target)
        with self._quiet():
            try:
                files = self._rmtree(target)
            except FileNotFoundError:
                files = None
        if files is None:
            effect = f"directory {rel}/ was already absent"
        else:
            effect = f"removed directory {rel}/ with {count(files, 'file')}"
        self.history.fault(p, action.kind, action.fault, effect, destroyed=bool(files))
        if self.model is not None:
            with self._quiet():
                self.model.removed_by_fault(target)

    def _rmtree(self, path: str) -> int:
        assert self._inside(path), path
        files = 0
        for name in self.real.listdir(path):
            child = self._path.join(path, name)
            mode = self.real.lstat(child).st_mode
            if _stat.S_ISDIR(mode):
                files += self._rmtree(child)
            else:
                self.real.unlink(child)
                files += _stat.S_ISREG(mode)
        self.real.rmdir(path)
        return files
