"""huey 3.5.4 FileStorage: a producer SIGKILLed inside enqueue leaves a torn task for dequeue.

A child process enqueues one 256 MiB task; the parent SIGKILLs it as soon as the task file
exists with some of its bytes. ``enqueue`` writes in place under the final name, so the
next ``dequeue`` (another process) hands out the partial file as a complete task. Real
processes and a real kill -9; no root needed. Takes about a second.
Run: python examples/repro/huey_kill_mid_enqueue.py
"""

import os
import signal
import subprocess
import sys
import tempfile
import time

from huey.storage import FileStorage

SIZE = 256 * 1024 * 1024
root = tempfile.mkdtemp(prefix="repro-huey-")
qdir = os.path.join(root, "q")
FileStorage("repro", qdir).enqueue(b"warm-up")       # create queue/ before the race
assert FileStorage("repro", qdir).dequeue() == b"warm-up"
child = subprocess.Popen([sys.executable, "-c", (
    "import sys; from huey.storage import FileStorage; "
    f"FileStorage('repro', {qdir!r}).enqueue(b'T' * {SIZE})")])
queue = os.path.join(qdir, "queue")
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    sizes = [os.path.getsize(os.path.join(queue, n)) for n in os.listdir(queue)]
    if sizes and 0 < sizes[0] < SIZE:
        os.kill(child.pid, signal.SIGKILL)
        break
    time.sleep(0.0005)
child.wait()
print(f"producer ended by signal {-child.returncode}; queue/ holds "
      f"{[os.path.getsize(os.path.join(queue, n)) for n in os.listdir(queue)]} bytes")
got = FileStorage("repro", qdir).dequeue()
subprocess.run(["rm", "-rf", root], check=False)
if got is not None and len(got) < SIZE:
    print(f"CONFIRMED: dequeue handed out a task of {len(got)} bytes; {SIZE} were enqueued")
    sys.exit(1)
print("not reproduced this time (the kill landed before or after the write); run again")
