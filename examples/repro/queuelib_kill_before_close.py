"""queuelib 1.10.0 FifoDiskQueue: a kill before close() loses its pushes, repeats its pops.

Outside what queuelib promises (state is saved by ``close``), shown so users know: the
head and tail positions live in memory until ``close``, so after a SIGKILL the next open
hands out again what was popped and does not see what was pushed (its bytes are in the
chunk file, uncounted). Real processes, real kill -9.
Run: python examples/repro/queuelib_kill_before_close.py
"""

import subprocess
import sys
import tempfile

from queuelib import FifoDiskQueue

path = tempfile.mkdtemp(prefix="repro-queuelib-") + "/q"
q = FifoDiskQueue(path)
q.push(b"a")
q.push(b"b")
q.close()
child = subprocess.run([sys.executable, "-c", (
    "import os, signal; from queuelib import FifoDiskQueue; "
    f"q = FifoDiskQueue({path!r}); print('child popped', q.pop()); q.push(b'c'); "
    "print('child pushed c', flush=True); os.kill(os.getpid(), signal.SIGKILL)")],
    capture_output=True, text=True)
print(child.stdout.strip().replace("\n", "; "), f"(ended by signal {-child.returncode})")
q = FifoDiskQueue(path)
got = [q.pop() for _ in range(4)]
print("after the restart, pops return", got)
q.close()
subprocess.run(["rm", "-rf", path.rsplit("/", 1)[0]], check=False)
if got[0] == b"a" and b"c" not in got:
    print("CONFIRMED: the popped 'a' came back and the pushed 'c' is gone")
    sys.exit(1)
print("not reproduced")
