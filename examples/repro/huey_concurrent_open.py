"""huey 3.5.4 FileStorage: processes opening the same new storage at once may fail.

``FileStorage.__init__`` builds a ``FileLock``, whose constructor runs ``if not
os.path.exists(dirname): os.makedirs(dirname)``. Two processes that start on a storage
directory that does not exist yet can both see it missing; the slower ``makedirs`` then
raises FileExistsError, and that process never gets a storage. huey's lock is there so
several processes can share one storage, so this is inside what it promises. Here 8
processes are released together (a pipe closed by the parent) on a fresh directory, 100
times. Run: python examples/repro/huey_concurrent_open.py
"""

import os
import shutil
import sys
import tempfile

from huey.storage import FileStorage

TRIALS, PROCS = 100, 8
root = tempfile.mkdtemp(prefix="repro-huey-open-")
failures = 0
for trial in range(TRIALS):
    path = os.path.join(root, f"s{trial}")
    r, w = os.pipe()
    kids = []
    for _ in range(PROCS):
        pid = os.fork()
        if pid == 0:
            os.close(w)
            os.read(r, 1)  # wait until the parent closes the pipe: all start together
            try:
                FileStorage("repro", path)
            except FileExistsError:
                os._exit(3)
            os._exit(0)
        kids.append(pid)
    os.close(r)
    os.close(w)
    for pid in kids:
        _, status = os.waitpid(pid, 0)
        failures += os.waitstatus_to_exitcode(status) == 3
shutil.rmtree(root, ignore_errors=True)
print(f"{failures} of {TRIALS * PROCS} FileStorage() calls raised FileExistsError")
if failures:
    print(f"CONFIRMED: {failures} of {TRIALS * PROCS} concurrent FileStorage() on a new "
          "directory raised FileExistsError")
    sys.exit(1)
print("not reproduced")
