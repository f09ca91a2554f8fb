"""Publishing a generation: the checkpoint recipe, step by step (see ``_store.py``).

(1) write the state to a unique temp file and fsync it (a full disk fails here, with
nothing else touched); (2) create the empty ``journal.<n+1>`` (O_EXCL); (3) seal the
old journal and fsync; (4) rename the temp file to ``checkpoint.<n+1>`` and fsync the
directory; (5) switch to the new journal and unlink the old generation. A failed
directory fsync stops the handle: whether the rename is durable is unknown, and
removing the old generation could then leave nothing after a power loss.

Owns the checkpoint recipe; may import only _os, _records, journal, _storelike, errors
(never _store: the Store is passed in).
"""

from __future__ import annotations

import errno

from . import _os
from . import _records as _r
from . import journal as _j
from ._storelike import StoreLike
from .errors import DiskFullError, PersistenceError

__all__ = ["publish"]


def publish(store: StoreLike, seal: bool, gen: int | None = None) -> None:
    """Write our state as generation ``gen`` (default: past every one present) and
    make it the live one (the steps are in the module doc)."""
    names = store.names()
    if gen is None:
        gen = 1 + max([store.gen, *_j.generations(names, "checkpoint"),
                       *_j.generations(names, "journal")])
    data = _r.encode_checkpoint(gen, store.state.snapshot(store.retain))
    tmp = _write_checkpoint_temp(store, data)
    new = None
    try:
        new = _create_journal(store, gen)
        old = store.journal
        if seal and old is not None and old.sealed_to is None and not old.poisoned:
            try:
                store.write(old, [_r.rec_seal(gen)], True, True)
                old.sealed_to = gen
            except PersistenceError:
                # An untrusted journal needs no seal: others see it unlinked below.
                if not old.poisoned:
                    raise
        _os.replace(tmp, store.path(f"checkpoint.{gen}"))
    except BaseException:
        _j.discard_temp(tmp)
        if new is not None:
            new.close()
        raise
    try:
        store.sync_dir()
    except PersistenceError as exc:
        new.close()
        # Whether the rename is durable is unknown: removing the old generation
        # could leave nothing after a power loss. Stop; a reopen sorts it out.
        store.stopped = f"fsync of directory {store.dir!r} failed ({exc.strerror})"
        raise
    store.state.drop_delivered(store.retain)
    store.set_ckpt_size(len(data))
    store.checkpoints += 1
    store.switch(new, gen)


def _write_checkpoint_temp(store: StoreLike, data: bytes) -> str:
    """The temp file of a checkpoint. A checkpoint smaller than the generation it
    replaces frees more than it takes, so on a full disk it may borrow from the
    reserve (else a drained queue that had filled its disk stayed full for good)."""
    live = store.state.live()
    store.reserve.trim(live)
    try:
        tmp = _j.write_temp(store.dir, data)
    except DiskFullError:
        replaced = store.ckpt_size + (store.journal.end if store.journal else 0)
        if len(data) >= replaced or not store.reserve.release(len(data) + 4096):
            raise
        tmp = _j.write_temp(store.dir, data)
    store.fsyncs += 1
    return tmp


def _create_journal(store: StoreLike, gen: int) -> _j.Journal:
    path = store.path(f"journal.{gen}")
    try:
        journal = _j.Journal.open(path, gen, create=True)
    except PersistenceError as exc:
        if exc.errno != errno.EEXIST:
            raise
        # Left empty by a publication that died before its rename: reuse it.
        journal = store.open_journal(gen)
        if _os.fstat(journal.fd, path).st_size:
            journal.close()
            raise store.corrupt(path, "a journal with records exists for a generation "
                                "that has no checkpoint") from exc
    return journal
