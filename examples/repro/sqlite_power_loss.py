"""Standalone: what three SQLite-backed queues' default settings mean for a crash and a power loss.

No harness code: persist-queue's SQLiteAckQueue, litequeue's LiteQueue and huey's
SqliteStorage, each opened as its README shows, with no option changed. Per library:

1. REPORTED: the effective settings, read from a live connection the library opened
   (journal_mode, synchronous, locking_mode, busy_timeout; ``in_transaction`` after a
   put: False means the put was committed when it returned), and the SQLite build's
   defaults (compile options), with what SQLite documents for that pair of settings
   under a power loss (https://www.sqlite.org/pragma.html#pragma_synchronous).
2. MEASURED, when strace is installed: the fsync/fdatasync calls (and the files they
   hit) made by the first put and by the 19 next ones, told apart by marker syscalls, so
   the open and the exit are left out. A commit that returned without an fsync is one a
   power loss may take back (the first put of a new WAL also syncs its header).
3. REPRODUCED: a process crash. A child puts entries and claims + acks every third one,
   printing each after the call returned; the parent SIGKILLs it after a seeded random
   delay (the kernel decides where in the child's code that lands), then reopens the
   database and checks that every put and every ack that returned is still there. Five
   rounds per library on one database, so each child also opens what a killed one left.
   SQLite promises this in every journal and synchronous mode ("Transactions are
   durable across application crashes regardless of the synchronous setting or journal
   mode"), so a loss here would be the library's doing.

NOT reproduced: a power loss. Losing what was written but not fsynced needs a layer
below the process (a FUSE filesystem with its own page cache, a VM, a power switch);
this script only reports the settings and the fsyncs that decide it.

Run: python examples/repro/sqlite_power_loss.py [--seed N] [--rounds N]
Exit status: 1 if an operation that returned was lost after a SIGKILL, 0 if none was,
2 if a library is missing.
"""

from __future__ import annotations

import argparse
import os
import pickle
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

# Per library: how to open it on directory D, put payload P (an int), claim + ack one
# (setting A to the acked payload), and read back {payload: acked?} of every stored row.
LIBRARIES = {
    "persist-queue SQLiteAckQueue": {
        "open": "from persistqueue import SQLiteAckQueue; q = SQLiteAckQueue(D, auto_resume=False)",
        "put": "q.put(P)",
        "claim_ack": "it = q.get(block=False, raw=True); q.ack(id=it['pqid']); A = it['data']",
        "conn": "q._putter",
    },
    "litequeue LiteQueue": {
        "open": "from litequeue import LiteQueue; q = LiteQueue(D + '/queue.sqlite3')",
        "put": "q.put(str(P))",
        "claim_ack": "m = q.pop(); q.done(m.message_id); A = int(m.data)",
        "conn": "q.conn",
    },
    "huey SqliteStorage": {
        "open": ("from huey.storage import SqliteStorage; "
                 "q = SqliteStorage('repro', D + '/huey.db')"),
        "put": "q.enqueue(b'%d' % P)",
        # no ack in huey's storage: the dequeue's commit is the delivery
        "claim_ack": "A = int(bytes(q.dequeue()))",
        "conn": "q.conn",
    },
}

CHILD = """
import sys
D, P = sys.argv[1], int(sys.argv[2])
{open}
print("ready", flush=True)
while True:
    {put}
    print("put", P, flush=True)
    if P % 3 == 2:
        print("claim", P, flush=True)
        {claim_ack}
        print("ack", A, flush=True)
    P += 1
"""

MARKER = "/nonexistent-sqlite-power-loss-marker"
FSYNC_CHILD = """
import os, sys
D = sys.argv[1]
{open}
os.access("{marker}-first", 0)
P = 0
{put}
os.access("{marker}-next", 0)
for P in range(1, 20):
    {put}
os.access("{marker}-end", 0)
"""


