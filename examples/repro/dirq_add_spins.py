"""dirq 1.8 QueueSimple: add() spins forever when creating its temp file fails (EACCES, ENOSPC).

``_add_data`` retries the exclusive create of ``<dir>/<name>.tmp`` in a ``while 1`` loop:
ENOENT makes the directory, EEXIST is meant to pick a new name, and every other error is
swallowed and retried, so EACCES or ENOSPC on the create never reaches the caller: the
producer hangs, burning CPU. Three real cases, each in a child process given 2 s:

1. no inode left (tmpfs with nr_inodes exhausted): create fails ENOSPC -> add spins;
2. directory not writable for the producer (user nobody): create fails EACCES -> add spins;
3. for contrast, a tmpfs full by *size* with inodes left: the create succeeds and the
   write fails ENOSPC, which add raises, as it should.

Needs root (mount, and switching to the user nobody). Run: python examples/repro/dirq_add_spins.py
"""

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from _fs import fill, small_tmpfs  # noqa: E402

# import before dropping privileges: nobody may not be able to read the stdlib's path
CHILD = ("import os, sys; from dirq.QueueSimple import QueueSimple; q = QueueSimple(sys.argv[1]); "
         "uid = int(sys.argv[2])\n"
         "if uid: os.setgid(uid); os.setuid(uid)\n"
         "try: print('add returned', q.add(b'x' * 100))\n"
         "except OSError as e: print('add raised', type(e).__name__, e.strerror)\n")


def try_add(qdir: str, uid: int = 0) -> str:
    try:
        out = subprocess.run([sys.executable, "-c", CHILD, qdir, str(uid)], capture_output=True,
                             text=True, timeout=2)
        return (out.stdout + out.stderr).strip().splitlines()[-1]
    except subprocess.TimeoutExpired:
        return "SPINNING: add() had not returned after 2 s"


if os.geteuid() != 0:
    sys.exit("needs root: mount and the user nobody")
results = {}
with small_tmpfs("1m", nr_inodes=64) as mnt:
    qdir = os.path.join(mnt, "q")
    subprocess.run([sys.executable, "-c", CHILD, qdir, "0"], check=True, capture_output=True)
    n = 0
    try:
        while True:                                # use up every inode
            open(os.path.join(mnt, f"f{n}"), "w").close()
            n += 1
    except OSError as exc:
        print(f"case 1: {n} files created, then {exc.strerror}")
    results["no inode left"] = try_add(qdir)
with tempfile.TemporaryDirectory() as tmp:
    os.chmod(tmp, 0o755)
    qdir = os.path.join(tmp, "q")
    subprocess.run([sys.executable, "-c", CHILD, qdir, "0"], check=True, capture_output=True)
    os.chmod(qdir, 0o755)
    for sub in os.listdir(qdir):
        os.chmod(os.path.join(qdir, sub), 0o755)   # owned by root: nobody may not write
    results["read-only for the producer"] = try_add(qdir, uid=65534)
with small_tmpfs("64k") as mnt:
    qdir = os.path.join(mnt, "q")
    subprocess.run([sys.executable, "-c", CHILD, qdir, "0"], check=True, capture_output=True)
    fill(os.path.join(mnt, "filler"), leave=0)
    results["full by size, inodes left"] = try_add(qdir)
for case, outcome in results.items():
    print(f"{case}: {outcome}")
spun = [c for c, o in results.items() if o.startswith("SPINNING")]
if spun:
    print("CONFIRMED: add() never returns on", ", ".join(spun))
    sys.exit(1)
print("not reproduced")
