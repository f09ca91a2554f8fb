"""huey 3.5.4 FileStorage: a consumer killed inside dequeue leaves the task as .tmp, forever.

``dequeue`` renames the task to ``.tmp``, reads it and unlinks it. A SIGKILL between the
rename and the unlink (here: strace kills the consumer as it enters unlink) leaves the
intact task under the ``.tmp`` name, which every later ``dequeue`` skips and nothing
recovers. The storage is at-most-once, so losing a task in delivery is within its promise;
shown because the bytes are intact and the loss happens before the caller got anything.
Needs strace. Run: python examples/repro/huey_kill_mid_dequeue.py
"""

import os
import shutil
import subprocess
import sys
import tempfile

from huey.storage import FileStorage

if shutil.which("strace") is None:
    sys.exit("needs strace")
root = tempfile.mkdtemp(prefix="repro-huey-")
qdir = os.path.join(root, "q")
FileStorage("repro", qdir).enqueue(b"the task")
child = subprocess.run(
    ["strace", "-f", "-qq", "-o", os.devnull, "-e", "trace=unlink,unlinkat",
     "-e", "inject=unlink,unlinkat:signal=KILL", sys.executable, "-c",
     f"from huey.storage import FileStorage; print(FileStorage('repro', {qdir!r}).dequeue())"],
    capture_output=True, text=True)
print("consumer printed:", repr(child.stdout.strip()), "exit status", child.returncode)
left = sorted(os.listdir(os.path.join(qdir, "queue")))
again = FileStorage("repro", qdir).dequeue()
print("queue/ =", left, "; next dequeue ->", again)
shutil.rmtree(root, ignore_errors=True)
if again is None and any(n.endswith(".tmp") for n in left):
    print("CONFIRMED: the task survives only as .tmp and no dequeue returns it")
    sys.exit(1)
print("not reproduced")
