"""dirq 1.8 QueueSimple: a queue directory the consumer cannot list looks empty, no error raised.

``_directory_contents`` defaults to ``missingok=True`` and then returns ``[]`` for *any*
listdir error (its ENOENT test is never reached), so a consumer whose listing fails with
EACCES is told the queue is empty while elements wait. Real EACCES: the consumer runs as
the user nobody on a queue directory without read permission for it. Needs root.
Run: python examples/repro/dirq_unreadable_looks_empty.py
"""

import os
import subprocess
import sys
import tempfile

from dirq.QueueSimple import QueueSimple

if os.geteuid() != 0:
    sys.exit("needs root: it runs the consumer as the user 'nobody'")
root = tempfile.mkdtemp(prefix="repro-dirq-")
os.chmod(root, 0o755)
qdir = os.path.join(root, "q")
name = QueueSimple(qdir).add(b"waiting element")
os.chmod(qdir, 0o711)                              # others may traverse, not list
# import before dropping privileges: nobody may not be able to read the stdlib's path
out = subprocess.run(
    [sys.executable, "-c",
     "import os, sys; from dirq.QueueSimple import QueueSimple\n"
     "os.setgid(65534); os.setuid(65534)\n"
     "q = QueueSimple(sys.argv[1])\n"
     "try: print('first() ->', repr(q.first()))\n"
     "except Exception as e: print('first() raised', type(e).__name__, e)\n", qdir],
    capture_output=True, text=True)
print(f"element {name} is in the queue; the consumer (nobody) says:", out.stdout.strip()
      or out.stderr.strip().splitlines()[-1])
subprocess.run(["rm", "-rf", root], check=False)
if "first() -> ''" in out.stdout:
    print("CONFIRMED: EACCES on the listing was reported as an empty queue")
    sys.exit(1)
print("not reproduced")
