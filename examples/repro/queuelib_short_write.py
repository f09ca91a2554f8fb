"""queuelib 1.10.0 FifoDiskQueue: a short write on a full disk is ignored; pop returns a torn item.

``push`` appends its record with one ``os.write`` and ignores the count it returns. On a
real file system that is almost full, write(2) stores what fits and returns that count
without an error (it raises ENOSPC only when nothing fits). So ``push`` returns ok, the
record is torn, and ``pop`` later hands out a truncated item. Needs root (a 64 KiB tmpfs).
Run: python examples/repro/queuelib_short_write.py
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _fs import fill, small_tmpfs  # noqa: E402
from queuelib import FifoDiskQueue  # noqa: E402

with small_tmpfs("64k") as mnt:
    q = FifoDiskQueue(os.path.join(mnt, "q"))
    q.push(b"first")
    fill(os.path.join(mnt, "filler"), leave=4096)   # one free page
    item = b"X" * 10000
    q.push(item)                                    # 4096 bytes fit: no exception
    print("push of 10000 bytes returned ok; chunk file is",
          os.path.getsize(os.path.join(mnt, "q", "q00000")), "bytes")
    os.unlink(os.path.join(mnt, "filler"))
    assert q.pop() == b"first"
    got = q.pop()
    q.close()
    print(f"pop -> {len(got)} bytes")
    if got != item:
        print(f"CONFIRMED: push returned ok, then pop handed out {len(got)} of {len(item)} bytes")
        sys.exit(1)
    print("not reproduced")
