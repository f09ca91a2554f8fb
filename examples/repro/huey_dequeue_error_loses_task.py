"""huey 3.5.4 FileStorage: a dequeue that fails after its rename loses the task for good, no crash.

``dequeue`` renames the oldest task file to ``<name>.tmp``, then opens it for reading. If
that open fails, the exception reaches the caller and the task stays under the ``.tmp``
name, which every later ``dequeue`` skips: gone, although nothing crashed and nothing was
delivered. Shown with a real EACCES: a producer with umask 077 (root here) and a consumer
running as another user (nobody) on a shared queue directory. Needs root (to switch
users); root itself ignores permission bits.
Run: python examples/repro/huey_dequeue_error_loses_task.py
"""

import os
import subprocess
import sys
import tempfile

from huey.storage import FileStorage

if os.geteuid() != 0:
    sys.exit("needs root: it runs the consumer as the user 'nobody'")
NOBODY = 65534
root = tempfile.mkdtemp(prefix="repro-huey-")
os.chmod(root, 0o755)
qdir = os.path.join(root, "q")
os.mkdir(qdir)
os.chown(qdir, NOBODY, NOBODY)
CONSUMER = (
    # import everything first: after setuid, nobody may not read the interpreter's stdlib
    "import os, sys; from huey.storage import FileStorage; "
    "os.setgid(65534); os.setuid(65534); s = FileStorage('repro', sys.argv[1]); "
    "cmd = sys.argv[2]\n"
    "if cmd == 'setup':\n    s.enqueue(b'warm-up'); print(s.dequeue())\n"
    "else:\n"
    "    try: print('dequeue ->', s.dequeue())\n"
    "    except OSError as e: print('dequeue raised', type(e).__name__, e.strerror)\n")


def consumer(cmd: str) -> str:
    return subprocess.run([sys.executable, "-c", CONSUMER, qdir, cmd], capture_output=True,
                          text=True, check=True).stdout.strip()


try:
    print("consumer (nobody) creates queue/:", consumer("setup"))
    os.umask(0o077)                                   # the producer's umask
    FileStorage("repro", qdir).enqueue(b"important task")
    queue = os.path.join(qdir, "queue")
    print("producer (root, umask 077) enqueued; queue/ =", sorted(os.listdir(queue)))
    print("consumer, 1st try:", consumer("dequeue"))
    print("consumer, 2nd try:", consumer("dequeue"))
    again = FileStorage("repro", qdir).dequeue()      # even root cannot get it back
    print("root dequeue ->", again, "; queue/ =", sorted(os.listdir(queue)))
finally:
    subprocess.run(["rm", "-rf", root], check=False)
if again is None:
    print("CONFIRMED: the failed dequeue left the task as .tmp, which no dequeue returns")
    sys.exit(1)
print("not reproduced")
