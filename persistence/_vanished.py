"""A queue directory that vanished under its handles: re-created from memory.

Someone removed the whole directory (``rm -rf`` of a "stale" queue, a tmp cleaner)
while handles had it open. Their memory still holds every committed record, so the
first handle to notice re-creates the directory and publishes its state there; the
handles of the old directory queue up on its descriptor's lock (still valid: the
directory lives on, unlinked, while it is open), and each one after the first loads
the state found there. A directory re-created by someone else, holding another queue,
is loaded as it is: what ours held is gone with the directory it was in.

Owns re-creating a vanished directory; may import only _directory, _os, journal,
_recovery, _storelike, errors (never _store: the Store is passed in).
"""

from __future__ import annotations

import errno
import logging
import os.path

from . import _directory, _os
from . import journal as _j
from ._recovery import load_and_recover
from ._storelike import StoreLike
from .errors import PersistenceError

__all__ = ["reestablish"]

_log = logging.getLogger("persistence")


def reestablish(store: StoreLike) -> bool:
    """The directory vanished: re-create it from memory instead of writing into it.
    Handles of the old directory queue up on its descriptor's lock; the first
    re-creates, the others load its state: True when we loaded one found there."""
    _log.warning("queue directory vanished: path=%r; re-establishing", store.dir)
    old = store.att
    held = _os.fstat(old.dir_fd, store.dir)
    named = _os.lstat_or_none(store.dir)
    if held.st_nlink and named is not None and (
            (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)):
        # Still the directory we hold: attaching again would wait for ever on the
        # lock this very handle holds through its descriptor.
        old.dir_id = (held.st_dev, held.st_ino)
        return False
    _os.flock(old.dir_fd, _os.LOCK_EX, store.dir)
    new = None
    try:
        if store.journal is not None:
            store.catch_up(follow=False)  # the last records of the vanished journal
        try:
            _os.mkdir(store.dir)
            store.fsyncs += 1
            _os.fsync_dir(os.path.dirname(store.dir))
        except PersistenceError as exc:
            if exc.errno != errno.EEXIST:
                raise store.gone("re-create", str(exc)) from exc
        new = _directory.attach(store.dir, store.token, create=False)
        store.fsyncs += new.syncs
        _os.flock(new.dir_fd, _os.LOCK_EX, store.dir)
        try:
            names = store.names()
            found = bool(_j.generations(names, "checkpoint")
                         or _j.generations(names, "journal"))
            store.att = new
            store.reserve.close()
            if found:
                load_and_recover(store)
            else:
                store.publish(False, store.gen + 1)
            return found
        finally:
            _os.flock(new.dir_fd, _os.LOCK_UN, store.dir)
    except BaseException:
        if new is not None:
            store.att = old
            new.close(store.dir, store.token, remove_owner=False)
        _os.flock(old.dir_fd, _os.LOCK_UN, store.dir)
        raise
    finally:
        if store.att is new and new is not None:
            old.close(store.dir, store.token, remove_owner=False)
