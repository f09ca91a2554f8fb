"""Words for the sentences people read: "1 fault", "an ENOENT", "e3, e5, ... 9 more", and
where the target raised ("store.py:41 in _load").

Every count a person reads goes through `count`, so a run with one scenario does not say
"1 scenarios"; every article before a word the harness does not know in advance (an errno
name, a type name) goes through `article`.

`raised_at` finds the line to fix when a target's call raised (harness.run.client records it
with the exception): the innermost frame that is neither the harness (the shim sits
between the target and the OS) nor the standard library (a ``JSONDecodeError`` is raised
deep in ``json.decoder``, but the line to fix is the target's ``json.loads``). A library
the target uses is the target's code too: its frame counts.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import traceback
from types import TracebackType

__all__ = ["article", "count", "ids", "raised_at", "short_path"]

# Irregular plurals of nouns the harness counts; the rest take an "s".
_PLURALS = {"entry": "entries", "process": "processes", "warning/error": "warnings/errors",
            "queue id": "queue ids"}

# Capitals read as letters whose name starts with a vowel sound: "an FSYNC", "an MMAP".
_VOWEL_LETTERS = frozenset("AEFHILMNORSX")


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``count(1, "fault")`` -> ``"1 fault"``; ``count(2, "entry")`` -> ``"2 entries"``."""
    if n == 1:
        return f"{n} {noun}"
    return f"{n} {plural or _PLURALS.get(noun) or noun + 's'}"


def article(word: str) -> str:
    """``"a"`` or ``"an"`` for ``word``: ``an ENOENT``, ``an int``, ``a str``, ``a UUID``."""
    if not word:
        return "a"
    if word.isupper() and len(word) > 1 and word[1:2] not in "AEIOU":
        return "an" if word[0] in _VOWEL_LETTERS else "a"  # read as letters: "an NFS"
    if word[:1].lower() == "u" and word[:3].lower() in ("uni", "use", "usa", "usu", "uti"):
        return "a"  # "a unicode", "a user": a consonant sound
    return "an" if word[:1].lower() in "aeiou" else "a"


def ids(keys: list[str], shown: int = 3) -> str:
    """Entry ids in their natural order, the first few: ``e3, e5, e9, ... 9 more``."""
    def natural(key: str) -> tuple:
        digits = key.lstrip("abcdefghijklmnopqrstuvwxyz")
        return (key[:len(key) - len(digits)], int(digits) if digits.isdigit() else -1, key)

    keys = sorted(keys, key=natural)
    if len(keys) <= shown + 1:  # "... 1 more" takes the room of the one it hides
        return ", ".join(keys)
    return ", ".join(keys[:shown]) + f", ... {len(keys) - shown} more"


# -- where a target raised ----------------------------------------------------------------

_HARNESS = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # harness/
_STDLIB = tuple(
    os.path.abspath(p) + os.sep
    for p in {sysconfig.get_paths().get("stdlib"), sysconfig.get_paths().get("platstdlib")}
    if p)


def _ours(filename: str) -> bool:
    return os.path.abspath(filename).startswith(_HARNESS)


def _stdlib(filename: str) -> bool:
    path = os.path.abspath(filename)
    # site-packages lives under the stdlib directory in some layouts: a library is not it.
    return path.startswith(_STDLIB) and "site-packages" not in path.split(os.sep)


def short_path(filename: str) -> str:
    """A path a person recognises: relative to the working directory when under it, else
    relative to the ``sys.path`` entry it was imported from (``pkg/mod.py``), else as is."""
    path = os.path.abspath(filename)
    here = os.getcwd() + os.sep
    if path.startswith(here):
        return path[len(here):]
    roots = [os.path.abspath(p) + os.sep for p in sys.path if p]
    best = max((r for r in roots if path.startswith(r)), key=len, default=None)
    return path[len(best):] if best else path


def raised_at(exc: BaseException) -> str | None:
    """``naive_store.py:31 in _load``: the target's frame that raised ``exc`` (or called
    what raised it); None when the traceback holds no frame outside the harness."""
    tb: TracebackType | None = exc.__traceback__
    frames = [f for f in traceback.extract_tb(tb) if not _ours(f.filename)] if tb else []
    if not frames:
        return None
    own = [f for f in frames if not _stdlib(f.filename)]
    frame = (own or frames)[-1]
    return f"{short_path(frame.filename)}:{frame.lineno} in {frame.name}"
