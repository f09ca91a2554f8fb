"""queuelib 1.10.0 FifoDiskQueue: close() on a full disk empties info.json; no reopen after.

``close`` saves the head and tail with ``Path.write_text``, which creates (or truncates)
``info.json`` before it writes. On a full disk the write fails (ENOSPC, which close raises:
fine), but the file now exists and is empty: every later ``FifoDiskQueue(path)`` raises
``JSONDecodeError``, even once space is back, and the items still in the chunk files can
no longer be reached.
Needs root (a 64 KiB tmpfs). Run: python examples/repro/queuelib_close_enospc.py
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _fs import fill, small_tmpfs  # noqa: E402
from queuelib import FifoDiskQueue  # noqa: E402

with small_tmpfs("64k") as mnt:
    path = os.path.join(mnt, "q")
    q = FifoDiskQueue(path)                         # a new queue: no info.json yet
    for n in range(4):
        q.push(b"item %d" % n)
    fill(os.path.join(mnt, "filler"), leave=0)      # the disk fills up
    try:
        q.close()
        print("close returned ok")
    except OSError as exc:
        print(f"close raised {type(exc).__name__}: {exc.strerror}")
    os.unlink(os.path.join(mnt, "filler"))          # space is back
    print("info.json is", os.path.getsize(os.path.join(path, "info.json")), "bytes")
    try:
        FifoDiskQueue(path)
        print("not reproduced: the queue opens again")
    except json.JSONDecodeError as exc:
        print(f"CONFIRMED: reopening raises JSONDecodeError ({exc}); 4 items unreachable")
        sys.exit(1)
