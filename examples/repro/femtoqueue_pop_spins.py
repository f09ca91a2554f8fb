"""femtoqueue 0.4.2: one damaged task file makes pop() spin forever; tasks behind it starve.

``pop`` moves the oldest pending file into the node's directory and checks its md5; on a
mismatch it ``continue``s, leaving the file there. Its next turn lists the node's
directory first (the crash retry), finds the same file, renames it onto itself, fails the
check again, and so on: pop never returns, and never reaches the good task. A damaged file
is what a torn write, a zero-length file after a power loss (see femtoqueue_syscalls.py:
its fsync runs before the data is written) or a bit flip at rest leave behind; the
docstring promises that "integrity checks will discard invalid writes". Here the damage is
made by hand: the oldest pending file truncated to 10 bytes. A worker's first pop skips
it (and returns the next task), its done succeeds, and its second pop, with a third task
waiting, never returns. The worker runs in a child given 2 s.
Run: python examples/repro/femtoqueue_pop_spins.py
"""

import os
import subprocess
import sys
import tempfile

from femtoqueue import FemtoQueue

root = tempfile.mkdtemp(prefix="repro-femto-")
q = FemtoQueue(root, node_id="producer", sync_after_write=True)
first = q.push(b"task one")
q.push(b"task two")
damaged = os.path.join(root, "pending", first)
os.truncate(damaged, 10)                          # the oldest task is damaged
try:
    out = subprocess.run([sys.executable, "-c", (
        "from femtoqueue import FemtoQueue; "
        f"w = FemtoQueue({root!r}, node_id='worker'); t = w.pop(); "
        "print('1st pop ->', t.data, flush=True); w.done(t); "
        f"FemtoQueue({root!r}, node_id='producer').push(b'task three'); "
        "print('2nd pop ->', w.pop(), flush=True)")],
        capture_output=True, text=True, timeout=2)
    outcome = out.stdout.strip() or out.stderr.strip().splitlines()[-1]
except subprocess.TimeoutExpired as exc:
    print("worker said:", (exc.stdout or b"").decode().strip())
    outcome = None
subprocess.run(["rm", "-rf", root], check=False)
if outcome is None:
    print("CONFIRMED: the 2nd pop() had not returned after 2 s ('task three' is never reached)")
    sys.exit(1)
print("not reproduced:", outcome)