def stored(name: str, directory: str) -> dict[int, bool]:
    """{payload: acked} of every row, read with plain sqlite3 from a fresh connection."""
    if name.startswith("persist-queue"):  # its default serializer is pickle
        with sqlite3.connect(os.path.join(directory, "data.db")) as conn:
            rows = conn.execute("SELECT data, status FROM `ack_queue_default`").fetchall()
        return {pickle.loads(data): str(status) == "5" for data, status in rows}  # 5: acked
    if name.startswith("litequeue"):
        with sqlite3.connect(os.path.join(directory, "queue.sqlite3")) as conn:
            rows = conn.execute("SELECT data, status FROM Queue").fetchall()
        return {int(data): status == 2 for data, status in rows}  # 2: DONE
    with sqlite3.connect(os.path.join(directory, "huey.db")) as conn:
        rows = conn.execute("SELECT data FROM task WHERE queue = 'repro'").fetchall()
    return {int(bytes(data)): False for (data,) in rows}  # a dequeued task has no row


def settings(name: str, spec: dict[str, str]) -> dict[str, object]:
    """The PRAGMAs of a live connection the library opened, and whether a put committed."""
    scope: dict[str, object] = {"D": tempfile.mkdtemp(prefix="repro-sqlite-")}
    exec(spec["open"], scope)  # the library's own lines, above: the child runs the same
    conn = eval(spec["conn"], scope)
    got: dict[str, object] = {p: conn.execute(f"PRAGMA {p}").fetchone()[0] for p in (
        "journal_mode", "synchronous", "locking_mode", "busy_timeout", "wal_autocheckpoint")}
    got["isolation_level"] = conn.isolation_level
    scope["P"] = 1
    exec(spec["put"], scope)
    got["in_transaction after put"] = conn.in_transaction
    conn.close()
    shutil.rmtree(str(scope["D"]), ignore_errors=True)
    return got


def promise(journal: str, sync: int) -> str:
    """What SQLite's pragma.html says about a power loss with these settings."""
    if journal == "wal":
        if sync >= 2:
            return ("WAL + FULL: the WAL is synced at every commit; a commit that returned "
                    "survives a power loss (on a disk that honours fsync)")
        if sync == 1:
            return ("WAL + NORMAL: 'always consistent' but 'does lose durability': a commit "
                    "'might roll back following a power loss or system crash' (puts may "
                    "vanish, acks may be undone); never a torn transaction")
        return "WAL + OFF: no sync at all; the database may be corrupted by a power loss"
    if sync == 3:
        return f"{journal} + EXTRA: durable, the journal's directory synced too"
    if sync == 2:
        return f"{journal} + FULL: durable; a commit just before a power loss may roll back"
    if sync == 1:
        return (f"{journal} + NORMAL: 'a very small (though non-zero) chance' of corruption "
                "on a power loss 'on an older filesystem'")
    return f"{journal} + OFF: the database may be corrupted by a power loss"


