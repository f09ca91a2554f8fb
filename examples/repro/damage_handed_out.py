"""dirq 1.8 QueueSimple and huey 3.5.4 FileStorage hand out a damaged element as if whole.

Neither stores a length or a checksum with an element, so a file truncated at rest (a
torn sector, a bad copy, a disk repair) comes out of ``get``/``dequeue`` shorter, with no
error. Each library gets one 100-byte element, the file is cut to 10 bytes between runs,
and the element is read back. Run: python examples/repro/damage_handed_out.py
"""

import glob
import os
import shutil
import sys
import tempfile

from dirq.QueueSimple import QueueSimple
from huey.storage import FileStorage

PAYLOAD = bytes(range(100))
root = tempfile.mkdtemp(prefix="repro-damage-")
out = {}

d = QueueSimple(os.path.join(root, "dirq"))
name = d.add(PAYLOAD)
os.truncate(os.path.join(root, "dirq", name), 10)
d = QueueSimple(os.path.join(root, "dirq"))
first = d.first()
out["dirq"] = d.get(first) if d.lock(first) else None

FileStorage("repro", os.path.join(root, "huey")).enqueue(PAYLOAD)
(task_file,) = glob.glob(os.path.join(root, "huey", "queue", "*"))
os.truncate(task_file, 10)
out["huey"] = FileStorage("repro", os.path.join(root, "huey")).dequeue()

shutil.rmtree(root, ignore_errors=True)
for lib, got in out.items():
    print(f"{lib}: handed out {None if got is None else len(got)} of {len(PAYLOAD)} bytes, "
          "no error")
short = [lib for lib, got in out.items() if got is not None and got != PAYLOAD]
if short:
    print(f"CONFIRMED: {' and '.join(short)} handed out a truncated element without an error")
    sys.exit(1)
print("not reproduced")
