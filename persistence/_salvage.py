"""Salvage: rebuild a damaged queue from every intact record, and say what is missing.

Opening a damaged queue raises CorruptionError and changes nothing: deciding that the
damaged bytes are gone for good is the operator's call, not the library's. Once it is
made, :func:`salvage` (SQLite's ``.recover`` for this queue) does what can be done:

1. it refuses while any handle has the queue open (the owner files say so, and the
   liveness bytes of the directory for a handle whose owner file was removed);
2. it loads the newest checkpoint. A damaged one is read frame by frame as journals are
   (below): every intact entry record is kept, each damaged byte range is reported, and
   a note compares the entries found with the count the checkpoint recorded. An older
   valid checkpoint whose journal is still there (a power loss brought back a generation
   removed after the damaged one was published) is used instead: replaying from it loses
   nothing. One without its journal never is: the changes of that journal would be lost
   and its acked entries delivered again;
3. it replays every journal of that generation and later, in order; where a journal is
   damaged it skips to the next intact commit frame (each is CRC-checked, so a frame
   found by a resynchronising scan is as trustworthy as any) and records the damaged
   byte range;
4. it reports the entries it could not recover: ids that surviving records refer to
   (a claim, an ack) although their enqueue or checkpoint record was lost, and, for
   every handle whose enqueues it saw, the numbers missing between its first and last
   one (entry ids are ``<handle token>-<n>`` with n counting up from 1);
5. it publishes the result as a new generation, and keeps every damaged file aside as
   ``<name>.corrupt-<n>`` (evidence is never deleted); intact old files are removed.

Owns salvage; may import only _directory, _liveness, _os, _records, _recovery, _state,
journal, errors.
"""

from __future__ import annotations

import errno
import os.path
import secrets
from dataclasses import dataclass, field

from . import _directory, _liveness, _os
from . import _records as _r
from . import journal as _j
from ._recovery import owner_held
from ._state import State
from .errors import CorruptionError, PersistenceError

__all__ = ["SalvageReport", "salvage"]


@dataclass(frozen=True)
class SalvageReport:
    """What :func:`salvage` kept, lost and set aside."""

    generation: int  # the generation it published
    entries: int  # entries recovered (every state but DELIVERED)
    damaged: tuple[str, ...] = ()  # "journal.3 bytes 120-4216", "checkpoint.4 bytes 9-75"
    unrecoverable: tuple[str, ...] = ()  # ids referred to, but whose record was lost
    possibly_lost: tuple[str, ...] = ()  # ids missing from a handle's sequence
    kept: tuple[str, ...] = ()  # damaged files set aside, by their new names
    # what else is known: how many entries a damaged checkpoint lost
    notes: tuple[str, ...] = field(default=())

    @property
    def clean(self) -> bool:
        return not (self.damaged or self.unrecoverable or self.possibly_lost)


def salvage(directory: str) -> SalvageReport:
    """Rebuild the queue in ``directory`` from every intact record (see module doc)."""
    path = _directory.resolve(directory)
    token = secrets.token_hex(8)
    att = _directory.attach(path, token, create=False)
    try:
        _os.flock(att.dir_fd, _os.LOCK_EX, path)
        try:
            _refuse_if_open(path, token, att.dir_fd)
            return _Salvager(path).run()
        finally:
            _os.flock(att.dir_fd, _os.LOCK_UN, path)
    finally:
        err = att.close(path, token, remove_owner=True)
        if err is not None:
            raise err


def _refuse_if_open(path: str, token: str, dir_fd: int) -> None:
    alive = []
    owners = os.path.join(path, "owners")
    for name in _os.listdir(owners):
        if name != token and owner_held(path, name, dir_fd):
            alive.append(name)
    if alive:
        raise PersistenceError(errno.EBUSY, "queue in use", path,
                               f"salvage refused: path={path!r} open_handles={len(alive)} "
                               f"(owners {sorted(alive)}); close every handle of the queue, "
                               "then run salvage again")
    # Our own byte is locked through dir_fd itself, which the question leaves out.
    if _liveness.byte_locked(dir_fd, *_liveness.ANY, path):
        raise PersistenceError(errno.EBUSY, "queue in use", path,
                               f"salvage refused: path={path!r} open_handles>=1 (a handle "
                               "whose owner file was removed still holds its liveness lock); "
                               "close every handle of the queue, then run salvage again")