def fsyncs(spec: dict[str, str]) -> str:
    """fsync/fdatasync calls (and the files they hit) in the first put and in the 19 next
    ones, or why they were not counted."""
    if shutil.which("strace") is None:
        return "not measured (strace is not installed)"
    directory = tempfile.mkdtemp(prefix="repro-sqlite-")
    log = os.path.join(directory, "strace.log")
    program = FSYNC_CHILD.format(marker=MARKER, **spec)
    done = subprocess.run(["strace", "-f", "-qq", "-y", "-o", log, "-e",
                           "trace=fsync,fdatasync,access,faccessat,faccessat2",
                           sys.executable, "-c", program, directory],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return f"not measured (strace exited {done.returncode}: {done.stderr.strip()[-200:]})"
    with open(log) as f:
        lines = f.read().splitlines()
    shutil.rmtree(directory, ignore_errors=True)
    phase = None
    files: dict[str, dict[str, int]] = {"first": {}, "next": {}}
    for line in lines:
        marker = re.search(re.escape(MARKER) + r"-(\w+)", line)
        if marker:
            phase = marker.group(1) if marker.group(1) in files else None
        elif phase and re.search(r"\b(fsync|fdatasync)\(", line):
            hit = re.search(r"<([^>]*)>", line)
            name = os.path.basename(hit.group(1)) if hit else "?"
            files[phase][name] = files[phase].get(name, 0) + 1

    def said(counts: dict[str, int]) -> str:
        where = ", ".join(f"{n}x {f}" for f, n in sorted(counts.items()))
        return f"{sum(counts.values())}" + (f" ({where})" if where else "")

    return f"first put {said(files['first'])}; next 19 puts {said(files['next'])}"


def kill_rounds(name: str, spec: dict[str, str], rng: random.Random, rounds: int) -> list[str]:
    """SIGKILL a child at seeded random moments; the problems found on reopening (none: [])."""
    directory = tempfile.mkdtemp(prefix="repro-sqlite-")
    program = CHILD.format(**spec)
    puts: set[int] = set()
    acks: set[int] = set()
    problems: list[str] = []
    start = in_flight = gone = 0
    for _ in range(rounds):
        child = subprocess.Popen([sys.executable, "-c", program, directory, str(start)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if child.stdout.readline().strip() != "ready":
            child.kill()
            raise RuntimeError(f"{name}: the child did not start: {child.stderr.read()}")
        time.sleep(rng.uniform(0.02, 0.4))
        os.kill(child.pid, signal.SIGKILL)
        out, _ = child.communicate()
        # a line the kill cut short (no newline yet) is left out: its call is not counted
        lines = out.split("\n")[:-1]
        for line in lines:  # a put or ack line was printed after its call returned
            kind, _, value = line.partition(" ")
            if kind in ("put", "ack"):
                (puts if kind == "put" else acks).add(int(value))
        # killed inside claim + ack: huey's dequeue may have committed, and a dequeued
        # task is gone (at-most-once); the others leave the row claimed, not acked
        in_flight += bool(lines) and lines[-1].startswith("claim")
        rows = stored(name, directory)
        lost = sorted(p for p in puts if p not in rows and p not in acks)
        if name.startswith("huey") and len(lost) <= in_flight:
            gone = len(lost)  # taken by a dequeue the kill cut short: gone by design
            lost = []
        undone = sorted(a for a in acks if a in rows and not rows[a])
        if lost:
            problems.append(f"{len(lost)} puts that returned are gone: {lost[:5]}")
        if undone:
            problems.append(f"{len(undone)} acks that returned were undone: {undone[:5]}")
        start = max(puts | acks | {start}) + 1
    shutil.rmtree(directory, ignore_errors=True)
    print(f"    SIGKILL x{rounds} (REPRODUCED): {len(puts)} puts and {len(acks)} acks had "
          f"returned, {in_flight} kills landed inside a claim"
          + (f" ({gone} task(s) gone with a cut-short dequeue: at-most-once)" if gone else "")
          + "; "
          + ("; ".join(problems) if problems else "every put and ack that returned held"))
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    options = [o for (o,) in sqlite3.connect(":memory:").execute("PRAGMA compile_options")
               if "SYNCHRONOUS" in o]
    print(f"SQLite {sqlite3.sqlite_version}, build defaults: {', '.join(options) or 'none set'}")
    failures = 0
    for name, spec in LIBRARIES.items():
        try:
            got = settings(name, spec)
        except ImportError as exc:
            print(f"{name}: not installed ({exc})")
            return 2
        print(f"{name}:")
        print("    settings: " + ", ".join(f"{k}={v!r}" for k, v in got.items()))
        print(f"    fsyncs:   {fsyncs(spec)}")
        print(f"    power loss (REPORTED, not reproduced): "
              f"{promise(str(got['journal_mode']), int(got['synchronous']))}")
        failures += bool(kill_rounds(name, spec, rng, args.rounds))
    if failures:
        print(f"CONFIRMED: {failures} libraries lost an operation that returned, to a SIGKILL")
        return 1
    print("not reproduced: every put and ack that returned survived every SIGKILL "
          "(SQLite's promise for a process crash held)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
