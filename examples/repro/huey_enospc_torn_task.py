"""huey 3.5.4 FileStorage: an enqueue that fails with ENOSPC leaves a torn task for dequeue.

Real disk full: a 64 KiB tmpfs, filled to one free page. ``enqueue`` writes the task file
under its final name in place; the kernel takes the first 4096 bytes of the 10000-byte
task and refuses the rest (ENOSPC). The enqueue raises, as it should, but the partial file
stays in ``queue/``: once space is freed, ``dequeue`` returns the 4096-byte prefix as if it
were a whole task. Needs root (mount). Run: python examples/repro/huey_enospc_torn_task.py
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _fs import fill, small_tmpfs  # noqa: E402
from huey.storage import FileStorage  # noqa: E402

with small_tmpfs("64k") as mnt:
    storage = FileStorage("repro", os.path.join(mnt, "q"))
    storage.enqueue(b"warm-up")                      # creates queue/ and .lock
    assert storage.dequeue() == b"warm-up"
    fill(os.path.join(mnt, "filler"), leave=4096)
    task = b"T" * 10000
    try:
        storage.enqueue(task)
        print("enqueue returned ok")
    except OSError as exc:
        print(f"enqueue raised {type(exc).__name__}: {exc.strerror} (errno {exc.errno})")
    os.unlink(os.path.join(mnt, "filler"))           # space comes back
    print("queue/ holds:", {n: os.path.getsize(os.path.join(mnt, "q", "queue", n))
                            for n in os.listdir(os.path.join(mnt, "q", "queue"))})
    got = storage.dequeue()
    if got is not None and got != task:
        print(f"CONFIRMED: dequeue handed out {len(got)} of the {len(task)} bytes of the "
              "failed enqueue as a task")
        sys.exit(1)
    print("not reproduced: dequeue returned", None if got is None else f"{len(got)} bytes")