class _Salvager:
    def __init__(self, path: str) -> None:
        self.path = path
        self.state = State()
        self.damaged: list[str] = []
        self.notes: list[str] = []
        self.bad_files: list[str] = []
        self.unrecoverable: dict[str, None] = {}
        self.seqs: dict[str, set[int]] = {}

    def run(self) -> SalvageReport:
        names = _os.listdir(self.path)
        ckpts = _j.generations(names, "checkpoint")
        journals = sorted(_j.generations(names, "journal"))
        base = self._load_base(ckpts, journals)
        if ckpts and base not in journals:
            self.damaged.append(f"journal.{base} (missing: every change since "
                                f"checkpoint.{base} is lost)")
        for gen in journals:
            if gen >= base:
                self._replay(f"journal.{gen}")
        new_gen = 1 + max([*ckpts, *journals, 0])
        entries = self._publish(new_gen)
        kept = self._set_aside(ckpts, journals, new_gen)
        return SalvageReport(
            generation=new_gen, entries=entries, damaged=tuple(self.damaged),
            unrecoverable=tuple(self.unrecoverable), possibly_lost=self._gaps(),
            kept=tuple(kept), notes=tuple(self.notes))

    def _load_base(self, ckpts: list[int], journals: list[int]) -> int:
        """Load the newest checkpoint (see the module doc); its generation, 0 if none."""
        newest = None  # (generation, name) of the newest one, when it is damaged
        for gen in ckpts:
            name = f"checkpoint.{gen}"
            try:
                found = _j.read_checkpoint(os.path.join(self.path, name))
            except CorruptionError:
                self.bad_files.append(name)
                if newest is None:
                    newest = (gen, name)
                else:
                    self.damaged.append(f"{name} (whole file: not a valid checkpoint)")
                continue
            if found is None:
                continue
            if newest is None or gen in journals:
                if newest is not None:
                    self.damaged.append(f"{newest[1]} (whole file: not a valid checkpoint; "
                                        f"rebuilt from {name} and the journals since)")
                self.state.load(found[1])
                return gen
            break  # without its journal it lacks changes the damaged newer one holds
        if newest is None:
            return 0
        self._load_damaged(newest[1])
        return newest[0]

    def _load_damaged(self, name: str) -> None:
        """Keep every intact entry record of a damaged checkpoint (see the module doc)."""
        data = _os.read_all(os.path.join(self.path, name))
        entries, count, gap_start = [], None, 0
        ranges = len(self.damaged)
        for offset, stop, rec in _r.checkpoint_frames(data):
            if offset > gap_start:
                self.damaged.append(f"{name} bytes {gap_start}-{offset}")
            gap_start = stop
            if rec[0] == "N":
                entries.append(rec)
            elif rec[0] == "Z":
                count = rec[1]
        if gap_start < len(data):
            self.damaged.append(f"{name} bytes {gap_start}-{len(data)} (to the end)")
        if len(self.damaged) == ranges:  # cut at a frame boundary, say
            self.damaged.append(f"{name} (not a valid checkpoint, although every frame "
                                "in it is)")
        self.state.load(entries)
        if count is None:
            counts = "recorded unknown (its count record is damaged), lost unknown"
        else:
            counts = f"recorded {count}, lost {max(count - len(entries), 0)}"
        self.notes.append(f"{name}: entries recovered {len(entries)}, {counts}")

    def _replay(self, name: str) -> None:
        data = _os.read_all(os.path.join(self.path, name))
        records, valid, _ = _r.scan_commits(data)
        self._apply(records)
        if valid == len(data):
            return
        self.bad_files.append(name)
        gap_start = valid
        for offset, stop, _durable, found in _r.frames_after(data, valid + 1):
            if offset > gap_start:
                self.damaged.append(f"{name} bytes {gap_start}-{offset}")
            self._apply(found)
            gap_start = stop
        if gap_start < len(data):
            self.damaged.append(f"{name} bytes {gap_start}-{len(data)} (to the end)")

    def _apply(self, records: list[tuple]) -> None:
        entries = self.state.entries
        for rec in records:
            kind, entry_id = rec[0], rec[1]
            if kind in "SMZ":
                continue
            if kind == "E":
                token, _, seq = entry_id.rpartition("-")
                if seq.isdigit():
                    self.seqs.setdefault(token, set()).add(int(seq))
                self.unrecoverable.pop(entry_id, None)
            elif entry_id not in entries:
                self.unrecoverable[entry_id] = None
                continue
            self.state.apply(rec)

    def _gaps(self) -> tuple[str, ...]:
        lost = []
        for token, seqs in self.seqs.items():
            for n in range(min(seqs), max(seqs)):
                entry_id = f"{token}-{n}"
                if n not in seqs and entry_id not in self.state.entries and (
                        entry_id not in self.unrecoverable):
                    lost.append(entry_id)
        return tuple(lost)

    def _publish(self, gen: int) -> int:
        data = _r.encode_checkpoint(gen, self.state.snapshot(0))
        tmp = _j.write_temp(self.path, data)
        try:
            journal = _j.Journal.open(os.path.join(self.path, f"journal.{gen}"), gen,
                                      create=True)
            journal.close()
            _os.replace(tmp, os.path.join(self.path, f"checkpoint.{gen}"))
        except BaseException:
            _j.discard_temp(tmp)
            raise
        _os.fsync_dir(self.path)
        counts = self.state.counts
        return sum(counts.values()) - counts["DELIVERED"]

    def _set_aside(self, ckpts: list[int], journals: list[int],
                   new_gen: int) -> list[str]:
        kept = []
        old = [f"checkpoint.{g}" for g in ckpts] + [f"journal.{g}" for g in journals]
        for name in old:
            src = os.path.join(self.path, name)
            if name in self.bad_files:
                copy = _j.keep_copy(src)  # reuses an identical copy kept when it was read
                if copy is None:
                    raise CorruptionError(errno.EIO, "cannot keep evidence", src,
                                          f"salvage stopped: path={src!r} (a copy of the "
                                          "damaged file could not be kept; it is left in "
                                          "place); free space, then run salvage again")
                kept.append(copy)
            _os.unlink_if_present(src)
        _os.fsync_dir(self.path)
        return kept
